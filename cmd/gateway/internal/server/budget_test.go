package server_test

import (
	"bytes"
	"io"
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

	// slow starts a sender that declares 63 KiB and sends 8 KiB of them
	// (more than the client transport buffers, so the server has the
	// request); finish ends it, and done is closed once it has its answer.
	slow := func() (finish func(), done chan struct{}) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", env.Server.URL+"/v1/injury-notices", pr)
		req.ContentLength = 63 << 10
		req.Header.Set("Content-Type", "application/jose")
		done = make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		go func() { _, _ = pw.Write(bytes.Repeat([]byte("e"), 8<<10)) }()
		return func() { pw.CloseWithError(io.ErrUnexpectedEOF) }, done
	}

	// Post the notice until it is refused. The slow request is itself
	// refused when it arrives while a notice holds its bytes (and then its
	// connection waits for the rest of its body); so, after half a second
	// without a refusal, it is ended and started again.
	var (
		r            response
		finish, done = slow()
	)
	for i := 1; r.status != http.StatusServiceUnavailable; i++ {
		if i%50 == 0 {
			if i == 500 {
				t.Fatal("no notice refused in 10 tries")
			}
			finish()
			<-done
			finish, done = slow()
		}
		time.Sleep(10 * time.Millisecond)
		r = post(t, c, env.Server.URL, "application/jose", notice, nil)
	}
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
	<-done
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
