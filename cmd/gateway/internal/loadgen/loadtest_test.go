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
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.StartTLS()
	defer srv.Close()
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
			s, err := LoadTest(context.Background(), TestConfig{URL: srv.URL, TLS: &tls.Config{RootCAs: pool}, Key: key,
				Template: []byte(`{"noticeId":"N"}`), TemplateID: "N", Prefix: "P-", Concurrency: tc.clients, Duration: tc.dur, PresignRate: tc.presignRate, Rate: tc.rate})
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
