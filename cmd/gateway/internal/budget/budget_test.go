package budget

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func request(contentLength int64) *http.Request {
	return &http.Request{ContentLength: contentLength} // -1: not declared (chunked)
}

// TestReserve: requests reserve their declared size (or the route's limit
// when they declare none) and are refused once the budget is spent; giving
// back makes room again.
func TestReserve(t *testing.T) {
	for _, tc := range []struct {
		name   string
		held   []int64 // Content-Lengths of requests being served
		length int64   // the new request's
		limit  int64
		ok     bool
	}{
		{"ok/empty", nil, 4 << 10, 1 << 20, true},
		{"ok/fits-beside", []int64{60 << 10}, 4 << 10, 1 << 20, true},
		{"fail/spent", []int64{60 << 10}, 5 << 10, 1 << 20, false},
		{"fail/undeclared-reserves-the-limit", []int64{8 << 10}, -1, 60 << 10, false},
		{"ok/undeclared-within-the-limit", []int64{1 << 10}, -1, 60 << 10, true},
		{"ok/bigger-than-the-budget-runs-alone", nil, 6 << 20, 6 << 20, true},
		{"fail/bigger-than-the-budget-waits-for-room", []int64{1}, 6 << 20, 6 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
			b := New(64<<10, gauge)
			for _, n := range tc.held {
				if _, ok := b.Reserve(request(n), 1<<20); !ok {
					t.Fatalf("held request of %d refused", n)
				}
			}
			release, ok := b.Reserve(request(tc.length), tc.limit)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v (used %d of %d)", ok, tc.ok, b.used, b.max)
			}
			if ok {
				release()
				if want := sum(tc.held, b.max); b.used != want || value(gauge) != float64(want) {
					t.Fatalf("after release: %d used, gauge %v, want %d", b.used, value(gauge), want)
				}
			}
		})
	}
}

func sum(ns []int64, max int64) int64 {
	var s int64
	for _, n := range ns {
		s += min(n, max)
	}
	return s
}

// TestUnbounded: New(0) (and a nil Budget) admits everything.
func TestUnbounded(t *testing.T) {
	b := New(0, nil)
	for range 3 {
		release, ok := b.Reserve(request(1<<30), 1<<30)
		if !ok {
			t.Fatal("an unbounded budget refused")
		}
		defer release()
	}
}

func value(g prometheus.Gauge) float64 {
	var m dto.Metric
	_ = g.Write(&m)
	return m.GetGauge().GetValue()
}
