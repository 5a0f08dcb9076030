package gatewaytest

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
)

// HandshakeFailures is m's count of failed handshakes on listener
// ("partner", "operator") by reason (jambatan_tls_handshake_failures_total).
func HandshakeFailures(t testing.TB, m *metrics.Metrics, listener string) map[string]float64 {
	t.Helper()
	n := map[string]float64{}
	for _, r := range metrics.HandshakeReasons {
		var d dto.Metric
		if err := m.HandshakeFailures.WithLabelValues(listener, r).Write(&d); err != nil {
			t.Fatal(err)
		}
		n[r] = d.GetCounter().GetValue()
	}
	return n
}

// RefusedFor waits until listener has counted one more handshake failed for
// reason than before (HandshakeFailures), and none for another: a refusal
// for the reason the test means, not for some other fault of the
// handshake. The client hears of a refusal before the server counts it.
func RefusedFor(t testing.TB, m *metrics.Metrics, listener, reason string, before map[string]float64) {
	t.Helper()
	Until(t, 5*time.Second, 10*time.Millisecond, func() error {
		now := HandshakeFailures(t, m, listener)
		for _, r := range metrics.HandshakeReasons {
			want := before[r]
			if r == reason {
				want++
			}
			if now[r] != want {
				return fmt.Errorf("%s handshakes failed by reason %v, before %v; want one more %s", listener, now, before, reason)
			}
		}
		return nil
	})
}
