// Package correlation gives each request the id that ties its response, its
// log lines and its message-log entry together. The id is always the
// gateway's own, never taken from the client: a client cannot make two
// requests share one, nor put text of its choosing into the logs.
package correlation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// Header carries the correlation id on every response.
const Header = "X-Correlation-ID"

// New returns a fresh id, for a log line that belongs to no request (a
// failed TLS handshake): 128 random bits in hex.
func New() string { return newID() }

// newID returns a fresh id: 128 random bits in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start gives a request a fresh id: on its answer's header and in the
// context of the request it returns.
func Start(w http.ResponseWriter, r *http.Request) (*http.Request, string) {
	id := newID()
	w.Header().Set(Header, id)
	return r.WithContext(context.WithValue(r.Context(), key{}, id)), id
}

type key struct{}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
