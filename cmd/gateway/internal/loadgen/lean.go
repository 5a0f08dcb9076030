package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// leanConn posts pre-signed notices over one keep-alive HTTP/1.1 TLS
// connection, writing each request in one piece and reading only what a
// load test needs of the answer: its status. The load generator shares the
// machine with the gateway it measures, and net/http's client spent about
// 90 µs of CPU per request (its read and write goroutines, header maps,
// per-request allocations): at 3,000 requests/s, a quarter of a core taken
// from the gateway. This is not a general HTTP client: it speaks to the
// gateway's intake, whose answers are small and carry a Content-Length.
type leanConn struct {
	addr, host, path string
	tls              *tls.Config
	timeout          time.Duration

	conn *tls.Conn
	br   *bufio.Reader
	req  []byte // the request being written, its buffer reused
}

func newLeanConn(base string, path string, cfg *tls.Config, timeout time.Duration) (*leanConn, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("loadgen: %q is not an https:// base URL", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	c := cfg.Clone()
	c.NextProtos = []string{"http/1.1"}
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	return &leanConn{addr: addr, host: u.Host, path: u.EscapedPath() + path, tls: c, timeout: timeout}, nil
}

// post sends body with contentType and returns the answer's status code.
// After any error the connection is closed; the next post dials again.
//
// A kept-alive connection the gateway closed while it was idle (its idle
// timeout) fails the next request before any answer arrives. That request
// is sent once more on a new connection: the gateway closes only between
// requests, so it never saw this one, and a notice is idempotent by its
// noticeId in any case. net/http's client retries such a request too when it
// is marked idempotent.
func (l *leanConn) post(ctx context.Context, header []byte, body []byte) (int, error) {
	reused := l.conn != nil
	status, err := l.roundTrip(ctx, header, body)
	if reused && errors.Is(err, errUnanswered) {
		status, err = l.roundTrip(ctx, header, body)
	}
	return status, err
}

// headerLines renders h as HTTP/1.1 header lines ("Name: value\r\n"
// each, in the order of their names), once for a whole run.
func headerLines(h http.Header) []byte {
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[name] {
			b = append(append(append(append(b, name...), ": "...), v...), "\r\n"...)
		}
	}
	return b
}

// errUnanswered marks a request whose connection was closed or reset before
// the first byte of an answer.
var errUnanswered = errors.New("loadgen: connection closed before an answer")

func (l *leanConn) roundTrip(ctx context.Context, header []byte, body []byte) (int, error) {
	if l.conn == nil {
		d := tls.Dialer{Config: l.tls, NetDialer: &net.Dialer{Timeout: l.timeout}}
		c, err := d.DialContext(ctx, "tcp", l.addr)
		if err != nil {
			return 0, err
		}
		l.conn = c.(*tls.Conn)
		if l.br == nil {
			l.br = bufio.NewReaderSize(l.conn, 4096)
		} else {
			l.br.Reset(l.conn)
		}
	}
	r := append(l.req[:0], "POST "...)
	r = append(r, l.path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, l.host...)
	r = append(r, "\r\n"...)
	r = append(r, header...)
	r = append(r, "Content-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n\r\n"...)
	r = append(r, body...)
	l.req = r
	_ = l.conn.SetDeadline(time.Now().Add(l.timeout))
	_, err := l.conn.Write(r)
	if err == nil {
		_, err = l.br.Peek(1)
	}
	if err != nil {
		l.close()
		if closedByPeer(err) {
			err = fmt.Errorf("%w: %w", errUnanswered, err)
		}
		return 0, err
	}
	status, keep, err := readResponse(l.br)
	if err != nil || !keep {
		l.close()
	}
	return status, err
}

// closedByPeer reports an error that means the other end closed or reset
// the connection (not a timeout, which may mean the request is in progress).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (l *leanConn) close() {
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

// maxHeaderLines bounds the header fields of an answer (the gateway's
// have fewer than ten).
const maxHeaderLines = 64

// readResponse reads one HTTP/1.1 response from br, discarding its body,
// and reports its status and whether the connection may carry another
// request. A body must be framed by Content-Length (the gateway's answers
// are written whole); chunked framing is refused.
func readResponse(br *bufio.Reader) (status int, keepAlive bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 202 Accepted\r\n"
	proto, rest, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
	if !ok || !bytes.Equal(proto, []byte("HTTP/1.1")) || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, false, fmt.Errorf("loadgen: bad status line %q", line)
	}
	status, err = strconv.Atoi(string(rest[:3]))
	if err != nil || status < 100 || status > 999 {
		return 0, false, fmt.Errorf("loadgen: bad status line %q", line)
	}
	length, keepAlive := int64(-1), true
	for n := 0; ; n++ {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if n == maxHeaderLines {
			return 0, false, errors.New("loadgen: too many header lines")
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("loadgen: bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || length < 0 {
				return 0, false, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, fmt.Errorf("loadgen: Transfer-Encoding %q not supported", value)
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keepAlive = false
			}
		}
	}
	switch {
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return 0, false, err
		}
	case status == 204 || status == 304:
	default:
		return 0, false, errors.New("loadgen: response without Content-Length")
	}
	return status, keepAlive, nil
}
