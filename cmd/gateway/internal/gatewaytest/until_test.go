package gatewaytest_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

// fatalT records the message a Fatalf would fail with and ends the
// goroutine as testing.T's does.
type fatalT struct {
	testing.TB
	failed string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// until runs Until on a goroutine of its own (Fatalf ends it) and returns
// the failure message, empty when the wait ended well, with the calls made.
func until(within time.Duration, check func(call int) error) (failed string, calls int) {
	f := &fatalT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gatewaytest.Until(f, within, time.Millisecond, func() error { calls++; return check(calls) })
	}()
	<-done
	return f.failed, calls
}

func TestUntil(t *testing.T) {
	for _, tc := range []struct {
		name   string
		within time.Duration
		check  func(call int) error
		failed string // a part of the failure, empty for none
		calls  int    // the calls made; 0 for any number past 1
	}{
		{"ok/at-once", time.Minute, func(int) error { return nil }, "", 1},
		{"ok/on-the-third-call", time.Minute, func(call int) error {
			if call < 3 {
				return fmt.Errorf("call %d", call)
			}
			return nil
		}, "", 3},
		{"ok/a-deadline-passed-before-the-first-call", -time.Second, func(int) error { return nil }, "", 1},
		{"fail/the-last-state-is-reported", 50 * time.Millisecond, func(call int) error {
			return fmt.Errorf("still missing at call %d", call)
		}, "after 50ms: still missing at call ", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed, calls := until(tc.within, tc.check)
			if tc.failed == "" && failed != "" || !strings.Contains(failed, tc.failed) {
				t.Fatalf("failure %q, want one with %q", failed, tc.failed)
			}
			if tc.calls > 0 && calls != tc.calls || tc.calls == 0 && calls < 2 {
				t.Fatalf("%d calls, want %d (0: more than one)", calls, tc.calls)
			}
			if tc.failed != "" && !strings.HasSuffix(failed, fmt.Sprint(calls)) {
				t.Fatalf("failure %q is not the last call's (%d)", failed, calls)
			}
		})
	}
}
