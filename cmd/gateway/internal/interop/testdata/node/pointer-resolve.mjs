// pointer-resolve.mjs: resolves the problems' JSON Pointers of each
// document with npm jsonpointer (RFC 6901), for TestJsonPointerResolvesProblems.
// Input (NDJSON, the file named by the first argument): {"doc": JSON text,
// "pointers": [...]}. Output: one line per document, one word per pointer:
// "value" (it names a value), "absent" (its parent is an object without
// that member, or an array without that index), "unresolved" (its parent
// names nothing) or "invalid" (not a JSON Pointer).
import { readFileSync } from 'node:fs';
import jsonpointer from 'jsonpointer';

const unescape = (t) => t.replace(/~1/g, '/').replace(/~0/g, '~');
const judge = (doc, ptr) => {
  try {
    if (jsonpointer.get(doc, ptr) !== undefined) return 'value';
    const cut = ptr.lastIndexOf('/');
    if (cut < 0) return 'invalid';
    const parent = cut === 0 ? doc : jsonpointer.get(doc, ptr.slice(0, cut));
    const token = unescape(ptr.slice(cut + 1));
    if (Array.isArray(parent)) {
      return /^(0|[1-9][0-9]*)$/.test(token) && Number(token) >= parent.length ? 'absent' : 'unresolved';
    }
    if (parent !== null && typeof parent === 'object') {
      return Object.hasOwn(parent, token) ? 'unresolved' : 'absent';
    }
    return 'unresolved';
  } catch (e) {
    return 'invalid';
  }
};
for (const line of readFileSync(process.argv[2], 'utf8').split('\n')) {
  if (!line) continue;
  const { doc, pointers } = JSON.parse(line);
  const d = JSON.parse(doc);
  console.log(pointers.map((p) => judge(d, p)).join(' ') || '-');
}
