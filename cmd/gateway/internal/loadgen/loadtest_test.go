package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// TestPoolExhausted: a duration run that sends every pre-signed notice
// before its time is up stops and says so; one that does not, does not.
func TestPoolExhausted(t *testing.T) {
	target := accepting(t, 0)
	for _, tc := range []struct {
		name              string
		dur               time.Duration
		presignRate, rate float64
		exhausted         bool
		clients           int
	}{
		// 2/s for 10 s: 20 + 2 notices, sent in far less than 10 s.
		{"ok/exhausted", 10 * time.Second, 2, 0, true, 2},
		// Paced at 50/s for 0.4 s: 20 + 2 notices, about 20 of them sent.
		{"ok/paced", 400 * time.Millisecond, 0, 50, false, 2},
		// Paced at 2,000/s for 0.5 s, ticks under a millisecond apart:
		// about 1,000 sent (a ticker's pace sent 492-508 here: it drops
		// the ticks it cannot deliver in time).
		{"ok/paced-fast", 500 * time.Millisecond, 0, 2000, false, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := target
			cfg.Concurrency, cfg.Duration, cfg.PresignRate, cfg.Rate = tc.clients, tc.dur, tc.presignRate, tc.rate
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.PoolExhausted != tc.exhausted || s.Accepted == 0 {
				t.Fatalf("pool_exhausted %v, want %v (%+v)", s.PoolExhausted, tc.exhausted, s)
			}
			if tc.exhausted && (s.Accepted != 22 || s.DurationS >= tc.dur.Seconds()) {
				t.Fatalf("exhausted run: %d accepted in %.1f s, want 22 in under %v", s.Accepted, s.DurationS, tc.dur)
			}
			if want := tc.rate * tc.dur.Seconds(); tc.rate > 0 && (float64(s.Accepted) < 0.9*want || float64(s.Accepted) > want+1) {
				t.Fatalf("paced at %.0f/s for %v: %d accepted, want about %.0f", tc.rate, tc.dur, s.Accepted, want)
			}
		})
	}
}

// accepting is the configuration of a run against a TLS server that
// answers every notice 202 after delay.
func accepting(t *testing.T, delay time.Duration) TestConfig {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "k1")
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256())
	return TestConfig{URL: srv.URL, TLS: &tls.Config{RootCAs: pool}, Key: key,
		Template: []byte(`{"noticeId":"N"}`), TemplateID: "N", Prefix: "P-"}
}

// TestSendLag: a paced run says how late it sent its requests, so a gateway
// slower than the rate shows even though latencies count from the send:
// one client against a server taking 10 ms a request, paced at 500/s, falls
// behind by most of the run; two clients paced at 100/s keep up. An
// unpaced run has no schedule to lag.
func TestSendLag(t *testing.T) {
	for _, tc := range []struct {
		name           string
		delay          time.Duration
		clients        int
		rate           float64
		minLag, maxLag float64 // ms, of the greatest lag
	}{
		{"ok/falls-behind", 10 * time.Millisecond, 1, 500, 150, 1000},
		{"ok/keeps-up", 0, 2, 100, 0, 50},
		{"ok/unpaced", 0, 2, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := accepting(t, tc.delay)
			cfg.Concurrency, cfg.Duration, cfg.Rate = tc.clients, 400*time.Millisecond, tc.rate
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rate == 0 {
				if s.SendLagMS != nil {
					t.Fatalf("an unpaced run reports send lag %v", s.SendLagMS)
				}
				return
			}
			if lag := s.SendLagMS["max"]; s.SendLagMS == nil || lag < tc.minLag || lag > tc.maxLag {
				t.Fatalf("greatest send lag %v ms (of %v), want %v to %v", lag, s.SendLagMS, tc.minLag, tc.maxLag)
			}
			latency := s.LatencyMS["max"]
			if tc.delay > 0 && latency > 100 {
				t.Fatalf("greatest latency %v ms: latencies should count from the send", latency)
			}
		})
	}
}
