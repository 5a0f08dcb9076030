// es256-signatures.mjs: ES256 signatures made and judged by Node's crypto
// (OpenSSL), for TestNodeAgreesWithES256. For each of KEYS keys it signs
// SIGS random messages (IEEE P1363 form, r || s, as JWS carries them) and
// writes each with variants: the high-S twin, one bit flipped, another
// message, r or s zero, n or above, and random bytes; every case carries
// OpenSSL's verdict. Output: JSON on stdout.
import { generateKeyPairSync, sign, verify, randomBytes } from 'node:crypto';

const KEYS = Number(process.env.KEYS || 8);
const SIGS = Number(process.env.SIGS || 200);
const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

const hex32 = (x) => x.toString(16).padStart(64, '0');
const toBig = (b) => BigInt('0x' + (b.toString('hex') || '0'));
const fromBig = (x) => Buffer.from(hex32(x), 'hex');
const join = (r, s) => Buffer.concat([fromBig(r), fromBig(s)]);

const out = [];
for (let k = 0; k < KEYS; k++) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const cases = [];
  const judge = (name, msg, sig) => {
    const ok = verify('sha256', msg, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    cases.push({ name, msg: msg.toString('base64'), sig: sig.toString('base64'), ok });
  };
  for (let i = 0; i < SIGS; i++) {
    const msg = randomBytes(1 + (i % 300));
    const sig = sign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const r = toBig(sig.subarray(0, 32));
    const s = toBig(sig.subarray(32));
    judge('valid', msg, sig);
    judge('high-s', msg, join(r, n - s));
    const flipped = Buffer.from(sig);
    flipped[i % 64] ^= 1 << (i % 8);
    judge('bit-flipped', msg, flipped);
    judge('other-message', Buffer.concat([msg, Buffer.from([0])]), sig);
    judge(['r-zero', 's-zero', 'r-is-n', 's-is-n', 'r-plus-n', 's-plus-n'][i % 6], msg, [
      join(0n, s), join(r, 0n), join(n, s), join(r, n),
      join((r + n) % (1n << 256n), s), join(r, (s + n) % (1n << 256n)),
    ][i % 6]);
    judge('random', msg, randomBytes(64));
  }
  out.push({ x: jwk.x, y: jwk.y, cases });
}
process.stdout.write(JSON.stringify(out));
