package partnerkit_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestSubmitRetriesBusy: a submission answered 503 with Retry-After (the
// gateway's in-flight budget spent) is sent again and accepted once the
// budget has room; other answers are returned as they are.
func TestSubmitRetriesBusy(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{MaxInflightBytes: 64 << 10})
	caFile, certFile, keyFile, _ := env.WriteFiles(t, "employer-a")
	c, err := partnerkit.NewClient(env.Server.URL, caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key := env.Partners["employer-a"].SigningKey
	notice, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	hc := env.Client(&env.Partners["employer-a"].TLS)
	finish := env.HoldBudget(t, "employer-a", 63<<10, func() int {
		// 2 KiB do not fit beside the 63 KiB held (a notice is about 4 KiB).
		r, err := hc.Post(env.Server.URL+"/v1/injury-notices", "application/jose", bytes.NewReader(bytes.Repeat([]byte("x"), 2<<10)))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	})
	var retried []int
	c.OnRetry = func(status, attempt int) { retried = append(retried, status, attempt) }
	go func() {
		time.Sleep(1500 * time.Millisecond)
		finish()
	}()
	start := time.Now()
	resp, err := c.Submit("/v1/injury-notices", notice, key, partnerkit.Compact)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusAccepted {
		t.Fatalf("HTTP %d: %s", resp.Status, resp.Body)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("accepted after %v: the budget was not held", waited)
	}
	if len(retried) < 2 || retried[0] != http.StatusServiceUnavailable || retried[1] != 1 {
		t.Fatalf("OnRetry heard %v, want 503 after the first send", retried)
	}

	// An answer other than 503 is not retried: the same notice again is a
	// duplicate at once, and garbage is refused at once.
	if resp, err = c.Submit("/v1/injury-notices", notice, key, partnerkit.Compact); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("again: %v %+v", err, resp)
	}
	if resp, err = c.Raw("POST", "/v1/injury-notices", map[string]string{"Content-Type": "application/jose"}, []byte("x")); err != nil || resp.Status != http.StatusUnauthorized {
		t.Fatalf("garbage: %v %+v", err, resp)
	}
}
