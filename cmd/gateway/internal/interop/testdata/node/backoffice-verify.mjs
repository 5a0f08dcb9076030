// backoffice-verify.mjs: a back office in Node, written from the README's
// "Kafka: outbox, topics, events", checking verified events as any consumer
// would, for TestNodeBackOfficeVerifiesEvents. Input: the file named by
// EVENTS, a JSON array of {"value": event JSON text}; the gateway's JWKS in
// GATEWAY_JWKS and the partner's in PARTNER_JWKS. For each event: the
// receipt verified with the gateway's keys; its recordSha256 against the
// SHA-256 of the bytes of "record" as they stand in the event (and, for the
// record, against a naive consumer's JSON.stringify of the parsed record);
// the partner's JWS (flattened) verified with the partner's keys. Output:
// a JSON array of findings.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as jose from 'jose';

const read = (f) => JSON.parse(readFileSync(f, 'utf8'));
const gateway = jose.createLocalJWKSet(read(process.env.GATEWAY_JWKS));
const partner = jose.createLocalJWKSet(read(process.env.PARTNER_JWKS));
const sha256 = (s) => createHash('sha256').update(s, 'utf8').digest('hex');

// skip returns the index just past the JSON value that starts at i.
const skip = (s, i) => {
  while (' \t\r\n'.includes(s[i])) i++;
  if (s[i] === '"') {
    for (i++; s[i] !== '"'; i++) if (s[i] === '\\') i++;
    return i + 1;
  }
  if (s[i] === '{' || s[i] === '[') {
    let depth = 0;
    for (; ; i++) {
      const c = s[i];
      if (c === '"') { i = skip(s, i) - 1; continue; }
      if (c === '{' || c === '[') depth++;
      if (c === '}' || c === ']') { if (--depth === 0) return i + 1; }
    }
  }
  while (i < s.length && !',}] \t\r\n'.includes(s[i])) i++;
  return i;
};

// member returns the text of the top-level member name of the object s.
const member = (s, name) => {
  let i = s.indexOf('{') + 1;
  for (;;) {
    while (' \t\r\n,'.includes(s[i])) i++;
    if (s[i] === '}') return undefined;
    const end = skip(s, i);
    const key = JSON.parse(s.slice(i, end));
    i = end;
    while (' \t\r\n:'.includes(s[i])) i++;
    const vend = skip(s, i);
    if (key === name) return s.slice(i, vend);
    i = vend;
  }
};

const out = [];
for (const { value } of read(process.env.EVENTS)) {
  const f = {};
  try {
    const ev = JSON.parse(value);
    const raw = member(value, 'record');
    const { payload } = await jose.compactVerify(ev.receipt, gateway);
    const receipt = JSON.parse(new TextDecoder().decode(payload));
    f.receipt = 'ok';
    f.recordShaRaw = receipt.recordSha256 === sha256(raw);
    f.recordShaNaive = receipt.recordSha256 === sha256(JSON.stringify(ev.record));
    f.recordId = receipt.recordId === ev.record.recordId;
    const jws = await jose.flattenedVerify(ev.jws, partner);
    f.jws = 'ok';
    f.document = new TextDecoder().decode(jws.payload);
  } catch (e) {
    f.error = `${e.code || e.name}: ${e.message}`;
  }
  out.push(f);
}
process.stdout.write(JSON.stringify(out));
