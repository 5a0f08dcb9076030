// Package retryafter reads the wait a peer asks for before a retry: an HTTP
// Retry-After header (RFC 9110 §10.2.3) or an agency fault's
// RetryAfterSeconds (agency-soap/v1 §8.1), for the two clients the gateway
// has: its outbound delivery to partners, and the partner kit's submissions
// to a gateway.
package retryafter

import (
	"net/http"
	"strings"
	"time"
)

// Max bounds every wait read here. The value comes from a peer, so it is
// foreign input: a day is longer than any caller waits (each bounds the
// wait again by its own policy), and the bound keeps a long run of digits
// from overflowing a time.Duration.
const Max = 24 * time.Hour

// Parse returns the wait a Retry-After value asks for: whole seconds, or
// the time until an HTTP date (negative once that date has passed), at most
// Max. An absent or unreadable value is 0: the caller's own backoff decides.
func Parse(v string) time.Duration {
	if v == "" {
		return 0
	}
	if d, ok := seconds(strings.TrimSpace(v)); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(time.Until(t), Max)
	}
	return 0
}

// Seconds reads a count of whole seconds (an agency fault's
// RetryAfterSeconds, an xs:positiveInteger), at most Max; anything else is 0.
func Seconds(v string) time.Duration {
	d, _ := seconds(strings.TrimPrefix(strings.TrimSpace(v), "+"))
	return d
}

// seconds reads ASCII digits as seconds, saturating at Max.
func seconds(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= int64(Max/time.Second) {
			n = n*10 + int64(c-'0')
		}
	}
	return min(time.Duration(n)*time.Second, Max), true
}
