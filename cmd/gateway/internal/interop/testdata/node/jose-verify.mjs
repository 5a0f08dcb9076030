// Verifies JWS with npm jose, independent of the gateway's Go code, for the
// differential test TestJoseAgreesWithJwsin.
//
// Environment: JWKS (a public JWK Set), CASES (a file holding a JSON array
// of {"jws": compact or detached JWS, "body": the detached payload or
// absent}). Prints a JSON array: for each case, "ok" or jose's error code.
import * as jose from 'jose';
import { readFileSync } from 'node:fs';

const env = process.env;
const keys = jose.createLocalJWKSet(JSON.parse(readFileSync(env.JWKS, 'utf8')));
const cases = JSON.parse(readFileSync(env.CASES, 'utf8'));
const out = [];
for (const c of cases) {
  try {
    if (c.body === undefined) {
      await jose.compactVerify(c.jws, keys);
    } else {
      const [protectedHeader, payload, signature] = c.jws.split('.');
      if (payload !== '' || signature === undefined) throw Object.assign(new Error('not detached'), { code: 'ERR_JWS_INVALID' });
      let unencoded = false;
      try { unencoded = JSON.parse(Buffer.from(protectedHeader, 'base64url').toString('utf8')).b64 === false; } catch { /* jose says why */ }
      const body = Buffer.from(c.body, 'utf8');
      await jose.flattenedVerify({ protected: protectedHeader, payload: unencoded ? body : jose.base64url.encode(body), signature }, keys);
    }
    out.push('ok');
  } catch (e) {
    out.push(e.code || String(e));
  }
}
process.stdout.write(JSON.stringify(out));
