package connlimit_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/connlimit"
)

func listen(t *testing.T, max int) (*connlimit.Listener, prometheus.Gauge, prometheus.Counter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open, waits := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "waits"})
	l := connlimit.New(ln, max, open, waits)
	t.Cleanup(func() { l.Close() })
	return l, open, waits
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// value reads a gauge or a counter.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// accepted runs Accept in the background.
func accepted(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// waiting fails the test if the background Accept returns within a while:
// it should be waiting at the bound.
func waiting(t *testing.T, accept <-chan net.Conn, name string) {
	t.Helper()
	select {
	case <-accept:
		t.Fatalf("%s: a connection accepted past the bound", name)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestLimit: up to the bound connections are accepted; past it Accept
// waits (the connection stays in the kernel's backlog) until one of the
// open connections is closed, and counts the wait; a connection closed
// twice frees one slot.
func TestLimit(t *testing.T) {
	l, open, waits := listen(t, 2)
	var conns []net.Conn
	for range 2 {
		dial(t, l)
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if v := value(open); v != 2 {
		t.Fatalf("ok/under-limit: open %v, want 2", v)
	}
	dial(t, l)
	third := accepted(l)
	waiting(t, third, "fail/at-limit")
	conns[0].Close()
	conns[0].Close() // twice: one slot
	c := <-third
	if c == nil {
		t.Fatal("ok/after-close: Accept failed")
	}
	defer c.Close()
	if v, w := value(open), value(waits); v != 2 || w != 1 {
		t.Fatalf("ok/after-close: open %v, waits %v; want 2 and 1", v, w)
	}
	dial(t, l)
	fourth := accepted(l)
	waiting(t, fourth, "fail/at-limit-again (a double close freed two slots?)")
	conns[1].Close()
	if c := <-fourth; c == nil {
		t.Fatal("ok/after-second-close: Accept failed")
	} else {
		c.Close()
	}
}

// TestCloseEndsWait: closing the listener ends an Accept waiting at the
// bound with net.ErrClosed, as server shutdown needs.
func TestCloseEndsWait(t *testing.T) {
	l, _, _ := listen(t, 1)
	dial(t, l)
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it reach the wait
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("waiting Accept after Close: %v", err)
	}
}
