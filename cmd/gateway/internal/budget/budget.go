// Package budget bounds the request bytes the gateway works on at once.
//
// A request body is read whole and then becomes a parse tree, a record, a
// response and a log entry, so the gateway's memory follows the bytes in
// flight, not the number of connections: a 4 MiB insurer batch made of
// unknown members held about 100 MB at its peak, and four at once took the
// process to 393 MB. A Budget turns such a burst away, to be retried,
// instead of letting it grow the process.
//
// The budget is shared, but not first come, first served: a partner that
// already holds bytes may hold at most half of it, so one partner's burst
// leaves the other half to the rest, and their notices are not shed for it.
package budget

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Budget counts the bytes that requests reserve while they are served. A
// nil Budget, or one of New(0), admits everything.
type Budget struct {
	max   int64
	gauge prometheus.Gauge // the bytes reserved, when set
	mu    sync.Mutex
	used  int64
	held  map[string]int64 // the bytes each partner holds, while it holds any
}

// New returns a budget of max bytes (max <= 0: unbounded) that shows the
// bytes reserved in gauge, if not nil.
func New(max int64, gauge prometheus.Gauge) *Budget {
	if max <= 0 {
		return nil
	}
	return &Budget{max: max, gauge: gauge, held: map[string]int64{}}
}

// Reserve takes the bytes r may bring for partner: its Content-Length, or
// limit (the route's body limit) when it declares none. A request bigger
// than the whole budget reserves all of it, so it runs, alone. ok is false
// when too few bytes are free, or when the partner already holds bytes and
// would hold more than half the budget: the caller refuses the request. A
// partner's first request may take any free room, so one batch bigger than
// half the budget still runs. release gives the bytes back; call it once
// the response is written.
func (b *Budget) Reserve(r *http.Request, limit int64, partner string) (release func(), ok bool) {
	if b == nil {
		return func() {}, true
	}
	n := limit
	if r.ContentLength >= 0 && r.ContentLength < limit {
		n = r.ContentLength
	}
	n = min(max(n, 1), b.max)
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.held[partner]
	if b.used+n > b.max || (held > 0 && held+n > b.max/2) {
		return nil, false
	}
	b.used += n
	b.held[partner] = held + n
	b.show()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.used -= n
		if b.held[partner] -= n; b.held[partner] == 0 {
			delete(b.held, partner)
		}
		b.show()
	}, true
}

// show sets the gauge to the bytes reserved; the caller holds mu.
func (b *Budget) show() {
	if b.gauge != nil {
		b.gauge.Set(float64(b.used))
	}
}
