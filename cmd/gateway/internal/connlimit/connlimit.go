// Package connlimit bounds the connections a listener holds open at once.
//
// The request-byte budget (package budget) bounds what requests hold, but
// an idle kept-alive mutual-TLS connection costs the gateway 37-70 KB of
// its own (4,000 of them took a dev gateway from 30 to 180 MB), so without
// a bound the number of connections, not the requests, would set its
// memory, and its file descriptors, which the store and Kafka need too. At
// the bound Accept waits for a connection to close, and new connections
// wait in the kernel's backlog meanwhile, as with
// golang.org/x/net/netutil.LimitListener; this one also shows the open
// connections and the waits as metrics.
package connlimit

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Listener is a net.Listener with at most max connections open.
type Listener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	open      prometheus.Gauge   // connections open, when set
	waits     prometheus.Counter // Accepts that waited at the bound, when set
}

// New bounds ln to max open connections (max > 0), shown in open and
// waits when they are not nil.
func New(ln net.Listener, max int, open prometheus.Gauge, waits prometheus.Counter) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{}), open: open, waits: waits}
}

// Accept waits for a free slot, then accepts a connection that gives the
// slot back when it is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.waits != nil {
			l.waits.Inc()
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.add(1)
	return &conn{Conn: c, l: l}, nil
}

// Close closes the listener and ends a waiting Accept.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *Listener) add(n float64) {
	if l.open != nil {
		l.open.Add(n)
	}
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// Close closes the connection and frees its slot (once, however often it
// is closed).
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.add(-1)
		<-c.l.slots
	})
	return err
}
