package interop

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

// need skips (or, in CI, fails) when a tool is missing.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("JAMBATAN_REQUIRE_INTEROP") != "" {
			t.Fatalf("%s is required (JAMBATAN_REQUIRE_INTEROP is set): %v", tool, err)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

// nodeModules installs the pinned npm packages once (npm ci).
func nodeModules(t *testing.T) string {
	t.Helper()
	need(t, "node")
	dir, _ := filepath.Abs(filepath.Join("testdata", "node"))
	if installed(dir) {
		return dir
	}
	npm := need(t, "npm")
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("JAMBATAN_REQUIRE_INTEROP") != "" {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
		t.Skipf("npm ci failed: %v\n%s", err, out)
	}
	return dir
}

// runNode runs script (and args) with node in dir, env added to the
// environment, and returns its stdout; a failure ends the test with its
// stderr.
func runNode(t *testing.T, dir string, env []string, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return out
}

// pythonScript returns python3 (see need) and the absolute path of a
// script under testdata/python.
func pythonScript(t *testing.T, name string) (python, script string) {
	t.Helper()
	python = need(t, "python3")
	script, err := filepath.Abs(filepath.Join("testdata", "python", name))
	if err != nil {
		t.Fatal(err)
	}
	return python, script
}

// repoPath is the absolute path of a file of the repository, given from its
// root (the tests run in cmd/gateway/internal/interop).
func repoPath(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "..", ".."}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readExample reads an adapter's example document.
func readExample(t *testing.T, adapter, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, "adapters", adapter, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// installed reports whether every dependency package.json names is in
// node_modules, so a package added since the last npm ci is installed.
func installed(dir string) bool {
	var pkg struct{ Dependencies map[string]string }
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return false
	}
	for name := range pkg.Dependencies {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", name, "package.json")); err != nil {
			return false
		}
	}
	return true
}

func examples(t *testing.T, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, repoPath(t, "adapters", "sgemployer", "testdata", n))
	}
	return out
}

// TestJoseClient: notices signed by npm jose in all three forms are accepted,
// and each receipt verifies with jose against /.well-known/jwks.json.
func TestJoseClient(t *testing.T) {
	dir := nodeModules(t)
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ca, cert, key, jwkFile := env.WriteFiles(t, "employer-a")
	notices, _ := json.Marshal(examples(t, "example-a.in.json", "example-b.in.json", "example-c.in.json"))

	out := runNode(t, dir, []string{"GATEWAY_URL=" + env.Server.URL, "CA_CERT=" + ca, "CLIENT_CERT=" + cert, "CLIENT_KEY=" + key,
		"SIGNING_JWK=" + jwkFile, "NOTICES=" + string(notices)}, "jose-client.mjs")
	type result struct {
		Form, Outcome, RecordID, ReceiptKid, Body string
		Status                                    int
		ReceiptVerified                           bool
	}
	var got []result
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		got = append(got, r)
	}
	want := []struct {
		form, outcome, recordID string
		status                  int
	}{
		{"compact", "ACCEPTED", "b0867b30-be3c-5595-a939-c4d47c281950", 202},
		{"detached", "ACCEPTED", "49608558-04ae-5d7c-a934-d2dd79fe3682", 202},
		{"unencoded", "ACCEPTED", "1dbebe23-7e2a-5f97-93b8-aa32c700f991", 202},
		{"compact", "DUPLICATE", "b0867b30-be3c-5595-a939-c4d47c281950", 200},
	}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(got), len(want), out)
	}
	for i, w := range want {
		g := got[i]
		if g.Form != w.form || g.Status != w.status || g.Outcome != w.outcome || g.RecordID != w.recordID || !g.ReceiptVerified || g.ReceiptKid != env.Receipts.KeyID() {
			t.Errorf("submission %d: %+v, want %+v", i, g, w)
		}
	}
}

