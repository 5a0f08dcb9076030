package gatewaytest

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// HoldBudget has partner id hold n bytes of the gateway's in-flight budget
// (Options.MaxInflightBytes) until finish is called: a slow sender declares
// n body bytes and sends only 8 KiB of them (more than the client transport
// buffers, so the gateway has the request). It returns once probe, a
// request of the test's own, is refused with 503. The slow sender is itself
// refused when it arrives while a probe holds bytes (and its connection then
// waits for the rest of its body), so after half a second without a refusal
// it is ended and started again. finish ends the slow request and waits for
// its answer.
func (e *Env) HoldBudget(t testing.TB, id string, n int64, probe func() int) (finish func()) {
	t.Helper()
	c := e.Client(&e.Partners[id].TLS)
	slow := func() func() {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", e.Server.URL+"/v1/injury-notices", pr)
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/jose")
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		go func() { _, _ = pw.Write(bytes.Repeat([]byte("e"), 8<<10)) }()
		return func() {
			pw.CloseWithError(io.ErrUnexpectedEOF)
			<-done
		}
	}
	finish = slow()
	for i := 1; ; i++ {
		time.Sleep(10 * time.Millisecond)
		if probe() == http.StatusServiceUnavailable {
			return finish
		}
		if i%50 == 0 {
			if i == 500 {
				finish()
				t.Fatal("gatewaytest: the budget was not held in 10 tries")
			}
			finish()
			finish = slow()
		}
	}
}
