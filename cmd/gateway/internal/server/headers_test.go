package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
)

// TestRequestHeaders: headers the gateway could only misread are refused
// before the body is read, each refusal logged and nothing accepted (the
// bodies are valid notices, so only the headers are at fault): a header it
// reads once sent twice (two signatures, two media types), and a content
// coding other than identity (a body is taken as it is; a gzip body was
// read as the document). An agency message gets the fault
// client.schema.invalid for the same. identity is the body as it is.
func TestRequestHeaders(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	doc := example(t, "example-b.in.json")
	compact := []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact))
	detached := sign(t, doc, a.SigningKey, partnerkit.Detached)
	const sigProblem = `[{"pointer":"","code":"SIGNATURE"}]`
	for _, tc := range []struct {
		name     string
		body     []byte
		header   http.Header
		kind     problem.Kind
		problems string
	}{
		{"fail/gzip", compact, http.Header{"Content-Type": {"application/jose"}, "Content-Encoding": {"gzip"}}, problem.UnsupportedMediaType, `[]`},
		{"fail/identity-then-br", compact, http.Header{"Content-Type": {"application/jose"}, "Content-Encoding": {"identity, br"}}, problem.UnsupportedMediaType, `[]`},
		{"fail/two-coding-headers", compact, http.Header{"Content-Type": {"application/jose"}, "Content-Encoding": {"identity", "x-custom"}}, problem.UnsupportedMediaType, `[]`},
		{"fail/two-signature-headers", doc, http.Header{"Content-Type": {"application/json"}, "X-Jws-Signature": {detached, "eyJhbGciOiJub25lIn0..x"}}, problem.Signature, sigProblem},
		{"fail/the-same-signature-twice", doc, http.Header{"Content-Type": {"application/json"}, "X-Jws-Signature": {detached, detached}}, problem.Signature, sigProblem},
		{"fail/two-content-types", compact, http.Header{"Content-Type": {"application/jose", "application/json"}}, problem.BadRequest, `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, env, `SELECT count(*) FROM message_log`)
			assertProblem(t, postHeader(t, c, env.Server.URL, tc.body, tc.header), tc.kind, tc.problems)
			if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
				t.Fatalf("%d records accepted", n)
			}
			if after := count(t, env, `SELECT count(*) FROM message_log`); after != before+1 {
				t.Fatalf("refusal not logged (%d -> %d)", before, after)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"fail/soap-gzip", http.Header{"Content-Encoding": {"gzip"}}},
		{"fail/soap-two-actions", http.Header{"Soapaction": {`"urn:xb-injury:exchange:v1#NotifyInjury"`}}}, // a second one
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := postSOAPWith(t, env, "agency-th", tc.header)
			if status != http.StatusInternalServerError {
				t.Fatalf("HTTP %d: %.300s", status, raw)
			}
			assertFault(t, raw, "client.schema.invalid")
		})
	}
	t.Run("ok/identity", func(t *testing.T) {
		h := http.Header{"Content-Type": {"application/jose"}, "Content-Encoding": {"identity"}}
		if r := postHeader(t, c, env.Server.URL, compact, h); r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if status, raw := postSOAPWith(t, env, "agency-th", http.Header{"Content-Encoding": {"identity"}}); status != http.StatusOK {
			t.Fatalf("SOAP HTTP %d: %.300s", status, raw)
		}
	})
}

// TestSubmissionQueryRefused: no submission route reads a query, so a
// submission that comes with one is refused unread, whatever it says, its
// refusal logged and nothing accepted: a partner's ?dryRun=true was a real
// notice, accepted, stored and published. A bare "?" carries no parameter.
func TestSubmissionQueryRefused(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	a, ins := env.Partners["employer-a"], env.Partners["insurer-wic"]
	notice := []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact))
	batch := []byte(sign(t, insurerBatch(t), ins.SigningKey, partnerkit.Compact))
	postTo := func(p *gatewaytest.Partner, target string, body []byte) response {
		t.Helper()
		return postJOSE(t, env.Client(&p.TLS), env.Server.URL+target, body)
	}
	for _, tc := range []struct {
		name string
		post func() response
	}{
		{"fail/notice-dry-run", func() response { return postTo(a, "/v1/injury-notices?dryRun=true", notice) }},
		{"fail/notice-empty-parameter", func() response { return postTo(a, "/v1/injury-notices?test", notice) }},
		{"fail/claims-test", func() response { return postTo(ins, "/v1/insurer-claims?test=1", batch) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, env, `SELECT count(*) FROM message_log`)
			r := tc.post()
			assertProblem(t, r, problem.BadRequest, `[]`)
			if !bytes.Contains(r.body, []byte("there is no test or dry-run mode")) {
				t.Fatalf("detail: %s", r.body)
			}
			if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
				t.Fatalf("%d records accepted", n)
			}
			if after := count(t, env, `SELECT count(*) FROM message_log`); after != before+1 {
				t.Fatalf("refusal not logged (%d -> %d)", before, after)
			}
		})
	}
	t.Run("fail/soap-with-a-query", func(t *testing.T) {
		r := postSOAPTo(t, env, "agency-th", "/soap/v1/exchange?wsdl", nil)
		if r.status != http.StatusInternalServerError {
			t.Fatalf("HTTP %d: %.300s", r.status, r.body)
		}
		assertFault(t, r.body, "client.schema.invalid")
		if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
			t.Fatalf("%d records accepted", n)
		}
	})
	t.Run("ok/bare-question-mark", func(t *testing.T) {
		other := []byte(sign(t, example(t, "example-b.in.json"), a.SigningKey, partnerkit.Compact))
		if r := postTo(a, "/v1/injury-notices?", other); r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

// postJOSE posts a compact JWS to url as it is (its path and query).
func postJOSE(t testing.TB, c *http.Client, url string, body []byte) response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/jose")
	return send(t, c, req)
}
