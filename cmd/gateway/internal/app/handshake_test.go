package app

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

// TestHandshakeFailures: a client without a certificate fails the partner
// and the operator listeners' handshakes; each failure is counted by
// listener and reason, from zero, and logged as a JSON line with a
// correlation id (net/http wrote the operator listener's in plain text).
func TestHandshakeFailures(t *testing.T) {
	var out gatewaytest.SyncBuffer
	g, l := devGatewayLogging(t, slog.New(slog.NewJSONHandler(&out, nil)))
	var err error
	if g.OperatorLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ln, _ := serve(t, g)
	failures := func(listener string) float64 {
		return gatewaytest.HandshakeFailures(t, g.M, listener)["no-certificate"]
	}
	caPEM, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, tc := range []struct{ listener, addr string }{
		{"partner", ln.Addr().String()},
		{"operator", g.OperatorLn.Addr().String()},
	} {
		t.Run("fail/"+tc.listener+"-without-certificate", func(t *testing.T) {
			if n := failures(tc.listener); n != 0 {
				t.Fatalf("%v failures before any", n)
			}
			c, err := tls.Dial("tcp", tc.addr, &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13})
			if err == nil {
				// TLS 1.3: the client learns of the refusal on its first read.
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = io.ReadAll(c)
				c.Close()
			}
			if err == nil {
				t.Fatal("a handshake without a client certificate went through")
			}
			gatewaytest.Until(t, 5*time.Second, 10*time.Millisecond, func() error {
				if n := failures(tc.listener); n != 1 {
					return fmt.Errorf("%v failures counted, want 1", n)
				}
				return nil
			})
			// The line is written just after the failure is counted: wait
			// for it too (read at once, it was missing in a CI run).
			gatewaytest.Until(t, 5*time.Second, 10*time.Millisecond, func() error {
				for _, s := range strings.Split(strings.TrimSpace(out.String()), "\n") {
					var line struct {
						Msg, Listener, Reason string
						CorrelationID         string `json:"correlation_id"`
					}
					if err := json.Unmarshal([]byte(s), &line); err != nil {
						t.Fatalf("a log line that is not JSON: %q", s)
					}
					if line.Msg == "TLS handshake failed" && line.Listener == tc.listener && line.Reason == "no-certificate" && len(line.CorrelationID) == 32 {
						return nil
					}
				}
				return fmt.Errorf("no JSON line of the %s listener's failure:\n%s", tc.listener, out.String())
			})
		})
	}
}
