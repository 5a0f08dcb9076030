package retryafter

import (
	"net/http"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, v  string
		min, max time.Duration
	}{
		{"ok/seconds", "7", 7 * time.Second, 7 * time.Second},
		{"ok/seconds-spaced", " 2 ", 2 * time.Second, 2 * time.Second},
		{"ok/zero", "0", 0, 0},
		{"ok/date", time.Now().Add(time.Minute).UTC().Format(http.TimeFormat), 58 * time.Second, time.Minute},
		{"fail/absent", "", 0, 0},
		{"fail/negative", "-3", 0, 0},
		{"fail/words", "soon", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.v); got < tc.min || got > tc.max {
				t.Fatalf("Parse(%q) = %v, want %v..%v", tc.v, got, tc.min, tc.max)
			}
		})
	}
}
