// An employer's system written with npm jose, independent of the gateway's Go
// code: it signs notices in the three agreed forms, posts them over mutual TLS
// and verifies each receipt against the gateway's published JWKS, and that it
// covers the bytes it sent (payloadSha256).
//
// Environment: GATEWAY_URL, CA_CERT, CLIENT_CERT, CLIENT_KEY, SIGNING_JWK,
// NOTICES (a JSON array of file paths: compact, detached, unencoded).
// Prints one JSON object per submission on stdout.
import * as jose from 'jose';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

const env = process.env;
const tls = {
  ca: readFileSync(env.CA_CERT),
  cert: readFileSync(env.CLIENT_CERT),
  key: readFileSync(env.CLIENT_KEY),
};
const jwk = JSON.parse(readFileSync(env.SIGNING_JWK, 'utf8'));
const key = await jose.importJWK(jwk, jwk.alg || 'ES256');
const header = { alg: jwk.alg || 'ES256', kid: jwk.kid, typ: 'JOSE' };

function request(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(env.GATEWAY_URL + path, { method, headers, ...tls }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

const jwks = jose.createLocalJWKSet(JSON.parse((await request('GET', '/.well-known/jwks.json', {})).body));

async function submit(form, doc) {
  let res;
  if (form === 'compact') {
    const jws = await new jose.CompactSign(doc).setProtectedHeader(header).sign(key);
    res = await request('POST', '/v1/injury-notices', { 'Content-Type': 'application/jose' }, jws);
  } else if (form === 'detached') {
    const [h, , s] = (await new jose.CompactSign(doc).setProtectedHeader(header).sign(key)).split('.');
    res = await request('POST', '/v1/injury-notices', { 'Content-Type': 'application/json', 'X-JWS-Signature': `${h}..${s}` }, doc);
  } else {
    const f = await new jose.FlattenedSign(doc).setProtectedHeader({ ...header, b64: false, crit: ['b64'] }).sign(key);
    res = await request('POST', '/v1/injury-notices', { 'Content-Type': 'application/json', 'X-JWS-Signature': `${f.protected}..${f.signature}` }, doc);
  }
  const out = { form, status: res.status };
  if (res.status === 200 || res.status === 202) {
    const body = JSON.parse(res.body);
    out.outcome = body.status;
    out.recordId = body.recordId;
    const { payload, protectedHeader } = await jose.compactVerify(body.receipt, jwks);
    const claims = JSON.parse(new TextDecoder().decode(payload));
    // The receipt covers what was sent: payloadSha256 is the SHA-256 of the notice's bytes as signed.
    const sent = createHash('sha256').update(doc).digest('hex');
    out.receiptVerified = claims.recordId === body.recordId && claims.payloadSha256 === sent;
    out.receiptKid = protectedHeader.kid;
  } else {
    out.body = res.body;
  }
  return out;
}

const files = JSON.parse(env.NOTICES);
const forms = ['compact', 'detached', 'unencoded'];
for (let i = 0; i < files.length; i++) {
  console.log(JSON.stringify(await submit(forms[i % 3], readFileSync(files[i]))));
}
// The first notice again, by compact JWS: a duplicate with the first receipt.
console.log(JSON.stringify(await submit('compact', readFileSync(files[0]))));
