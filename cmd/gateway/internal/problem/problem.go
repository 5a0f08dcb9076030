// Package problem is the gateway's one error type. An error has a closed
// Kind, a detail safe to show the sender, the specification's problem list,
// and a cause that is logged but never sent. Transports render it: HTTP as an
// RFC 9457 application/problem+json document, SOAP as a Fault.
package problem

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/perkeso/jambatan/adapters"
)

// Kind is the closed set of refusals.
type Kind int

// Kinds, each with a stable type URI, title and HTTP status.
const (
	BadRequest Kind = iota + 1
	Signature
	NotAuthorised
	NotFound
	MethodNotAllowed
	Conflict
	TooLarge
	UnsupportedMediaType
	Invalid
	Internal
	Unavailable
)

type kindInfo struct {
	slug   string
	title  string
	status int
}

var kinds = map[Kind]kindInfo{
	BadRequest:           {"bad-request", "Bad request", http.StatusBadRequest},
	Signature:            {"signature", "Signature not accepted", http.StatusUnauthorized},
	NotAuthorised:        {"not-authorised", "Sender not authorised", http.StatusForbidden},
	NotFound:             {"not-found", "Not found", http.StatusNotFound},
	MethodNotAllowed:     {"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed},
	Conflict:             {"duplicate-conflict", "Different content under an accepted id", http.StatusConflict},
	TooLarge:             {"too-large", "Payload too large", http.StatusRequestEntityTooLarge},
	UnsupportedMediaType: {"unsupported-media-type", "Unsupported media type", http.StatusUnsupportedMediaType},
	Invalid:              {"invalid-document", "Document breaks the format's rules", http.StatusUnprocessableEntity},
	Internal:             {"internal", "Internal error", http.StatusInternalServerError},
	Unavailable:          {"unavailable", "Service unavailable", http.StatusServiceUnavailable},
}

// TypeBase prefixes every problem type URI.
const TypeBase = "urn:my:perkeso:jambatan:problem:"

// TypeURI is the stable type URI of a kind.
func (k Kind) TypeURI() string { return TypeBase + kinds[k].slug }

// Status is the HTTP status of a kind.
func (k Kind) Status() int { return kinds[k].status }

// Title is the short human title of a kind.
func (k Kind) Title() string { return kinds[k].title }

// AllKinds lists every kind, for documentation and tests.
func AllKinds() []Kind {
	return []Kind{BadRequest, Signature, NotAuthorised, NotFound, MethodNotAllowed, Conflict, TooLarge, UnsupportedMediaType, Invalid, Internal, Unavailable}
}

// Error is a refusal.
type Error struct {
	Kind     Kind
	Detail   string             // shown to the sender
	Problems []adapters.Problem // the specification's problem list
	Cause    error              // logged, never shown
	// Allow lists the methods the path is served with, for a 405's Allow
	// header (RFC 9110 §15.5.6 requires one).
	Allow []string
}

func (e *Error) Error() string {
	s := e.Kind.Title() + ": " + e.Detail
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// New returns an error of a kind.
func New(k Kind, detail string, problems ...adapters.Problem) *Error {
	return &Error{Kind: k, Detail: detail, Problems: problems}
}

// Wrap returns an error of a kind with a cause that is logged only.
func Wrap(k Kind, detail string, cause error) *Error {
	return &Error{Kind: k, Detail: detail, Cause: cause}
}

// Document is the RFC 9457 body.
type Document struct {
	Type     string             `json:"type"`
	Title    string             `json:"title"`
	Status   int                `json:"status"`
	Detail   string             `json:"detail"`
	Instance string             `json:"instance"`
	Problems []adapters.Problem `json:"problems"`
}

// Doc builds the problem document for a correlation id.
func (e *Error) Doc(correlationID string) Document {
	ps := e.Problems
	if ps == nil {
		ps = []adapters.Problem{}
	}
	return Document{Type: e.Kind.TypeURI(), Title: e.Kind.Title(), Status: e.Kind.Status(), Detail: e.Detail, Instance: correlationID, Problems: ps}
}

// WriteHTTP renders the error as application/problem+json.
func (e *Error) WriteHTTP(w http.ResponseWriter, correlationID string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	if len(e.Allow) > 0 {
		w.Header().Set("Allow", strings.Join(e.Allow, ", "))
	}
	b, _ := json.Marshal(e.Doc(correlationID))
	WriteWhole(w, e.Kind.Status(), append(b, '\n'))
}

// WriteWhole writes an answer made whole before it is sent: its status, a
// Content-Length, then body. Without the length, net/http sends a body
// over 2 KB in chunks (a signed SOAP answer, a batch's results, a long
// list of problems), which a partner's client must then reassemble, and
// which some simple clients do not read.
func WriteWhole(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Route is a served method and path pattern (as ServeMux reads it).
type Route struct{ Method, Path string }

// Unrouted is the problem for a request no route took: 405 when its path
// fits one of the routes' patterns (so another method would have been
// served), with the methods that would have been in Allow; 404 otherwise.
// A GET route serves HEAD too, as ServeMux does.
func Unrouted(method, path string, routes []Route) *Error {
	var allow []string
	for _, rt := range routes {
		if matchPath(rt.Path, path) {
			allow = append(allow, rt.Method)
			if rt.Method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) == 0 {
		return New(NotFound, "no such route: "+method+" "+path)
	}
	slices.Sort(allow)
	e := New(MethodNotAllowed, "no such route: "+method+" "+path)
	e.Allow = slices.Compact(allow)
	return e
}

// matchPath reports whether path fits a route pattern, segment by segment,
// a {name} segment standing for any one non-empty segment (as ServeMux
// reads it).
func matchPath(pattern, path string) bool {
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if qs[i] == "" {
				return false
			}
		} else if p != qs[i] {
			return false
		}
	}
	return true
}
