package server_test

import (
	"net/http"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
)

// TestContentEncoding: a body is taken as it is. One declared with a content
// coding other than identity (here a valid notice, so that only the header
// is at fault) is refused unread: 415 for a notice, the fault
// client.schema.invalid for an agency message; each refusal is logged and
// nothing is accepted. identity is the body as it is, and accepted.
func TestContentEncoding(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	notice := []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact))
	for _, coding := range []string{"gzip", "identity, br", "x-custom"} {
		t.Run("fail/"+coding, func(t *testing.T) {
			before := count(t, env, `SELECT count(*) FROM message_log WHERE status = 415`)
			r := post(t, c, env.Server.URL, "application/jose", notice, map[string]string{"Content-Encoding": coding})
			assertProblem(t, r, problem.UnsupportedMediaType, `[]`)
			if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
				t.Fatalf("%d records accepted", n)
			}
			if after := count(t, env, `SELECT count(*) FROM message_log WHERE status = 415`); after != before+1 {
				t.Fatalf("refusal not logged (%d -> %d)", before, after)
			}
		})
	}
	t.Run("fail/soap-gzip", func(t *testing.T) {
		status, raw := postSOAPWith(t, env, "agency-th", map[string]string{"Content-Encoding": "gzip"})
		if status != http.StatusInternalServerError {
			t.Fatalf("HTTP %d: %.300s", status, raw)
		}
		assertFault(t, raw, "client.schema.invalid")
	})
	t.Run("ok/identity", func(t *testing.T) {
		if r := post(t, c, env.Server.URL, "application/jose", notice, map[string]string{"Content-Encoding": "identity"}); r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if status, raw := postSOAPWith(t, env, "agency-th", map[string]string{"Content-Encoding": "identity"}); status != http.StatusOK {
			t.Fatalf("SOAP HTTP %d: %.300s", status, raw)
		}
	})
}
