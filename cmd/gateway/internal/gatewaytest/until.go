package gatewaytest

import (
	"testing"
	"time"
)

// Until calls check every interval until it returns nil, and fails t with
// check's last error if within passes first. It is for what a gateway brings
// about in its own time (a log line, a count, a delivery): check says what
// is still missing, so the failure shows the state it was last seen in, not
// the state when the wait began. check is called at least once, and t
// fails only after a call that ended past the deadline.
func Until(t testing.TB, within, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", within, err)
		}
		time.Sleep(interval)
	}
}
