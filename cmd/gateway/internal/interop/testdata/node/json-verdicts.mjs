// json-verdicts.mjs: Node's verdict on each document of CASES (a JSON
// array of base64 strings), for TestNodeAgreesWithJsondoc. A document is
// read as the gateway must read it: UTF-8 (fatal on an invalid sequence,
// a byte-order mark kept, so that JSON.parse refuses it), then JSON.parse.
// For an accepted one it writes a canonical form of the value: objects
// with their names sorted, strings as the hex of their UTF-8 (lone
// surrogates as U+FFFD, as the gateway reads them), numbers as the hex of
// their IEEE 754 double.
import { readFileSync } from 'node:fs';

const cases = JSON.parse(readFileSync(process.env.CASES, 'utf8'));
const hex = (s) => Buffer.from(s.toWellFormed(), 'utf8').toString('hex');
const bits = (n) => {
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, n);
  return v.getBigUint64(0).toString(16).padStart(16, '0');
};
const canon = (v) => {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return 'n:' + bits(v);
  if (typeof v === 'string') return 's:' + hex(v);
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  return '{' + Object.keys(v).sort((a, b) => (hex(a) < hex(b) ? -1 : hex(a) > hex(b) ? 1 : 0))
    .map((k) => 's:' + hex(k) + ':' + canon(v[k])).join(',') + '}';
};
const out = cases.map((b64) => {
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.from(b64, 'base64'));
    return { ok: true, canon: canon(JSON.parse(text)) };
  } catch (e) {
    return { ok: false, err: e.name };
  }
});
process.stdout.write(JSON.stringify(out));
