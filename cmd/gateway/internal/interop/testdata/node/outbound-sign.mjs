// outbound-sign.mjs: a back office in Node, written from the README's
// "Outbound delivery to partners", signing its outbound requests for
// TestNodeSignsOutboundRequests. Input: REQUESTS, a file holding a JSON
// array of request texts (each sent as a Kafka record's value, byte for
// byte); SIGNING_JWK, the back office's private ES256 JWK. Output: a JSON
// array, for each request the detached JWS to send in its record's "jws"
// header: the compact JWS of the value with the payload part left empty
// (RFC 7515 appendix F).
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const jwk = JSON.parse(readFileSync(process.env.SIGNING_JWK, 'utf8'));
const key = await jose.importJWK(jwk, 'ES256');
const out = [];
for (const value of JSON.parse(readFileSync(process.env.REQUESTS, 'utf8'))) {
  const compact = await new jose.CompactSign(new TextEncoder().encode(value))
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .sign(key);
  const [header, , signature] = compact.split('.');
  out.push(`${header}..${signature}`);
}
process.stdout.write(JSON.stringify(out));
