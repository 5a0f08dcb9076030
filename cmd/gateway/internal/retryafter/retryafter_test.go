package retryafter

import (
	"net/http"
	"strconv"
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
		{"ok/seconds-beyond-a-day", "86401", Max, Max},
		{"ok/seconds-overflowing", "99999999999999999999", Max, Max}, // n·1e9 ns overflows an int64
		{"ok/date-beyond-a-day", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat), Max, Max},
		{"fail/absent", "", 0, 0},
		{"fail/negative", "-3", 0, 0},
		{"fail/signed", "+3", 0, 0}, // delay-seconds = 1*DIGIT
		{"fail/words", "soon", 0, 0},
		{"fail/fraction", "1.5", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.v); got < tc.min || got > tc.max {
				t.Fatalf("Parse(%q) = %v, want %v..%v", tc.v, got, tc.min, tc.max)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		name, v string
		want    time.Duration
	}{
		{"ok/seconds", "90", 90 * time.Second},
		{"ok/plus", "+90", 90 * time.Second}, // xs:positiveInteger allows a sign
		{"ok/spaced", "\n 30 ", 30 * time.Second},
		{"ok/beyond-a-day", "31536000", Max},
		{"ok/overflowing", "184467440737095516160", Max},
		{"fail/empty", "", 0},
		{"fail/negative", "-90", 0},
		{"fail/date", "Wed, 21 Oct 2026 07:28:00 GMT", 0},
		{"fail/words", "ninety", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Seconds(tc.v); got != tc.want {
				t.Fatalf("Seconds(%q) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

// FuzzParse: whatever a peer sends, the wait is at most Max, Seconds is
// never negative, and a count of seconds under a day reads as itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"7", "0", "86400", "99999999999999999999", "+3", "Sun, 06 Nov 1994 08:49:37 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", " 12 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, s := Parse(v), Seconds(v)
		if p > Max || s > Max || s < 0 {
			t.Fatalf("Parse(%q) = %v, Seconds = %v: beyond 0..%v", v, p, s, Max)
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && v[0] != '+' && n <= uint64(Max/time.Second) {
			if want := time.Duration(n) * time.Second; p != want || s != want {
				t.Fatalf("%q: Parse %v, Seconds %v, want %v", v, p, s, want)
			}
		}
	})
}
