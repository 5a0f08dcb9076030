// Validates documents with ajv (JSON Schema 2020-12, ECMA-262 regular
// expressions, formats asserted by ajv-formats), independent of the
// gateway's JSON Schema library and of Go's regexp.
//
// Usage: node jsonschema-verdicts.mjs SCHEMA_DIR DOCS. DOCS has one JSON
// object per line: {schema: file name in SCHEMA_DIR, doc: the document's
// text}. Prints one line per document: true (valid) or false.
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [dir, docs] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: false, allErrors: false });
addFormats(ajv);
const validators = new Map();
function validator(name) {
  if (!validators.has(name)) {
    validators.set(name, ajv.compile(JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'))));
  }
  return validators.get(name);
}

const out = [];
for (const line of fs.readFileSync(docs, 'utf8').split('\n')) {
  if (line === '') continue;
  const { schema, doc } = JSON.parse(line);
  out.push(String(validator(schema)(JSON.parse(doc))));
}
process.stdout.write(out.join('\n') + '\n');
