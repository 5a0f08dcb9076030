// Package retryafter reads an HTTP Retry-After header (RFC 9110 §10.2.3),
// for the two clients the gateway has: its outbound delivery to partners,
// and the partner kit's submissions to a gateway.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse returns the wait a Retry-After value asks for: whole seconds, or
// the time until an HTTP date (negative once that date has passed). An
// absent or unreadable value is 0: the caller's own backoff decides.
func Parse(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
