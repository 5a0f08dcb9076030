package interop

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/mapping"
)

// TestZoneinfoAgreesOnLocalTimes compares mapping.LocalInstant, which turns
// the insurer and agency formats' local dates and times into instants, with
// Python's zoneinfo on every zone both know: for each clock change from 2000
// to 2030, every quarter hour from two hours before it to two hours after,
// read on either side of the change. A local time the zone skips must be
// skipped by both; one it shows twice must be the earlier instant (zoneinfo's
// fold=0).
func TestZoneinfoAgreesOnLocalTimes(t *testing.T) {
	python, script := pythonScript(t, "localtime.py")
	zones, err := exec.Command(python, script, "zones").Output()
	if err != nil {
		t.Fatalf("python3 %s zones: %v", script, err)
	}
	type local struct {
		zone string
		loc  *time.Location
		d    mapping.Date
		h, m int
	}
	var cases []local
	var lines bytes.Buffer
	from, to := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	changes := 0
	for _, zone := range strings.Fields(string(zones)) {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			continue // a name this Go's tz data lacks
		}
		for at := from; at.Before(to); {
			_, end := at.In(loc).ZoneBounds()
			if end.IsZero() || !end.Before(to) {
				break
			}
			_, before := end.Add(-time.Second).In(loc).Zone()
			_, after := end.In(loc).Zone()
			changes++
			seen := map[time.Time]bool{}
			for _, off := range []int{before, after} {
				wall := end.Add(time.Duration(off) * time.Second).UTC() // the change's wall time at that offset
				for k := -8; k <= 8; k++ {
					w := wall.Add(time.Duration(k) * 15 * time.Minute).Truncate(time.Minute)
					if seen[w] {
						continue
					}
					seen[w] = true
					c := local{zone: zone, loc: loc, d: mapping.DateOf(w), h: w.Hour(), m: w.Minute()}
					cases = append(cases, c)
					b, _ := json.Marshal([]any{zone, c.d.Year, int(c.d.Month), c.d.Day, c.h, c.m})
					lines.Write(append(b, '\n'))
				}
			}
			at = end
		}
	}
	file := filepath.Join(t.TempDir(), "locals.ndjson")
	if err := os.WriteFile(file, lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, script, file).Output()
	if err != nil {
		t.Fatalf("python3 %s: %v", script, err)
	}
	answers := strings.Fields(string(out))
	if len(answers) != len(cases) {
		t.Fatalf("zoneinfo answered %d of %d", len(answers), len(cases))
	}
	skipped, differ := 0, 0
	for i, c := range cases {
		got := "skipped"
		if at, ok := mapping.LocalInstant(c.d, c.h, c.m, c.loc); ok {
			got = at.UTC().Format(time.RFC3339)
		} else {
			skipped++
		}
		if got != answers[i] {
			differ++
			if differ <= 20 {
				t.Errorf("%s %s %02d:%02d: LocalInstant %s, zoneinfo %s", c.zone, c.d, c.h, c.m, got, answers[i])
			}
		}
	}
	t.Logf("%d zones' %d clock changes, %d local times (%d skipped): %d differ", len(strings.Fields(string(zones))), changes, len(cases), skipped, differ)
	if changes < 1000 || skipped < 1000 {
		t.Fatalf("too few clock changes (%d) or skipped times (%d) to mean anything", changes, skipped)
	}
}
