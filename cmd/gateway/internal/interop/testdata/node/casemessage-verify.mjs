// casemessage-verify.mjs: a back office in Node, written from the README's
// "What happens to a message", checking case-messages events, for
// TestNodeVerifiesCaseMessages. Input: the file named by EVENTS, a JSON
// array of event JSON texts; the gateway's JWKS in GATEWAY_JWKS. For each
// event: the receipt verified with the gateway's keys, its typ, each member
// it states against the event's, and its bodySha256 against the SHA-256 of
// the event's body (its UTF-8 text). Output: a JSON array of "ok" or the
// reason.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as jose from 'jose';

const read = (f) => JSON.parse(readFileSync(f, 'utf8'));
const gateway = jose.createLocalJWKSet(read(process.env.GATEWAY_JWKS));
const sha256 = (s) => createHash('sha256').update(s, 'utf8').digest('hex');

const out = [];
for (const value of read(process.env.EVENTS)) {
  try {
    const ev = JSON.parse(value);
    const { payload, protectedHeader } = await jose.compactVerify(ev.receipt, gateway, { algorithms: ['ES256'] });
    if (protectedHeader.typ !== 'perkeso-case-message+jws') throw new Error(`typ ${protectedHeader.typ}`);
    const st = JSON.parse(new TextDecoder().decode(payload));
    for (const k of ['operation', 'caseId', 'sender', 'messageId', 'receivedAt']) {
      if (st[k] !== ev[k]) throw new Error(`${k} differs`);
    }
    if ((st.requestId ?? '') !== (ev.requestId ?? '') || (st.documentsOmitted ?? false) !== (ev.documentsOmitted ?? false)) {
      throw new Error('requestId or documentsOmitted differs');
    }
    if (st.bodySha256 !== sha256(ev.body)) throw new Error('body differs');
    out.push('ok');
  } catch (e) {
    out.push(`${e.code || e.name}: ${e.message}`);
  }
}
process.stdout.write(JSON.stringify(out));
