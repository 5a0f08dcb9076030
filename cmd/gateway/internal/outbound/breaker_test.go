package outbound

import (
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// TestAdmit: a claimed delivery starts while its partner's breaker lets it
// and a slot of its concurrency is free; otherwise it comes back when the
// breaker half-opens (a breaker that opened after the round asked for the
// partner's quota, another attempt failing meanwhile: no test of a whole
// round can time that), or shortly when the partner is at its limit, and a
// half-open breaker's probe that did not start lets the next one probe.
func TestAdmit(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ep := partner.Endpoint{Concurrency: 2, BreakerFailures: 3, BreakerCooldown: 30 * time.Second}
	p := &partner.Partner{ID: "p1", Endpoint: &ep}
	for _, tc := range []struct {
		name    string
		breaker breaker
		inUse   int
		start   bool
		retryAt time.Time
		probing bool
	}{
		{name: "ok/closed", breaker: breaker{failures: 2}, start: true},
		{name: "ok/half-open-probe", breaker: breaker{failures: 3, openUntil: now.Add(-time.Second)}, start: true, probing: true},
		{name: "fail/opened-since-the-quota", breaker: breaker{failures: 3, openUntil: now.Add(29 * time.Second)}, retryAt: now.Add(29 * time.Second)},
		{name: "fail/opened-just-now-at-least-10ms", breaker: breaker{failures: 3, openUntil: now.Add(time.Millisecond)}, retryAt: now.Add(10 * time.Millisecond)},
		{name: "fail/probe-under-way", breaker: breaker{failures: 3, openUntil: now.Add(-time.Second), probing: true}, retryAt: now.Add(10 * time.Millisecond), probing: true},
		{name: "fail/at-the-limit", breaker: breaker{failures: 0}, inUse: 2, retryAt: now.Add(20 * time.Millisecond)},
		{name: "fail/probe-at-the-limit", breaker: breaker{failures: 3, openUntil: now.Add(-time.Second)}, inUse: 2, retryAt: now.Add(20 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.breaker
			sem := make(chan struct{}, ep.Concurrency)
			for range tc.inUse {
				sem <- struct{}{}
			}
			dl := &Deliverer{breakers: map[string]*breaker{"p1": &b}, sems: map[string]chan struct{}{"p1": sem}}
			got, retryAt, ok := dl.admit(p, ep, now)
			if ok != tc.start || !retryAt.Equal(tc.retryAt) {
				t.Fatalf("admit: start %v, come back at %v; want %v, %v", ok, retryAt, tc.start, tc.retryAt)
			}
			if want := tc.inUse + map[bool]int{true: 1}[tc.start]; len(sem) != want || ok && got != sem {
				t.Errorf("%d of the partner's slots taken, want %d", len(sem), want)
			}
			if b.probing != tc.probing {
				t.Errorf("probing %v, want %v", b.probing, tc.probing)
			}
		})
	}
}

// TestBackoff: the wait before the next attempt doubles from the base, up
// to the cap, each wait drawn from the upper half of its step.
func TestBackoff(t *testing.T) {
	ep := partner.Endpoint{BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute}
	long := partner.Endpoint{BaseBackoff: 5909875 * time.Millisecond, MaxBackoff: 10 * time.Hour}
	for _, tc := range []struct {
		name   string
		n      int
		ep     partner.Endpoint
		lo, hi time.Duration
	}{
		{"ok/first", 1, ep, 500 * time.Millisecond, time.Second},
		{"ok/second", 2, ep, time.Second, 2 * time.Second},
		{"ok/fifth", 5, ep, 8 * time.Second, 16 * time.Second},
		{"ok/ninth", 9, ep, 128 * time.Second, 256 * time.Second},
		{"ok/capped", 10, ep, 150 * time.Second, 5 * time.Minute},
		{"ok/capped-for-good", 1000, ep, 150 * time.Second, 5 * time.Minute},
		// A shift of the base by 30 overflowed here and came out at 756 s.
		{"ok/long-base-many-attempts", 31, long, 5 * time.Hour, 10 * time.Hour},
		{"ok/base-is-the-cap", 3, partner.Endpoint{BaseBackoff: time.Minute, MaxBackoff: time.Minute}, 30 * time.Second, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			least, most := tc.hi, tc.lo
			for range 500 {
				d := Backoff(tc.n, tc.ep)
				if d < tc.lo || d > tc.hi {
					t.Fatalf("Backoff(%d) = %s, want %s to %s", tc.n, d, tc.lo, tc.hi)
				}
				least, most = min(least, d), max(most, d)
			}
			// Jittered over the whole half: 500 draws reach each quarter's end.
			if q := (tc.hi - tc.lo) / 4; least > tc.lo+q || most < tc.hi-q {
				t.Fatalf("500 draws from %s to %s only, want the spread of %s to %s", least, most, tc.lo, tc.hi)
			}
		})
	}
}
