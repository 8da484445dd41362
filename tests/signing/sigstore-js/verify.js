// An independent verifier for the tests: sigstore-js (@sigstore/verify) checks a bundle against a
// trusted root, with its DEFAULT thresholds unless told otherwise.
//
//   node verify.js BUNDLE TRUSTED_ROOT [--key PUB.pem] [--identity SAN --issuer ISS]
//                  [--tlog-threshold N] [--timestamp-threshold N]
//
// Prints {"ok":true,...} and exits 0, or {"ok":false,"code":...,"message":...} and exits 1.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function option(args, name) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function keyFinder(pemPath) {
  if (!pemPath) {
    return undefined;
  }
  const key = crypto.createPublicKey(fs.readFileSync(pemPath));
  const der = key.export({ format: 'der', type: 'spki' });
  const hint = crypto.createHash('sha256').update(der).digest('base64');
  return (want) => {
    if (want !== hint) {
      throw new Error(`no key for hint ${want}`);
    }
    return { publicKey: key, validFor: () => true };
  };
}

function main(args) {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(args[0], 'utf8')));
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(args[1], 'utf8')));
  const options = {};
  if (option(args, '--tlog-threshold') !== undefined) {
    options.tlogThreshold = Number(option(args, '--tlog-threshold'));
  }
  if (option(args, '--timestamp-threshold') !== undefined) {
    options.timestampThreshold = Number(option(args, '--timestamp-threshold'));
  }
  const verifier = new Verifier(toTrustMaterial(root, keyFinder(option(args, '--key'))), options);
  const policy = {};
  if (option(args, '--identity')) {
    policy.subjectAlternativeName = option(args, '--identity');
    policy.extensions = { issuer: option(args, '--issuer') };
  }
  const signer = verifier.verify(toSignedEntity(bundle), policy);
  return { ok: true, identity: signer.identity || null };
}

try {
  process.stdout.write(JSON.stringify(main(process.argv.slice(2))) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, code: e.code || e.name, message: e.message }) + '\n');
  process.exit(1);
}
