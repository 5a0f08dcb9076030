package server

import (
	"bytes"
	"encoding/json"
	stdlog "log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
)

// TestHandshakeReason: each failed handshake's error, as crypto/tls and the
// listeners' checks word it, falls in its class.
func TestHandshakeReason(t *testing.T) {
	for _, tc := range []struct{ name, err, want string }{
		{"ok/no-certificate", "tls: client didn't provide a certificate", "no-certificate"},
		{"ok/unknown-ca", "tls: failed to verify certificate: x509: certificate signed by unknown authority", "untrusted"},
		{"ok/expired", "tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-11-27T12:00:00Z is after 2026-11-26T00:00:00Z", "untrusted"},
		{"ok/revoked", "client certificate revoked", "refused"},
		{"ok/intermediate-revoked", "an issuing CA of the client certificate is revoked", "refused"},
		{"ok/not-registered", "client certificate does not belong to a registered partner", "refused"},
		{"ok/not-an-operator", "not an operator certificate", "refused"},
		{"ok/old-version", "tls: client offered only unsupported versions: [302 301]", "protocol"},
		{"ok/no-suite", "tls: no cipher suite supported by both client and server", "protocol"},
		{"ok/not-tls", "tls: first record does not look like a TLS handshake", "protocol"},
		{"ok/client-alert", "remote error: tls: bad certificate", "protocol"},
		{"ok/eof", "EOF", "closed"},
		{"ok/reset", "read tcp 127.0.0.1:8443->127.0.0.1:40000: read: connection reset by peer", "closed"},
		{"ok/timeout", "read tcp 127.0.0.1:8443->127.0.0.1:40000: i/o timeout", "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := handshakeReason(tc.err); got != tc.want {
				t.Fatalf("handshakeReason(%q) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// TestErrorLog: every failed handshake is counted; a line is logged, as
// JSON with a correlation id of its own, at most once a second, saying how
// many were left out; the server's other errors, a panic above all, are
// logged every time.
func TestErrorLog(t *testing.T) {
	var out bytes.Buffer
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "f"}, []string{"listener", "reason"})
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	e := &errorLog{log: slog.New(slog.NewJSONHandler(&out, nil)), listener: "partner", failures: failures, now: func() time.Time { return now }}
	l := stdlog.New(e, "", 0)
	for range 100 {
		l.Printf("http: TLS handshake error from 127.0.0.1:40000: tls: client didn't provide a certificate")
	}
	l.Printf("http: panic serving 127.0.0.1:40002: boom")
	now = now.Add(time.Second)
	l.Printf("http: TLS handshake error from 127.0.0.1:40001: client certificate revoked")
	now = now.Add(2 * time.Second)
	l.Printf("http: Accept error: accept tcp: too many open files; retrying in 5ms")
	if n := testutil.ToFloat64(failures.WithLabelValues("partner", "no-certificate")); n != 100 {
		t.Errorf("%v failures without a certificate counted, want 100", n)
	}
	if n := testutil.ToFloat64(failures.WithLabelValues("partner", "refused")); n != 1 {
		t.Errorf("%v refusals counted, want 1", n)
	}
	type line struct {
		Level, Msg, Listener, Remote, Reason, Err string
		CorrelationID                             string `json:"correlation_id"`
		Suppressed                                int
	}
	var lines []line
	for _, s := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("not a JSON line: %q", s)
		}
		if len(l.CorrelationID) != 32 || l.Listener != "partner" || l.Level != "WARN" {
			t.Fatalf("line without its correlation id or listener: %q", s)
		}
		lines = append(lines, l)
	}
	want := []line{
		{Msg: "TLS handshake failed", Remote: "127.0.0.1:40000", Reason: "no-certificate", Err: "tls: client didn't provide a certificate"},
		{Msg: "HTTP server error", Err: "http: panic serving 127.0.0.1:40002: boom"},
		{Msg: "TLS handshake failed", Remote: "127.0.0.1:40001", Reason: "refused", Err: "client certificate revoked", Suppressed: 99},
		{Msg: "HTTP server error", Err: "http: Accept error: accept tcp: too many open files; retrying in 5ms"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines logged, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		g := lines[i]
		if g.Msg != w.Msg || g.Remote != w.Remote || g.Reason != w.Reason || g.Err != w.Err || g.Suppressed != w.Suppressed {
			t.Errorf("line %d: %+v, want %+v", i, g, w)
		}
	}
}

// FuzzErrorLog: any line net/http may write (a handshake error carries text
// a client chose, such as the protocols it offered) is logged as one JSON
// line, and a handshake error counted once, in one of the reasons.
func FuzzErrorLog(f *testing.F) {
	f.Add("http: TLS handshake error from 127.0.0.1:40000: tls: client didn't provide a certificate")
	f.Add("http: TLS handshake error from [::1]:1: tls: client requested unsupported application protocols ([\"h2\\\"}\" \"x\"])")
	f.Add("http: TLS handshake error from ")
	f.Add("http: panic serving 127.0.0.1:1: boom\ngoroutine 1")
	f.Fuzz(func(t *testing.T, msg string) {
		var out bytes.Buffer
		failures := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "f"}, []string{"listener", "reason"})
		e := &errorLog{log: slog.New(slog.NewJSONHandler(&out, nil)), listener: "partner", failures: failures, now: time.Now}
		if n, err := e.Write([]byte(msg)); err != nil || n != len(msg) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		var line map[string]any
		if err := json.Unmarshal(out.Bytes(), &line); err != nil || strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
			t.Fatalf("not one JSON line: %q", out.String())
		}
		counted := 0.0
		for _, r := range metrics.HandshakeReasons {
			counted += testutil.ToFloat64(failures.WithLabelValues("partner", r))
		}
		if want := map[bool]float64{true: 1}[strings.HasPrefix(strings.TrimSpace(msg), "http: TLS handshake error from ")]; counted != want {
			t.Fatalf("%v failures counted, want %v", counted, want)
		}
	})
}
