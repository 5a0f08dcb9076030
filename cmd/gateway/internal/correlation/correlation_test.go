package correlation

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestHandler: every line carries exactly one correlation id, at the top:
// a request's own, an operation's from the context, or else the process's.
func TestHandler(t *testing.T) {
	type line = map[string]any
	var started string // the id Start drew in ok/request-context
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want string // "process": the handler's own id; "started": the one Start drew
	}{
		{"ok/request-line-keeps-its-id", func(l *slog.Logger) {
			l.Info("submission", LogKey, "req-1", "partner", "p")
		}, "req-1"},
		{"ok/request-line-id-not-first", func(l *slog.Logger) {
			l.Info("submission", "partner", "p", "status", 202, "outcome", "ACCEPTED", "record_id", "r", "format", "f", LogKey, "req-2")
		}, "req-2"},
		{"ok/operation-id-from-context", func(l *slog.Logger) {
			l.InfoContext(With(context.Background(), "reload-1"), "configuration reloaded", "partners", 3)
		}, "reload-1"},
		{"ok/request-context", func(l *slog.Logger) {
			var r *http.Request
			r, started = Start(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			l.WarnContext(r.Context(), "refused")
		}, "started"},
		{"ok/line-id-wins-over-context", func(l *slog.Logger) {
			l.InfoContext(With(context.Background(), "ctx"), "m", LogKey, "own")
		}, "own"},
		{"ok/lifecycle-line-takes-process-id", func(l *slog.Logger) {
			l.Info("gateway listening", "addr", "127.0.0.1:8443")
		}, "process"},
		{"ok/with-attrs-id", func(l *slog.Logger) {
			l.With(LogKey, "job-1").Info("delivery attempt", "delivery", 7)
		}, "job-1"},
		{"ok/with-other-attrs", func(l *slog.Logger) {
			l.With("listener", "ops").Info("m")
		}, "process"},
		{"ok/with-group", func(l *slog.Logger) {
			l.WithGroup("g").Info("m", "k", "v")
		}, "process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := NewHandler(slog.NewJSONHandler(&buf, nil))
			tc.log(slog.New(h))
			raw := strings.TrimSpace(buf.String())
			if n := strings.Count(raw, `"`+LogKey+`"`); n != 1 {
				t.Fatalf("%d ids on the line: %s", n, raw)
			}
			var got line
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatal(err)
			}
			id, _ := got[LogKey].(string)
			want := tc.want
			if want == "process" {
				want = h.Process()
			}
			if want == "started" {
				want = started
				if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || id == h.Process() {
					t.Fatalf("id %q: want the request's own", id)
				}
			}
			if id != want {
				t.Fatalf("id %q, want %q: %s", id, want, raw)
			}
			if got["msg"] == nil || (tc.name == "ok/with-group" && got["g"] == nil) {
				t.Fatalf("line lost its content: %s", raw)
			}
		})
	}
}

// TestHandlerKeepsOrder: an id added to a line comes first, the line's own
// attributes after it in their order, and two processes' ids differ.
func TestHandlerKeepsOrder(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(slog.NewTextHandler(&buf, nil))
	slog.New(h).Warn("outbox not drained", "published", 3, "left", 2)
	want := "correlation_id=" + h.Process() + " published=3 left=2"
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("%q lacks %q", buf.String(), want)
	}
	if NewHandler(slog.DiscardHandler).Process() == h.Process() {
		t.Fatal("two handlers drew one id")
	}
}

// TestOutage: a spell's failures share one id until it ends, End gives
// that id back, and the next spell draws another; ending none gives "".
func TestOutage(t *testing.T) {
	var o Outage
	if o.End() != "" {
		t.Fatal("the zero Outage is on")
	}
	first := o.ID()
	if len(first) != 32 || o.ID() != first {
		t.Fatalf("a spell's ids %q, %q, want one of 32 hex digits", first, o.ID())
	}
	if got := o.End(); got != first {
		t.Fatalf("End = %q, want %q", got, first)
	}
	if o.End() != "" {
		t.Fatal("a second End gave an id")
	}
	if next := o.ID(); next == first {
		t.Fatal("the next spell drew the first one's id")
	}
}

// BenchmarkHandler: what the wrapping costs a request's line (which names
// its id first) against the bare handler.
func BenchmarkHandler(b *testing.B) {
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{{"bare", slog.NewJSONHandler(io.Discard, nil)}, {"wrapped", NewHandler(slog.NewJSONHandler(io.Discard, nil))}} {
		b.Run(bc.name, func(b *testing.B) {
			l := slog.New(bc.h)
			b.ReportAllocs()
			for b.Loop() {
				l.Info("submission", LogKey, "4851c41f74cba81dfd0dbe0f1c8943fb", "partner", "demo-employer", "format", "sg-employer-notice/v1",
					"status", 202, "outcome", "ACCEPTED", "record_id", "b0867b30-be3c-5595-a939-c4d47c281950")
			}
		})
	}
}
