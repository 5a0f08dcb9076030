// event-verify.mjs: a back office in Node, written from the README
// ("Outbound delivery to partners", "Kafka: outbox, topics, events"),
// checking the events about the gateway's own doing (delivery statuses,
// rejections), for TestNodeVerifiesOwnEvents. Input: the file named by
// EVENTS, a JSON array of event JSON texts; the gateway's JWKS in
// GATEWAY_JWKS; the receipt's typ in TYP. For each event: the receipt
// verified with the gateway's keys, its typ and iss, and the members it
// states, no more and no fewer, against the event's (all but "receipt").
// Output: a JSON array of "ok" or the reason.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import * as jose from 'jose';

const read = (f) => JSON.parse(readFileSync(f, 'utf8'));
const gateway = jose.createLocalJWKSet(read(process.env.GATEWAY_JWKS));

const out = [];
for (const value of read(process.env.EVENTS)) {
  try {
    const { receipt, ...ev } = JSON.parse(value);
    const { payload, protectedHeader } = await jose.compactVerify(receipt, gateway, { algorithms: ['ES256'] });
    if (protectedHeader.typ !== process.env.TYP) throw new Error(`typ ${protectedHeader.typ}`);
    const { iss, ...st } = JSON.parse(new TextDecoder().decode(payload));
    if (iss !== 'urn:my:perkeso:jambatan') throw new Error(`iss ${iss}`);
    for (const k of new Set([...Object.keys(st), ...Object.keys(ev)])) {
      if (!isDeepStrictEqual(st[k], ev[k])) throw new Error(`${k} differs`);
    }
    out.push('ok');
  } catch (e) {
    out.push(`${e.code || e.name}: ${e.message}`);
  }
}
process.stdout.write(JSON.stringify(out));
