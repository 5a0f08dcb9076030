package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		keep     bool
		rest     string // what must be left unread: the next response
	}{
		{"ok/accepted", "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{...}NEXT", 202, true, "NEXT"},
		{"ok/no-reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, true, ""},
		{"ok/header-case", "HTTP/1.1 422 Unprocessable Entity\r\ncontent-length:  3 \r\n\r\nabcX", 422, true, "X"},
		{"ok/close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab", 503, false, ""},
		{"ok/no-content", "HTTP/1.1 204 No Content\r\n\r\nX", 204, true, "X"},
		{"fail/empty", "", 0, false, ""},
		{"fail/http10", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, false, ""},
		{"fail/status-letters", "HTTP/1.1 2x2 OK\r\nContent-Length: 0\r\n\r\n", 0, false, ""},
		{"fail/status-long", "HTTP/1.1 2020 OK\r\nContent-Length: 0\r\n\r\n", 0, false, ""},
		{"fail/chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, false, ""},
		{"fail/no-length", "HTTP/1.1 200 OK\r\n\r\nbody", 0, false, ""},
		{"fail/bad-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, false, ""},
		{"fail/bad-header", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 0, false, ""},
		{"fail/short-body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, false, ""},
		{"fail/truncated-headers", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 0, false, ""},
		{"ok/most-headers", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + strings.Repeat("X: y\r\n", maxHeaderLines-1) + "\r\n", 200, true, ""},
		{"fail/too-many-headers", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + strings.Repeat("X: y\r\n", maxHeaderLines) + "\r\n", 0, false, ""},
		{"fail/status-under-100", "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", 0, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			status, keep, err := readResponse(br)
			if strings.HasPrefix(tc.name, "fail/") {
				if err == nil {
					t.Fatalf("read %d, want an error", status)
				}
				return
			}
			if err != nil || status != tc.status || keep != tc.keep {
				t.Fatalf("got %d keep=%v err=%v, want %d keep=%v", status, keep, err, tc.status, tc.keep)
			}
			if rest, _ := io.ReadAll(br); string(rest) != tc.rest {
				t.Fatalf("left %q unread, want %q", rest, tc.rest)
			}
		})
	}
}

// TestLeanConn posts over a real TLS server: requests arrive whole on one
// kept-alive connection, and after the server closes it the next post dials
// again.
func TestLeanConn(t *testing.T) {
	var conns connCount
	var posts atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n := posts.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/base/v1/injury-notices" || r.Header.Get("Content-Type") != "application/jose" || string(b) != "body" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		if n == 3 {
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"ACCEPTED"}`))
	}))
	c, err := newLeanConn(srv.URL+"/base", "/v1/injury-notices", startTLS(t, srv, &conns), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := 1; i <= 5; i++ {
		status, err := c.post(context.Background(), jose, []byte("body"))
		if err != nil || status != http.StatusAccepted {
			t.Fatalf("post %d: %d %v", i, status, err)
		}
	}
	if got := conns.opened.Load(); got != 2 {
		t.Fatalf("%d connections for 5 posts with a close after the third, want 2", got)
	}
	if _, err := newLeanConn("http://127.0.0.1:1", "/", &tls.Config{}, time.Second); err == nil {
		t.Fatal("an http:// URL was taken")
	}
}

// connCount counts a test server's connections.
type connCount struct{ opened, closed atomic.Int64 }

// startTLS starts srv, counting its connections in n, and returns a client
// TLS configuration that trusts it.
func startTLS(t *testing.T, srv *httptest.Server, n *connCount) *tls.Config {
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			n.closed.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

// TestLeanConnRetry: a request on a kept-alive connection the server closed
// while idle is sent again on a new one, once; a request the server took and
// left unanswered is not sent a third time, and a fresh connection's
// failure is not retried at all.
func TestLeanConnRetry(t *testing.T) {
	post := func(c *leanConn) (int, error) {
		return c.post(context.Background(), jose, []byte("body"))
	}
	t.Run("ok/closed-while-idle", func(t *testing.T) {
		var conns connCount
		var posts atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			posts.Add(1)
			w.WriteHeader(http.StatusAccepted)
		}))
		srv.Config.IdleTimeout = 50 * time.Millisecond
		c, err := newLeanConn(srv.URL, "/v1/injury-notices", startTLS(t, srv, &conns), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		for i := 1; i <= 3; i++ {
			if status, err := post(c); err != nil || status != http.StatusAccepted {
				t.Fatalf("post %d: %d %v", i, status, err)
			}
			// Wait until the server has closed the idle connection.
			gatewaytest.Until(t, 5*time.Second, 10*time.Millisecond, func() error {
				if conns.closed.Load() < int64(i) {
					return errors.New("the server did not close the idle connection")
				}
				return nil
			})
		}
		if got, want := [2]int64{conns.opened.Load(), posts.Load()}, [2]int64{3, 3}; got != want {
			t.Fatalf("(connections, requests) = %v after 3 posts with idle closes, want %v", got, want)
		}
	})
	t.Run("fail/unanswered", func(t *testing.T) {
		var conns connCount
		var posts atomic.Int64
		var hangUp atomic.Bool
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			posts.Add(1)
			if hangUp.Load() {
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
				return
			}
			w.WriteHeader(http.StatusAccepted)
		}))
		c, err := newLeanConn(srv.URL, "/v1/injury-notices", startTLS(t, srv, &conns), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if status, err := post(c); err != nil || status != http.StatusAccepted { // a connection kept alive
			t.Fatalf("post: %d %v", status, err)
		}
		hangUp.Store(true)
		if _, err := post(c); !errors.Is(err, errUnanswered) {
			t.Fatalf("unanswered twice: err %v, want errUnanswered", err)
		}
		if got := posts.Load(); got != 3 {
			t.Fatalf("%d requests, want 3 (the unanswered one sent twice, not more)", got)
		}
		if _, err := post(c); !errors.Is(err, errUnanswered) {
			t.Fatalf("unanswered on a fresh connection: err %v, want errUnanswered", err)
		}
		if got := posts.Load(); got != 4 {
			t.Fatalf("%d requests, want 4 (a fresh connection's failure is not retried)", got)
		}
	})
}

// FuzzReadResponse: whatever the bytes, readResponse returns (no panic, no
// hang) and never claims a status outside 100–999.
func FuzzReadResponse(f *testing.F) {
	f.Add("HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
	f.Add("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		status, _, err := readResponse(bufio.NewReader(strings.NewReader(in)))
		if err == nil && (status < 100 || status > 999) {
			t.Fatalf("status %d from %q", status, in)
		}
	})
}

// jose is the header of a compact JWS notice.
var jose = headerLines(http.Header{"Content-Type": {"application/jose"}})
