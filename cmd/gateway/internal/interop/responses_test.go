package interop

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// recorded is one response as openapi-responses.mjs reads it.
type recorded struct {
	Name    string            `json:"name"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// TestResponsesMatchOpenAPI sends requests that draw each kind of answer
// from a real gateway and has an independent validator (swagger-parser and
// ajv, see openapi-responses.mjs) check every response against
// schema/openapi.yaml: documented status, content type, headers, and a body
// valid against the documented schema. A client generated from the document
// relies on exactly that.
func TestResponsesMatchOpenAPI(t *testing.T) {
	dir := nodeModules(t)
	env := gatewaytest.Start(t, gatewaytest.Options{MaxBodyBytes: 64 << 10, MaxInflightBytes: 64 << 10})
	a, b := env.Partners["employer-a"], env.Partners["employer-b"]
	clientA, clientB := env.Client(&a.TLS), env.Client(&b.TLS)
	agency := env.Client(&env.Partners["agency-th"].TLS)
	insurer := env.Partners["insurer-wic"]

	notice := readExample(t, "sgemployer", "example-a.in.json")
	sign := func(doc []byte, p *gatewaytest.Partner) []byte {
		t.Helper()
		s, err := partnerkit.Sign(doc, p.SigningKey, partnerkit.Compact)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(s)
	}
	jose := map[string]string{"Content-Type": "application/jose"}
	var got []recorded
	// send answers a request; do also records the answer for the validator.
	send := func(name string, c *http.Client, method, path string, headers map[string]string, body []byte) recorded {
		t.Helper()
		req, err := http.NewRequest(method, env.Server.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r := recorded{Name: name, Method: method, Path: path, Status: resp.StatusCode, Headers: map[string]string{}, Body: string(b)}
		for k := range resp.Header {
			r.Headers[k] = resp.Header.Get(k)
		}
		return r
	}
	do := func(name string, c *http.Client, method, path string, headers map[string]string, body []byte) recorded {
		t.Helper()
		r := send(name, c, method, path, headers, body)
		got = append(got, r)
		return r
	}

	accepted := do("ok/accepted", clientA, "POST", "/v1/injury-notices", jose, sign(notice, a))
	do("ok/duplicate", clientA, "POST", "/v1/injury-notices", jose, sign(notice, a))
	detached, err := partnerkit.Sign(readExample(t, "sgemployer", "example-b.in.json"), a.SigningKey, partnerkit.Detached)
	if err != nil {
		t.Fatal(err)
	}
	do("ok/detached", clientA, "POST", "/v1/injury-notices",
		map[string]string{"Content-Type": "application/json", "X-JWS-Signature": detached}, readExample(t, "sgemployer", "example-b.in.json"))
	var rec struct{ RecordID string }
	if err := json.Unmarshal([]byte(accepted.Body), &rec); err != nil || rec.RecordID == "" {
		t.Fatalf("accepted: %s (%v)", accepted.Body, err)
	}
	do("ok/record", clientA, "GET", "/v1/injury-notices/"+rec.RecordID, nil, nil)
	do("ok/jwks", clientA, "GET", "/.well-known/jwks.json", nil, nil)
	do("ok/healthz", clientA, "GET", "/healthz", nil, nil)
	do("ok/insurer-batch", env.Client(&insurer.TLS), "POST", "/v1/insurer-claims", jose,
		sign(readExample(t, "insurerclaim", "example-batch.in.json"), insurer))
	do("ok/wsdl", agency, "GET", "/soap/v1/exchange?wsdl", nil, nil)
	do("ok/xsd", agency, "GET", "/soap/v1/agency-soap-v1.xsd", nil, nil)

	tampered := sign(notice, a)
	tampered[len(tampered)-5] ^= 1
	do("fail/bad-signature", clientA, "POST", "/v1/injury-notices", jose, tampered)
	do("fail/no-signature", clientA, "POST", "/v1/injury-notices", map[string]string{"Content-Type": "application/json"}, notice)
	do("fail/not-json", clientA, "POST", "/v1/injury-notices", jose, sign([]byte("{not json"), a))
	do("fail/schema", clientA, "POST", "/v1/injury-notices", jose, sign(withoutMember(t, notice, "reporter"), a))
	do("fail/other-employer", clientB, "POST", "/v1/injury-notices", jose, sign(notice, b))
	do("fail/conflict", clientA, "POST", "/v1/injury-notices", jose,
		sign(bytes.Replace(notice, []byte("HR Executive"), []byte("HR Manager"), 1), a))
	do("fail/too-large", clientA, "POST", "/v1/injury-notices", jose, bytes.Repeat([]byte("a"), 100<<10))
	do("fail/content-type", clientA, "POST", "/v1/injury-notices", map[string]string{"Content-Type": "text/plain"}, notice)
	do("fail/content-encoding", clientA, "POST", "/v1/injury-notices",
		map[string]string{"Content-Type": "application/jose", "Content-Encoding": "gzip"}, sign(notice, a))
	do("fail/record-of-other-partner", clientB, "GET", "/v1/injury-notices/"+rec.RecordID, nil, nil)
	do("fail/record-id", clientA, "GET", "/v1/injury-notices/not-a-uuid", nil, nil)
	do("fail/insurer-batch", env.Client(&insurer.TLS), "POST", "/v1/insurer-claims", jose,
		sign(withoutMember(t, readExample(t, "insurerclaim", "example-batch.in.json"), "batchId"), insurer))
	batch := readExample(t, "insurerclaim", "example-batch.in.json")
	batch = bytes.Replace(batch, []byte("WIC017-20260310-01"), []byte("WIC017-20260310-02"), -1)
	mixed := do("ok/insurer-batch-with-rejected-claim", env.Client(&insurer.TLS), "POST", "/v1/insurer-claims", jose,
		sign(bytes.Replace(batch, []byte(`"revision": 2`), []byte(`"revision": "two"`), 1), insurer))
	if !strings.Contains(mixed.Body, `"REJECTED"`) || !strings.Contains(mixed.Body, `"problems"`) {
		t.Errorf("a batch with a bad claim: %s", mixed.Body)
	}
	do("fail/soap", agency, "POST", "/soap/v1/exchange", map[string]string{"Content-Type": "text/xml", "SOAPAction": `""`}, []byte("<x/>"))
	// A SOAP 1.2 caller's refusals, of its body and of its headers, are SOAP
	// 1.2 Sender faults: 400.
	for _, r := range []recorded{
		do("fail/soap-1.2", agency, "POST", "/soap/v1/exchange",
			map[string]string{"Content-Type": `application/soap+xml; action="urn:xb-injury:exchange:v1#NotifyInjury"`}, []byte("<x/>")),
		do("fail/soap-1.2-content-encoding", agency, "POST", "/soap/v1/exchange",
			map[string]string{"Content-Type": "application/soap+xml", "Content-Encoding": "gzip"}, []byte("<x/>")),
	} {
		if r.Status != http.StatusBadRequest || !strings.HasPrefix(r.Headers["Content-Type"], "application/soap+xml") ||
			!strings.Contains(r.Body, "<soap:Value>soap:Sender</soap:Value>") {
			t.Errorf("%s: %d %s\n%s", r.Name, r.Status, r.Headers["Content-Type"], r.Body)
		}
	}

	var busy recorded
	finish := env.HoldBudget(t, "employer-a", 63<<10, func() int {
		busy = send("fail/busy", clientB, "POST", "/v1/injury-notices", jose, sign(notice, b))
		return busy.Status
	})
	finish()
	got = append(got, busy)

	// Each answer is the kind the case is named for.
	for _, r := range got {
		if ok := r.Status < 300; ok != strings.HasPrefix(r.Name, "ok/") {
			t.Errorf("%s: status %d: %s", r.Name, r.Status, r.Body)
		}
	}
	file := filepath.Join(t.TempDir(), "responses.json")
	list, _ := json.Marshal(got)
	if err := os.WriteFile(file, list, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := repoPath(t, "schema", "openapi.yaml")
	out := runNode(t, dir, nil, "openapi-responses.mjs", doc, file)
	checked := 0
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var v struct {
			Name   string
			Errors []string
		}
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		checked++
		for _, e := range v.Errors {
			t.Errorf("%s: %s", v.Name, e)
		}
	}
	if checked != len(got) {
		t.Fatalf("the validator checked %d responses of %d:\n%s", checked, len(got), out)
	}
}

// withoutMember returns the JSON object doc without its member name.
func withoutMember(t *testing.T, doc []byte, name string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, name)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
