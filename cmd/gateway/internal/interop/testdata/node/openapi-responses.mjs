// Checks recorded gateway responses against the OpenAPI document, with
// @apidevtools/swagger-parser (every $ref resolved) and ajv's JSON Schema
// 2020-12 validator with ajv-formats: independent of the gateway's Go code
// and of the JSON Schema library it uses.
//
// Usage: node openapi-responses.mjs OPENAPI RESPONSES. RESPONSES is a JSON
// array of {name, method, path, status, headers: {name: value}, body}. For
// each, the operation must be documented for the path and method, the status
// among its responses, the content type among that response's, the body valid
// against its schema (JSON types), and each documented header present and
// valid against its schema. Prints one line per response: {name, errors}.
import fs from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const api = await SwaggerParser.dereference(process.argv[2]);
const responses = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

// The documented path template a request path matches ("{x}" is one segment).
function template(path) {
  for (const t of Object.keys(api.paths)) {
    const re = new RegExp('^' + t.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+') + '$');
    if (re.test(path)) return t;
  }
  return null;
}

function schemaErrors(schema, value, where) {
  const validate = ajv.compile(schema);
  if (validate(value)) return [];
  return validate.errors.map((e) => `${where}${e.instancePath} ${e.message}`);
}

function check(r) {
  const t = template(r.path.split('?')[0]);
  if (!t) return [`path ${r.path} is not documented`];
  const op = api.paths[t][r.method.toLowerCase()];
  if (!op) return [`${r.method} ${t} is not documented`];
  const res = op.responses[String(r.status)] ?? op.responses.default;
  if (!res) return [`status ${r.status} of ${r.method} ${t} is not documented`];
  const errors = [];
  const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), v]));
  for (const [name, h] of Object.entries(res.headers ?? {})) {
    const v = headers[name.toLowerCase()];
    if (v === undefined) {
      errors.push(`header ${name} is missing`);
    } else if (h.schema) {
      errors.push(...schemaErrors(h.schema, v, `header ${name}`));
    }
  }
  const ctype = (headers['content-type'] ?? '').split(';')[0].trim();
  const media = (res.content ?? {})[ctype];
  if (!media) {
    errors.push(`content type "${ctype}" is not documented (${Object.keys(res.content ?? {}).join(', ')})`);
    return errors;
  }
  if (media.schema && /(^|\+|\/)json$/.test(ctype)) {
    let body;
    try {
      body = JSON.parse(r.body);
    } catch (e) {
      return [...errors, `body is not JSON: ${e.message}`];
    }
    errors.push(...schemaErrors(media.schema, body, 'body'));
  } else if (media.schema) {
    errors.push(...schemaErrors(media.schema, r.body, 'body'));
  }
  return errors;
}

for (const r of responses) {
  process.stdout.write(JSON.stringify({ name: r.name, errors: check(r) }) + '\n');
}
