// Package budget bounds the request bytes the gateway works on at once.
//
// A request body is read whole and then becomes a parse tree, a record, a
// response and a log entry, so the gateway's memory follows the bytes in
// flight, not the number of connections: a 4 MiB insurer batch made of
// unknown members held about 100 MB at its peak, and four at once took the
// process to 393 MB. A Budget turns such a burst away, to be retried,
// instead of letting it grow the process.
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
}

// New returns a budget of max bytes (max <= 0: unbounded) that shows the
// bytes reserved in gauge, if not nil.
func New(max int64, gauge prometheus.Gauge) *Budget {
	if max <= 0 {
		return nil
	}
	return &Budget{max: max, gauge: gauge}
}

// Reserve takes the bytes r may bring: its Content-Length, or limit (the
// route's body limit) when it declares none. A request bigger than the whole
// budget reserves all of it, so it runs, alone. ok is false when too few
// bytes are free: the caller refuses the request. release gives the bytes
// back; call it once the response is written.
func (b *Budget) Reserve(r *http.Request, limit int64) (release func(), ok bool) {
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
	if b.used+n > b.max {
		return nil, false
	}
	b.used += n
	b.show()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.used -= n
		b.show()
	}, true
}

// show sets the gauge to the bytes reserved; the caller holds mu.
func (b *Budget) show() {
	if b.gauge != nil {
		b.gauge.Set(float64(b.used))
	}
}
