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
// when they declare none) and are refused once the budget is spent, or once
// their partner would hold more than half of it; giving back makes room
// again.
func TestReserve(t *testing.T) {
	type held struct {
		partner string
		length  int64
	}
	for _, tc := range []struct {
		name   string
		held   []held // requests being served
		length int64  // the new request's, from partner "a"
		limit  int64
		ok     bool
	}{
		{"ok/empty", nil, 4 << 10, 1 << 20, true},
		{"ok/fits-beside-another-partner", []held{{"b", 60 << 10}}, 4 << 10, 1 << 20, true},
		{"fail/spent", []held{{"b", 60 << 10}}, 5 << 10, 1 << 20, false},
		{"fail/undeclared-reserves-the-limit", []held{{"b", 8 << 10}}, -1, 60 << 10, false},
		{"ok/undeclared-within-the-limit", []held{{"b", 1 << 10}}, -1, 60 << 10, true},
		{"ok/declared-empty-reserves-one-byte", []held{{"b", 64<<10 - 1}}, 0, 1 << 20, true},
		{"fail/declared-empty-needs-its-byte", []held{{"b", 64 << 10}}, 0, 1 << 20, false},
		{"ok/bigger-than-the-budget-runs-alone", nil, 6 << 20, 6 << 20, true},
		{"fail/bigger-than-the-budget-waits-for-room", []held{{"b", 1}}, 6 << 20, 6 << 20, false},
		{"ok/partner-within-half", []held{{"a", 16 << 10}}, 16 << 10, 1 << 20, true},
		{"fail/partner-over-half", []held{{"a", 16 << 10}}, 16<<10 + 1, 1 << 20, false},
		{"fail/partner-over-half-in-many", []held{{"a", 8 << 10}, {"a", 8 << 10}, {"a", 8 << 10}, {"a", 8 << 10}}, 1, 1 << 20, false},
		{"ok/first-request-over-half", []held{{"b", 4 << 10}}, 48 << 10, 1 << 20, true},
		{"fail/second-request-beside-one-over-half", []held{{"a", 40 << 10}}, 1, 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
			b := New(64<<10, gauge)
			var want int64
			for _, h := range tc.held {
				if _, ok := b.Reserve(request(h.length), 1<<20, h.partner); !ok {
					t.Fatalf("held request of %d refused", h.length)
				}
				want += min(h.length, b.max)
			}
			release, ok := b.Reserve(request(tc.length), tc.limit, "a")
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v (used %d of %d, held %v)", ok, tc.ok, b.used, b.max, b.held)
			}
			if ok {
				release()
				if b.used != want || value(gauge) != float64(want) {
					t.Fatalf("after release: %d used, gauge %v, want %d", b.used, value(gauge), want)
				}
			}
		})
	}
}

// TestReleaseForgetsPartner: a partner that has given back all it held is
// forgotten, and its next request may again take any free room.
func TestReleaseForgetsPartner(t *testing.T) {
	b := New(64<<10, nil)
	r1, _ := b.Reserve(request(8<<10), 1<<20, "a")
	r2, _ := b.Reserve(request(8<<10), 1<<20, "a")
	r1()
	r2()
	if len(b.held) != 0 || b.used != 0 {
		t.Fatalf("after release: held %v, used %d", b.held, b.used)
	}
	if _, ok := b.Reserve(request(48<<10), 1<<20, "a"); !ok {
		t.Fatal("a partner holding nothing was refused free room")
	}
}

// TestUnbounded: New(0) (and a nil Budget) admits everything.
func TestUnbounded(t *testing.T) {
	b := New(0, nil)
	for range 3 {
		release, ok := b.Reserve(request(1<<30), 1<<30, "a")
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

// TestReleaseKeepsWhatIsStillHeld: a partner that gives back one request
// of two still holds the other, which still counts towards its half.
func TestReleaseKeepsWhatIsStillHeld(t *testing.T) {
	b := New(64<<10, nil)
	r1, _ := b.Reserve(request(8<<10), 1<<20, "a")
	if _, ok := b.Reserve(request(8<<10), 1<<20, "a"); !ok {
		t.Fatal("second request within half refused")
	}
	r1()
	if b.held["a"] != 8<<10 {
		t.Fatalf("after one release partner a holds %d, want %d", b.held["a"], 8<<10)
	}
	if _, ok := b.Reserve(request(24<<10+1), 1<<20, "a"); ok {
		t.Fatal("a partner still holding 8 KiB took more than half the budget")
	}
}
