// Package correlation gives each request the id that ties its response, its
// log lines and its message-log entry together, and every other log line an
// id too (Handler). The id is always the gateway's own, never taken from the
// client: a client cannot make two requests share one, nor put text of its
// choosing into the logs.
package correlation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
)

// Header carries the correlation id on every response.
const Header = "X-Correlation-ID"

// New returns a fresh id, for log lines that belong to no request (a
// failed TLS handshake, a reload): 128 random bits in hex.
func New() string { return newID() }

// newID returns a fresh id: 128 random bits in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Outage names one spell of failures of a retrying loop, so that one filter
// finds its first warning, its retries and the line that says it ended,
// apart from the process's other lines. The zero value is no outage. It is
// not safe for concurrent use: each loop keeps its own (or its own lock).
type Outage struct{ id string }

// ID returns the spell's id, drawing a fresh one if no spell is on: call
// it for each line of a failure.
func (o *Outage) ID() string {
	if o.id == "" {
		o.id = newID()
	}
	return o.id
}

// End ends the spell and returns its id, for the line that says so ("" if
// none was on); the next failure starts a new one.
func (o *Outage) End() string {
	id := o.id
	o.id = ""
	return id
}

// Start gives a request a fresh id: on its answer's header and in the
// context of the request it returns.
func Start(w http.ResponseWriter, r *http.Request) (*http.Request, string) {
	id := newID()
	w.Header().Set(Header, id)
	return r.WithContext(With(r.Context(), id)), id
}

type key struct{}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// With returns ctx carrying id: the context of an operation that is no
// request (a reload), whose log lines are to share one id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// LogKey is the attribute that carries the id on a log line.
const LogKey = "correlation_id"

// Handler makes every log line carry a correlation id. A line written for a
// request names its request's id itself; any other line (a start, a reload,
// a relay's retry, the stop) takes the id its context carries (With), or
// else the process's own, drawn when the handler is made. So a reader can
// gather every line of one request, of one reload or of one process's life
// outside requests by one key, and no line is without it.
type Handler struct {
	next    slog.Handler
	process string
	has     bool // WithAttrs gave the id to every line
}

// NewHandler wraps next so that every line carries a correlation id.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next, process: newID()} }

// Process is the id of the lines that belong to no request or operation.
func (h *Handler) Process() string { return h.process }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if h.has || carries(r) {
		return h.next.Handle(ctx, r)
	}
	id := From(ctx)
	if id == "" {
		id = h.process
	}
	// A new record, the id first as on a request's lines (a record's
	// attributes may be shared with its other copies, so it is not
	// added to in place).
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(slog.String(LogKey, id))
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return h.next.Handle(ctx, out)
}

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	has := h.has
	for _, a := range as {
		has = has || a.Key == LogKey
	}
	return &Handler{next: h.next.WithAttrs(as), process: h.process, has: has}
}

// WithGroup gives the lines of the grouped logger the process's id before
// the group opens, unless they have one: an id added to a line later would
// land inside the group, and a reader looks for it at the top.
func (h *Handler) WithGroup(name string) slog.Handler {
	next := h.next
	if !h.has {
		next = next.WithAttrs([]slog.Attr{slog.String(LogKey, h.process)})
	}
	return &Handler{next: next.WithGroup(name), process: h.process, has: true}
}

// carries reports whether the line names its id (a request's lines do,
// first).
func carries(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == LogKey
		return !found
	})
	return found
}
