package outbound

import (
	"math/rand/v2"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// breaker is a per-partner circuit breaker: it opens after consecutive
// failures, lets one probe through after the cooldown (half-open), and
// closes on a success.
type breaker struct {
	failures  int
	openUntil time.Time
	probing   bool
}

// allow says whether an attempt may start now: always while the breaker is
// closed; once it is open, one probe after the cooldown.
func (b *breaker) allow(now time.Time, ep partner.Endpoint) bool {
	if b.failures < ep.BreakerFailures {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true // half-open: one probe
	return true
}

// result counts an attempt's outcome: a success closes the breaker, and
// the BreakerFailures-th failure in a row opens it for BreakerCooldown.
func (b *breaker) result(ok bool, now time.Time, ep partner.Endpoint) {
	b.probing = false
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= ep.BreakerFailures {
		b.openUntil = now.Add(ep.BreakerCooldown)
	}
}

// BreakerOpen reports whether a partner's breaker is open (for health and tests).
func (dl *Deliverer) BreakerOpen(partnerID string) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	b := dl.breakers[partnerID]
	p, ok := dl.Partners.ByID(partnerID)
	if b == nil || !ok || p.Endpoint == nil {
		return false
	}
	return b.failures >= p.Endpoint.WithDefaults().BreakerFailures && dl.now().Before(b.openUntil)
}

// admit takes a slot of p's concurrency for a claimed delivery, if p's
// breaker lets it start now: the attempt gives sem's slot back when it
// ends. Otherwise it says when the delivery should come back: when the
// breaker half-opens (it opened after the round asked for p's quota,
// another attempt failing meanwhile), or shortly, p being at its limit.
func (dl *Deliverer) admit(p *partner.Partner, ep partner.Endpoint, now time.Time) (sem chan struct{}, retryAt time.Time, ok bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	b := dl.breakers[p.ID]
	if b == nil {
		b = &breaker{}
		dl.breakers[p.ID] = b
	}
	sem = dl.sems[p.ID]
	// A reload may change the partner's concurrency. Attempts under
	// way release the semaphore they took, so for one attempt's time
	// the old and new limits may overlap.
	if sem == nil || cap(sem) != ep.Concurrency {
		sem = make(chan struct{}, ep.Concurrency)
		dl.sems[p.ID] = sem
	}
	if !b.allow(now, ep) {
		return nil, maxTime(b.openUntil, now.Add(10*time.Millisecond)), false
	}
	select {
	case sem <- struct{}{}:
		return sem, time.Time{}, true
	default:
		b.probing = false // the probe did not start
		return nil, now.Add(20 * time.Millisecond), false
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Backoff is the delay before attempt n+1 (n >= 1): exponential from base,
// capped, with full jitter over its upper half. It doubles until the cap
// rather than shifting: a base shifted by n-1 overflowed for a long base
// and many attempts, and could come out short (a base of 98.5 minutes, at
// its 31st attempt, waited under 13).
func Backoff(n int, ep partner.Endpoint) time.Duration {
	d := ep.BaseBackoff
	for i := 1; i < n && d < ep.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, ep.MaxBackoff)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
