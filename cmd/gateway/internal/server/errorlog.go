package server

import (
	stdlog "log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
)

// ErrorLog is the error log of a listener's net/http server, whose lines
// are mostly failed TLS handshakes: a client without a certificate, one no
// client CA issued, a partner or operator the listener's check refused, a
// client that closed. Each is counted in failures (by listener and reason,
// nil: not counted) and logged as one of the gateway's lines, with a
// correlation id of its own; at most one handshake's line a second is
// logged, with the number left out since the last (the server's other
// errors, a handler's panic above all, are always logged). Before, net/http wrote a line for every
// failure (5,652 in 7 s from one client retrying without a certificate),
// without a correlation id, and the operator and ops listeners through the
// standard library's logger, in plain text on stderr.
func ErrorLog(log *slog.Logger, listener string, failures *prometheus.CounterVec) *stdlog.Logger {
	return stdlog.New(&errorLog{log: log, listener: listener, failures: failures, now: time.Now}, "", 0)
}

type errorLog struct {
	log      *slog.Logger
	listener string
	failures *prometheus.CounterVec
	now      func() time.Time

	mu         sync.Mutex
	last       time.Time // the last line logged
	suppressed int       // lines left out since
}

func (e *errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	rest, handshake := strings.CutPrefix(msg, "http: TLS handshake error from ")
	var remote, reason string
	if handshake {
		remote, msg, _ = strings.Cut(rest, ": ")
		reason = handshakeReason(msg)
		if e.failures != nil {
			e.failures.WithLabelValues(e.listener, reason).Inc()
		}
	}
	attrs := []any{"correlation_id", correlation.New(), "listener", e.listener, "err", msg}
	if !handshake {
		// A handler's panic or an accept error: rare, and each matters
		// (net/http backs off accept errors to a second itself).
		e.log.Warn("HTTP server error", attrs...)
		return len(p), nil
	}
	e.mu.Lock()
	now := e.now()
	if !e.last.IsZero() && now.Sub(e.last) < time.Second {
		e.suppressed++
		e.mu.Unlock()
		return len(p), nil
	}
	suppressed := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	e.log.Warn("TLS handshake failed", append(attrs, "remote", remote, "reason", reason, "suppressed", suppressed)...)
	return len(p), nil
}

// handshakeReason classes a failed handshake's error: the client sent no
// certificate; its certificate did not verify against the CAs; the TLS
// exchange itself failed; the client closed or timed out; or else the
// listener's own check refused it (revoked, not a registered partner, not
// an operator), whose errors do not begin with "tls:".
func handshakeReason(err string) string {
	switch {
	case strings.Contains(err, "didn't provide a certificate"):
		return "no-certificate"
	case strings.Contains(err, "failed to verify certificate"):
		return "untrusted"
	case err == "EOF" || strings.Contains(err, "connection reset") || strings.Contains(err, "broken pipe"):
		return "closed"
	case strings.Contains(err, "timeout"):
		return "timeout"
	case strings.HasPrefix(err, "tls: ") || strings.HasPrefix(err, "remote error: ") || strings.Contains(err, "TLS handshake"):
		return "protocol"
	}
	return "refused"
}
