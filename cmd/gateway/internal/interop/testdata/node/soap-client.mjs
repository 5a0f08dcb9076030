// An agency's system written with npm soap and its WSSecurityCert,
// independent of the gateway's Go code: it loads the gateway's WSDL, calls
// NotifyInjury over mutual TLS with an X.509-signed envelope (RSA-SHA256,
// SHA-256 digests, exclusive C14N, Body and Timestamp referenced by wsu:Id),
// and prints the raw signed response for the test to verify, or the fault
// as npm soap read it.
//
// Environment: WSDL (file path), ENDPOINT, CA_CERT, CLIENT_CERT, CLIENT_KEY,
// SIGNING_CERT, SIGNING_KEY, BODY (file holding the xb:NotifyInjury element),
// SOAP12 (1: send SOAP 1.2 envelopes, application/soap+xml with an action).
import soap from 'soap';
import https from 'node:https';
import { readFileSync } from 'node:fs';

const env = process.env;
const agent = new https.Agent({
  ca: readFileSync(env.CA_CERT),
  cert: readFileSync(env.CLIENT_CERT),
  key: readFileSync(env.CLIENT_KEY),
  keepAlive: true,
});
const client = await soap.createClientAsync(env.WSDL, { endpoint: env.ENDPOINT, forceSoap12Headers: env.SOAP12 === '1' });
const exc = 'http://www.w3.org/2001/10/xml-exc-c14n#';
client.setSecurity(new soap.WSSecurityCert(readFileSync(env.SIGNING_KEY), readFileSync(env.SIGNING_CERT), '', {
  signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
  signatureTransformations: [exc],
  signerOptions: { idMode: 'wssecurity' },
}));
let out;
try {
  const [, rawResponse] = await client.NotifyInjuryAsync({ _xml: readFileSync(env.BODY, 'utf8') }, { httpsAgent: agent });
  out = { ok: true, response: rawResponse, contentType: client.lastResponseHeaders?.['content-type'] };
} catch (err) {
  // A SOAP Fault: npm soap parses it into err.root; the test checks what it read.
  out = {
    ok: false, error: String(err && err.message), response: err && err.body,
    status: err?.response?.status, contentType: err?.response?.headers?.['content-type'],
    fault: err?.root?.Envelope?.Body?.Fault,
  };
}
console.log(JSON.stringify(out));
agent.destroy();
