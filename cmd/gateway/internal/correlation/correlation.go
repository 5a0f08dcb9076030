// Package correlation gives each request the id that ties its response, its
// log lines and its message-log entry together. The id is always the
// gateway's own, never taken from the client: a client cannot make two
// requests share one, nor put text of its choosing into the logs.
package correlation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Header carries the correlation id on every response.
const Header = "X-Correlation-ID"

// New returns a fresh id: 128 random bits in hex.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context { return context.WithValue(ctx, key{}, id) }

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
