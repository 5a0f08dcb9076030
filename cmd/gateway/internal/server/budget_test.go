package server_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
)

// TestInflightBudget: while a slow sender holds most of the in-flight
// budget, a notice is refused with 503 and Retry-After, an agency message
// with a retryable server fault, both logged; once the slow request ends,
// the notice is accepted.
func TestInflightBudget(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{MaxInflightBytes: 64 << 10})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	notice := []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact))

	var r response
	finish := env.HoldBudget(t, "employer-a", 63<<10, func() int {
		r = post(t, c, env.Server.URL, "application/jose", notice, nil)
		return r.status
	})
	assertProblem(t, r, problem.Unavailable, "")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	status, raw := postSOAP(t, env, "agency-th")
	if status != http.StatusInternalServerError {
		t.Fatalf("SOAP HTTP %d: %.300s", status, raw)
	}
	assertFault(t, raw, "server.unavailable")
	if n := count(t, env, `SELECT count(*) FROM message_log WHERE status = 503 OR problem_type LIKE '%server.unavailable'`); n < 2 {
		t.Fatalf("%d refusals logged, want 2 or more", n)
	}

	finish()
	for i := 0; ; i++ { // the server gives the bytes back once it has answered
		r = post(t, c, env.Server.URL, "application/jose", notice, nil)
		if r.status != http.StatusServiceUnavailable {
			break
		}
		if i == 500 {
			t.Fatal("still refused 5 s after the slow request ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.status != http.StatusAccepted && r.status != http.StatusOK {
		t.Fatalf("after the slow request: %d %s", r.status, r.body)
	}
}

// TestInflightBudgetPerPartner: while one partner's slow sender holds more
// than half the budget, that partner's next notice is refused with 503,
// and another partner's is accepted from the room left.
func TestInflightBudgetPerPartner(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{MaxInflightBytes: 64 << 10})
	a, b := env.Partners["employer-a"], env.Partners["employer-b"]
	ca, cb := env.Client(&a.TLS), env.Client(&b.TLS)
	doc := example(t, "example-a.in.json")
	noticeA := []byte(sign(t, doc, a.SigningKey, partnerkit.Compact))
	noticeB := []byte(sign(t, bytes.Replace(doc, []byte("201912345K"), []byte("200000001A"), 1), b.SigningKey, partnerkit.Compact))

	var r response
	finish := env.HoldBudget(t, "employer-a", 40<<10, func() int {
		r = post(t, ca, env.Server.URL, "application/jose", noticeA, nil)
		return r.status
	})
	defer finish()
	assertProblem(t, r, problem.Unavailable, "")
	if r = post(t, cb, env.Server.URL, "application/jose", noticeB, nil); r.status != http.StatusAccepted {
		t.Fatalf("employer-b beside employer-a's burst: %d %s", r.status, r.body)
	}
}
