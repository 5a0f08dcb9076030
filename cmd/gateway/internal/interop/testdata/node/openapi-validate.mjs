// Validates an OpenAPI document with @apidevtools/swagger-parser (against
// the OpenAPI 3.1 schema, with every $ref resolved), independent of the
// gateway's Go code. Usage: node openapi-validate.mjs FILE. Prints the
// version and the number of paths, or why the document is not valid.
import SwaggerParser from '@apidevtools/swagger-parser';

try {
  const api = await SwaggerParser.validate(process.argv[2]);
  process.stdout.write(JSON.stringify({ openapi: api.openapi, paths: Object.keys(api.paths) }));
} catch (e) {
  process.stderr.write(e.message);
  process.exit(1);
}
