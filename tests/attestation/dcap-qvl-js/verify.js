#!/usr/bin/env node
// Verify one DCAP quote with @phala/dcap-qvl against a collateral folder laid out as
// `enarx-pkg attest fetch-collateral` writes it. Usage: verify.js QUOTE DIR UNIX_TIME [ROOT_CA_DER]
// Prints {"ok": true, "status", "advisory_ids", "report_data"} or {"ok": false, "error"}; exit 0 either way.
'use strict';
const fs = require('fs');
const path = require('path');
const { verify, QuoteVerifier } = require('@phala/dcap-qvl/src/verify');

function signed(doc, key) {
  // the signed bytes are the raw JSON of doc[key], exactly as served (see Intel PCS v4)
  const text = fs.readFileSync(doc, 'utf8');
  const start = text.indexOf('{', text.indexOf(`"${key}"`));
  const end = text.lastIndexOf(',"signature"');
  return { value: text.slice(start, end), signature: JSON.parse(text).signature };
}

function collateral(dir) {
  const file = (name) => path.join(dir, name);
  const has = (name) => fs.existsSync(file(name));
  const out = {};
  if (has('tcbinfo.json')) {
    const t = signed(file('tcbinfo.json'), 'tcbInfo');
    Object.assign(out, { tcb_info: t.value, tcb_info_signature: t.signature });
  }
  if (has('qe_identity.json')) {
    const q = signed(file('qe_identity.json'), 'enclaveIdentity');
    Object.assign(out, { qe_identity: q.value, qe_identity_signature: q.signature });
  }
  if (has('tcb_signing_chain.pem')) {
    const chain = fs.readFileSync(file('tcb_signing_chain.pem'), 'utf8');
    Object.assign(out, { tcb_info_issuer_chain: chain, qe_identity_issuer_chain: chain });
  }
  if (has('pck_crl_issuer_chain.pem')) out.pck_crl_issuer_chain = fs.readFileSync(file('pck_crl_issuer_chain.pem'), 'utf8');
  if (has('pck_platform_crl.der')) out.pck_crl = fs.readFileSync(file('pck_platform_crl.der')).toString('hex');
  if (has('root_ca_crl.der')) out.root_ca_crl = fs.readFileSync(file('root_ca_crl.der')).toString('hex');
  return out;
}

function main() {
  const [quotePath, dir, time, rootCa] = process.argv.slice(2);
  const quote = new Uint8Array(fs.readFileSync(quotePath));
  try {
    const col = collateral(dir);
    const verifier = rootCa ? QuoteVerifier.newWithRootCa(fs.readFileSync(rootCa)) : null;
    const r = verifier ? verifier.verify(quote, col, Number(time)) : verify(quote, col, Number(time));
    const body = r.report.data.base || r.report.data;  // TD 1.5 wraps the TD 1.0 fields in .base
    const reportData = Buffer.from(body.reportData).toString('hex');
    console.log(JSON.stringify({ ok: true, status: r.status, advisory_ids: r.advisory_ids || [], report_data: reportData }));
  } catch (e) {
    let msg = e.message;
    for (let c = e.cause; c; c = c.cause) msg += `: ${c.message || c}`;
    console.log(JSON.stringify({ ok: false, error: msg }));
  }
}

main();