// TestSoapClient: an agency client written with npm soap (WSSecurityCert)
// calls NotifyInjury through the gateway's WSDL, in SOAP 1.1 and in SOAP 1.2,
// and gets a signed acknowledgement in its version, which the test verifies;
// a schema-invalid notification gets a Fault npm soap reads, with the HTTP
// status of that version.
func TestSoapClient(t *testing.T) {
	dir := nodeModules(t)
	s := string(readExample(t, "agencysoap", "example-10.1.request.xml"))
	body := s[strings.Index(s, "<xb:NotifyInjury>"):strings.Index(s, "</soap:Body>")]
	body = strings.Replace(body, "<xb:NotifyInjury>", `<xb:NotifyInjury xmlns:xb="urn:xb-injury:exchange:v1">`, 1)
	wsdl := repoPath(t, "schema", "agency-soap-v1.wsdl")

	for _, tc := range []struct {
		name, soap12, contentType string
		faultStatus               int
	}{
		{"ok/soap-1.1", "0", "text/xml; charset=utf-8", 500},
		{"ok/soap-1.2", "1", "application/soap+xml; charset=utf-8", 400}, // env:Sender (SOAP 1.2 part 2 §7.5.2.2)
	} {
		t.Run(tc.name, func(t *testing.T) {
			// npm soap's WSSecurityCert writes a Timestamp valid for 10 minutes; the
			// exchange profile allows 5, so this gateway is configured to accept 10.
			env := gatewaytest.Start(t, gatewaytest.Options{SOAPMaxTTL: 11 * time.Minute})
			ca, cert, key, _ := env.WriteFiles(t, "agency-th")
			ag := env.Partners["agency-th"]
			signCert, signKey := filepath.Join(env.Dir, "ws.pem"), filepath.Join(env.Dir, "ws.key")
			if err := certs.WriteFiles(signCert, signKey, ag.WSSigning.Cert, ag.WSSigning.Key); err != nil {
				t.Fatal(err)
			}
			type result struct {
				OK              bool
				Error, Response string
				Status          int
				ContentType     string
				Fault           map[string]any // as npm soap read it
			}
			call := func(body string) result {
				t.Helper()
				bodyFile := filepath.Join(t.TempDir(), "body.xml")
				if err := os.WriteFile(bodyFile, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				out := runNode(t, dir, []string{"WSDL=" + wsdl, "ENDPOINT=" + env.Server.URL + "/soap/v1/exchange", "CA_CERT=" + ca,
					"CLIENT_CERT=" + cert, "CLIENT_KEY=" + key, "SIGNING_CERT=" + signCert, "SIGNING_KEY=" + signKey,
					"BODY=" + bodyFile, "SOAP12=" + tc.soap12}, "soap-client.mjs")
				var res result
				if err := json.Unmarshal(out, &res); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				return res
			}

			// A body against the schema: the fault, read by npm soap, names the
			// dotted sub-code and the place.
			bad := call(strings.Replace(body, "<xb:Sender>TH:SSO</xb:Sender>", "<xb:Sender>th:sso</xb:Sender>", 1))
			if bad.OK || bad.Fault == nil || bad.Status != tc.faultStatus || bad.ContentType != tc.contentType {
				t.Fatalf("a schema-invalid notification: %+v", bad)
			}
			fault, _ := json.Marshal(bad.Fault)
			if !bytes.Contains(fault, []byte("client.schema.invalid")) || !bytes.Contains(fault, []byte("/xb:NotifyInjury/xb:Header/xb:Sender")) {
				t.Fatalf("the fault as npm soap read it: %s", fault)
			}

			res := call(body)
			if !res.OK || res.ContentType != tc.contentType {
				t.Fatalf("npm soap call: %s (%s)\n%s", res.Error, res.ContentType, res.Response)
			}
			doc, err := wssec.Parse([]byte(res.Response), wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			v := &wssec.Verifier{Trust: func(c *x509.Certificate) error {
				if !c.Equal(env.SOAPSigning.Cert) {
					return errors.New("not the gateway's signing certificate")
				}
				return nil
			}}
			r, verr := v.Verify(doc)
			if verr != nil {
				t.Fatalf("the acknowledgement does not verify: %v\n%s", verr, res.Response)
			}
			want := wssec.NSSoap11
			if tc.soap12 == "1" {
				want = wssec.NSSoap12
			}
			if r.SOAP != want || r.BodyChild.Tag != "InjuryAcknowledgement" || !strings.HasPrefix(r.BodyChild.FindElement("./Header/CaseId").Text(), "MY:PERKESO:XB-") {
				t.Fatalf("response %s", res.Response)
			}
		})
	}
}

// TestOpenAPIDocument: schema/openapi.yaml, which partners generate clients
// from, is a valid OpenAPI 3.1 document with every $ref resolved, for
// @apidevtools/swagger-parser. (It was not: its license object lacked the
// identifier 3.1 requires.)
func TestOpenAPIDocument(t *testing.T) {
	dir := nodeModules(t)
	doc := repoPath(t, "schema", "openapi.yaml")
	out := runNode(t, dir, nil, "openapi-validate.mjs", doc)
	var got struct {
		OpenAPI string
		Paths   []string
	}
	if err := json.Unmarshal(out, &got); err != nil || got.OpenAPI != "3.1.0" || len(got.Paths) < 5 {
		t.Fatalf("swagger-parser: %s (%v)", out, err)
	}
}

// ndjsonFile writes items as JSON lines to a file in t's temporary
// directory, for a script to read one document at a time.
func ndjsonFile[T any](t *testing.T, items []T) string {
	t.Helper()
	var lines bytes.Buffer
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		lines.Write(append(b, '\n'))
	}
	file := filepath.Join(t.TempDir(), "docs.ndjson")
	if err := os.WriteFile(file, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
