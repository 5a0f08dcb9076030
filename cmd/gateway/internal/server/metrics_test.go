package server_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestRequestMetrics checks the request counter's labels as the ops
// listener shows them: the route's pattern, the partner the client
// certificate names (none before the route is known) and the status.
func TestRequestMetrics(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	env := gatewaytest.Start(t, gatewaytest.Options{Metrics: m})
	a, b := env.Partners["employer-a"], env.Partners["employer-b"]
	doc := example(t, "example-a.in.json")
	if r := post(t, env.Client(&a.TLS), env.Server.URL, "application/jose", []byte(sign(t, doc, a.SigningKey, partnerkit.Compact)), nil); r.status != 202 {
		t.Fatalf("accepted: status %d: %s", r.status, r.body)
	}
	if r := post(t, env.Client(&b.TLS), env.Server.URL, "application/jose", []byte("not.a.jws"), nil); r.status != 401 {
		t.Fatalf("unsigned: status %d: %s", r.status, r.body)
	}
	resp, err := env.Client(&b.TLS).Get(env.Server.URL + "/v1/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for _, tc := range []struct {
		name                    string
		route, partner, outcome string
		want                    float64
	}{
		{"ok/accepted", "POST /v1/injury-notices", "employer-a", "202", 1},
		{"ok/refused signature", "POST /v1/injury-notices", "employer-b", "401", 1},
		{"ok/unknown route", "unknown", "", "404", 1},
		{"ok/nothing else for employer-a", "POST /v1/injury-notices", "employer-a", "401", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := testutil.ToFloat64(m.Requests.WithLabelValues(tc.route, tc.partner, tc.outcome)); got != tc.want {
				t.Errorf("jambatan_requests_total{route=%q,partner=%q,outcome=%q} = %v, want %v", tc.route, tc.partner, tc.outcome, got, tc.want)
			}
		})
	}
	if n := testutil.CollectAndCount(m.Latency); n != 2 { // one series a route
		t.Errorf("jambatan_intake_seconds has %d series, want 2", n)
	}
	if n := testutil.CollectAndCount(m.Verification); n != 1 {
		t.Errorf("jambatan_verification_failures_total has %d series, want 1", n)
	}
}
