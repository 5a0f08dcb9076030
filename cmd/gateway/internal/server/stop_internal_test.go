package server

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
	"os"
	"testing"
	"time"
)

// TestStopGrace: a stop answers a request in progress that finishes within
// the grace; one whose client is still sending its body after the grace
// has its connection closed, and Serve says so with ErrCutAtStop (the
// gateway logs it and stops cleanly) where it returned the shutdown's
// "context deadline exceeded" and left the connection open.
func TestStopGrace(t *testing.T) {
	certSrv := httptest.NewUnstartedServer(nil)
	certSrv.StartTLS()
	serverTLS := certSrv.TLS.Clone()
	pool := x509.NewCertPool()
	pool.AddCert(certSrv.Certificate())
	certSrv.Close()
	for _, tc := range []struct {
		name    string
		finish  bool // the client sends the rest of its body after the stop began
		want    error
		answers bool
	}{
		{"ok/finished-within-grace", true, nil, true},
		{"ok/cut-after-grace", false, ErrCutAtStop, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			started := make(chan struct{})
			hs := &http.Server{TLSConfig: serverTLS, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				if _, err := io.ReadAll(r.Body); err == nil {
					_, _ = io.WriteString(w, "done")
				}
			})}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- serveFor(ctx, hs, ln, 300*time.Millisecond) }()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 10\r\n\r\n12345"); err != nil {
				t.Fatal(err)
			}
			<-started
			cancel()
			if tc.finish {
				time.Sleep(50 * time.Millisecond)
				_, _ = io.WriteString(conn, "67890")
			}
			if err := <-served; !errors.Is(err, tc.want) && err != tc.want {
				t.Fatalf("Serve: %v, want %v", err, tc.want)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if answered := err == nil && resp.StatusCode == http.StatusOK; answered != tc.answers {
				t.Fatalf("answered %v (%v), want %v", answered, err, tc.answers)
			}
			if !tc.answers && errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the connection was left open")
			}
		})
	}
}
