package mapping

import (
	"testing"
	"time"

	_ "time/tzdata" // the zones, whatever the host has installed
)

func TestLocalInstant(t *testing.T) {
	for _, tc := range []struct {
		name, zone string
		y, mo, d   int
		h, m       int
		want       string // RFC 3339 in UTC, or "" for a time the zone skips
	}{
		{"ok/singapore", "Asia/Singapore", 2026, 3, 3, 7, 45, "2026-03-02T23:45:00Z"}, // insurer-claim/v1 §6's example
		{"ok/bangkok", "Asia/Bangkok", 2026, 3, 3, 0, 0, "2026-03-02T17:00:00Z"},
		{"ok/utc", "UTC", 2026, 3, 3, 12, 0, "2026-03-03T12:00:00Z"},
		{"ok/new-york-twice-first", "America/New_York", 2026, 11, 1, 1, 30, "2026-11-01T05:30:00Z"},
		{"ok/london-twice-first", "Europe/London", 2026, 10, 25, 1, 30, "2026-10-25T00:30:00Z"},
		{"ok/sydney-twice-first", "Australia/Sydney", 2026, 4, 5, 2, 30, "2026-04-04T15:30:00Z"},
		{"ok/lord-howe-half-hour-twice-first", "Australia/Lord_Howe", 2026, 4, 5, 1, 45, "2026-04-04T14:45:00Z"},
		{"ok/london-after-the-change", "Europe/London", 2026, 10, 25, 2, 0, "2026-10-25T02:00:00Z"},
		{"ok/new-york-just-before-the-gap", "America/New_York", 2026, 3, 8, 1, 59, "2026-03-08T06:59:00Z"},
		{"ok/new-york-just-after-the-gap", "America/New_York", 2026, 3, 8, 3, 0, "2026-03-08T07:00:00Z"},
		{"fail/new-york-skipped", "America/New_York", 2026, 3, 8, 2, 30, ""},
		{"fail/london-skipped", "Europe/London", 2026, 3, 29, 1, 0, ""},
		{"fail/sydney-skipped", "Australia/Sydney", 2026, 10, 4, 2, 30, ""},
		{"fail/singapore-1982-skipped", "Asia/Singapore", 1981, 12, 31, 23, 45, ""}, // UTC+07:30 to +08:00
		{"fail/samoa-skipped-day", "Pacific/Apia", 2011, 12, 30, 12, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := LocalInstant(Date{tc.y, time.Month(tc.mo), tc.d}, tc.h, tc.m, loc)
			if s := got.UTC().Format(time.RFC3339); ok != (tc.want != "") || ok && s != tc.want {
				t.Fatalf("%s, %v; want %q", s, ok, tc.want)
			}
		})
	}
}
