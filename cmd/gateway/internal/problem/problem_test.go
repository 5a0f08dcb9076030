package problem

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/adapters"
)

// TestUnrouted: a request no route took is 404, or 405 naming in Allow
// every method its path is served with (RFC 9110 §15.5.6).
func TestUnrouted(t *testing.T) {
	routes := []Route{
		{Method: "POST", Path: "/v1/injury-notices"},
		{Method: "GET", Path: "/v1/injury-notices/{recordId}"},
		{Method: "POST", Path: "/soap/v1/exchange"},
		{Method: "GET", Path: "/soap/v1/exchange"},
	}
	for _, tc := range []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"fail/method/post-only", "PUT", "/v1/injury-notices", 405, "POST"},
		{"fail/method/get-serves-head", "DELETE", "/v1/injury-notices/0b6f7c1e-0000-5000-8000-000000000000", 405, "GET, HEAD"},
		{"fail/method/two-routes", "PATCH", "/soap/v1/exchange", 405, "GET, HEAD, POST"},
		{"fail/path/unknown", "GET", "/v2/injury-notices", 404, ""},
		{"fail/path/empty-segment", "GET", "/v1/injury-notices/", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			Unrouted(tc.method, tc.path, routes).WriteHTTP(w, "c0ffee")
			if w.Code != tc.status || w.Header().Get("Allow") != tc.allow {
				t.Fatalf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path, w.Code, w.Header().Get("Allow"), tc.status, tc.allow)
			}
			if got := w.Header().Values("Allow"); tc.allow == "" && len(got) != 0 {
				t.Fatalf("a 404 with Allow %q", got)
			}
		})
	}
}

// TestAllowMatchesServeMux: the Allow the gateway writes names the methods
// Go's ServeMux itself serves the path with.
func TestAllowMatchesServeMux(t *testing.T) {
	routes := []Route{{Method: "POST", Path: "/a"}, {Method: "GET", Path: "/a"}, {Method: "GET", Path: "/b/{id}"}}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.Method+" "+rt.Path, func(http.ResponseWriter, *http.Request) {})
	}
	for _, path := range []string{"/a", "/b/1"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("PUT", path, nil))
		theirs := w.Header().Get("Allow")
		ours := Unrouted("PUT", path, routes).Allow
		if w.Code != 405 || !slices.Equal(ours, splitAllow(theirs)) {
			t.Errorf("%s: ServeMux %d Allow %q, ours %q", path, w.Code, theirs, ours)
		}
	}
}

func splitAllow(s string) []string {
	out := strings.Split(s, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	slices.Sort(out)
	return out
}

// TestWriteHTTP: the document names the kind by its stable type URI, its
// title and status, carries the correlation id as its instance and the
// problem list (an empty list, not null, when there is none), and never
// the cause, which only Error (the log's text) holds.
func TestWriteHTTP(t *testing.T) {
	cause := errors.New("disk full at /var/lib/jambatan")
	for _, tc := range []struct {
		name string
		err  *Error
		want string
	}{
		{"ok/no-problems", &Error{Kind: Unavailable, Detail: "store unavailable", Cause: cause},
			`{"type":"urn:my:perkeso:jambatan:problem:unavailable","title":"Service unavailable","status":503,"detail":"store unavailable","instance":"c0ffee","problems":[]}`},
		{"ok/problems", &Error{Kind: Invalid, Detail: "1 problem", Problems: []adapters.Problem{{Pointer: "/noticeId", Code: adapters.CodeMissing, Message: "required"}}},
			`{"type":"urn:my:perkeso:jambatan:problem:invalid-document","title":"Document breaks the format's rules","status":422,"detail":"1 problem","instance":"c0ffee","problems":[{"pointer":"/noticeId","code":"` + adapters.CodeMissing + `","message":"required"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tc.err.WriteHTTP(w, "c0ffee")
			if got := strings.TrimSuffix(w.Body.String(), "\n"); got != tc.want || w.Code != tc.err.Kind.Status() ||
				w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Fatalf("%d %v\n%s\nwant\n%s", w.Code, w.Header(), got, tc.want)
			}
		})
	}
	e := &Error{Kind: Unavailable, Detail: "store unavailable", Cause: cause}
	if got := e.Error(); got != "Service unavailable: store unavailable: disk full at /var/lib/jambatan" {
		t.Fatalf("Error() = %q", got)
	}
	if got := (&Error{Kind: NotFound, Detail: "no such record"}).Error(); got != "Not found: no such record" {
		t.Fatalf("Error() = %q", got)
	}
}
