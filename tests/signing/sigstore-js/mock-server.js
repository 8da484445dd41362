// sigstore's own mock Fulcio CA and Rekor log (@sigstore/mock, made for sigstore-js's tests),
// served over real HTTP on 127.0.0.1. The package only wires its handlers into nock (which
// intercepts requests inside one node process), so this file gives them a socket; the CA, the CT
// log and the transparency log are the mock's own, with fresh P-256 keys per run.
//
// Prints one JSON line: the base URL and the public material a trusted root needs.
//
// Optional argv[2], a JSON object, makes a mis-issuing instance for the tests that check what
// verifiers refuse: {"caClock": ISO time the CA issues at, "tlogClock": ISO time the log records,
// "ct": false for certificates without an SCT, "extensions": {OID: value, or null to leave it out}}
// (values replace what the CA derives from the
// token; 1.3.6.1.4.1.57264.1.1 is written raw as Fulcio's legacy issuer, others as DER UTF8String).
// Where sigstore-python's client and the mock disagree on the wire, this file adapts the request
// (see ADAPT below); the mock's answers are passed through unchanged.
'use strict';
const crypto = require('crypto');
const http = require('http');
const mock = require('@sigstore/mock');

const MAX_BODY = 1 << 20;

function keyPair() {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function spki(pair) {
  return pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
}

// ADAPT (Fulcio): sigstore-python sends the OIDC token in the `Authorization: Bearer` header and
// `certificateSigningRequest` as base64 of the PEM CSR (both accepted by the real Fulcio); the
// mock reads the token from `credentials.oidcIdentityToken` and the CSR as PEM.
function adaptFulcio(body, req) {
  const json = JSON.parse(body);
  const auth = /^Bearer (.+)$/.exec(req.headers.authorization || '');
  if (auth && !(json.credentials && json.credentials.oidcIdentityToken)) {
    json.credentials = { oidcIdentityToken: auth[1] };
  }
  const csr = json.certificateSigningRequest;
  if (typeof csr === 'string' && !csr.startsWith('-----')) {
    json.certificateSigningRequest = Buffer.from(csr, 'base64').toString('utf8');
  }
  return JSON.stringify(json);
}

function sha256hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

// ADAPT (Rekor): the real Rekor does not log a dsse 0.0.1 proposal as sent: it stores the hash of
// the envelope, the hash of its payload and each signature with its verifier (rekor's
// pkg/types/dsse/v0.0.1 Canonicalize). The mock logs whatever body it is given, so the proposal is
// turned into that canonical form here; verifiers (sigstore-python, sigstore-js) check it against
// the bundle. hashedrekord proposals are logged as sent, as Rekor does.
function adaptRekor(body, _req) {
  const entry = JSON.parse(body);
  if (entry.kind !== 'dsse' || !entry.spec || !entry.spec.proposedContent) {
    return body;
  }
  const { envelope, verifiers } = entry.spec.proposedContent;
  const env = JSON.parse(envelope);
  const signatures = env.signatures.map((s) => ({ signature: s.sig, verifier: verifiers[0] }));
  return JSON.stringify({
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256hex(envelope) },
      payloadHash: { algorithm: 'sha256', value: sha256hex(Buffer.from(env.payload, 'base64')) },
      signatures,
    },
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// The CA's extensions replaced as configured (a test instance that issues what Fulcio would not).
function misissue(ca, replace) {
  const issue = ca.issueCertificate.bind(ca);
  const LEGACY_ISSUER = '1.3.6.1.4.1.57264.1.1';
  ca.issueCertificate = (opts) => {
    const kept = (opts.extensions || []).filter((e) => !(e.oid in replace));
    const added = Object.entries(replace).filter(([, v]) => v !== null)
      .map(([oid, value]) => ({ oid, value, legacy: oid === LEGACY_ISSUER }));
    return issue({ ...opts, extensions: [...kept, ...added] });
  };
}

async function main() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  const ctPair = keyPair();
  const caPair = keyPair();
  const tlogPair = keyPair();
  const config = JSON.parse(process.argv[2] || '{}');
  const clock = (iso) => (iso ? new Date(iso) : undefined);
  const ctLog = config.ct === false ? undefined : await mock.initializeCTLog(ctPair);
  const ca = await mock.initializeCA(caPair, ctLog, clock(config.caClock));
  misissue(ca, config.extensions || {});
  const routes = {
    '/api/v2/signingCert': [mock.fulcioHandler(ca, { strict: true }), adaptFulcio],
    '/api/v1/log/entries': [mock.rekorHandler(await mock.initializeTLog(url, tlogPair, clock(config.tlogClock)), { strict: true }), adaptRekor],
  };
  server.on('request', async (req, res) => {
    const route = routes[req.url];
    if (req.method !== 'POST' || !route) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ code: 404, message: `no mock at ${req.method} ${req.url}` }));
      return;
    }
    try {
      const [handler, adapt] = route;
      const out = await handler.fn(adapt(await readBody(req), req));
      res.writeHead(out.statusCode, { 'Content-Type': out.contentType || 'text/plain' });
      res.end(out.response);
    } catch (e) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ code: 400, message: String(e && e.message) }));
    }
  });
  process.stdout.write(JSON.stringify({
    url,
    fulcioRoot: ca.rootCertificate.toString('base64'),
    ctlogKey: spki(ctPair),
    rekorKey: spki(tlogPair),
  }) + '\n');
  process.stdin.on('end', () => process.exit(0)); // exit with the test session that started us
  process.stdin.resume();
}

main().catch((e) => {
  process.stderr.write(`mock-server: ${e && e.stack}\n`);
  process.exit(1);
});
