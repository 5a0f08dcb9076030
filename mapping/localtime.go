package mapping

import "time"

// LocalInstant is the instant at which the clocks of loc read hour:minute on
// date d. A local time the zone skips (its clocks moved forward over it, or
// a day left out, as Samoa's 2011-12-30) has no instant: ok is false, and
// the formats call it not a real time (DATE). A local time the zone passes
// twice (its clocks moved back) is the earlier of the two instants, the
// first time it was that time there, as RFC 5545 §3.3.5 and java.time
// choose.
//
// Go's time.Date leaves both cases open ("not guaranteed"), and what it
// does differs by zone: 01:30 on the night New York's clocks go back is its
// first instant, on the night London's go back its second; 02:30 on the
// night New York's clocks go forward, a time no clock there showed, is the
// instant of 01:30 EST.
func LocalInstant(d Date, hour, minute int, loc *time.Location) (t time.Time, ok bool) {
	wall := time.Date(d.Year, d.Month, d.Day, hour, minute, 0, 0, time.UTC)
	// Every instant showing that wall time lies within 26 hours of it read
	// as UTC (offsets run from -12:00 to +14:00). Walk the zone's periods
	// over that span; each period's offset gives one candidate.
	end := wall.Add(26 * time.Hour)
	for at := wall.Add(-26 * time.Hour); at.Before(end); {
		_, off := at.In(loc).Zone()
		c := wall.Add(-time.Duration(off) * time.Second)
		if l := c.In(loc); l.Year() == d.Year && l.Month() == d.Month && l.Day() == d.Day && l.Hour() == hour && l.Minute() == minute {
			if !ok || c.Before(t) {
				t, ok = c, true
			}
		}
		_, next := at.In(loc).ZoneBounds()
		if next.IsZero() { // the last period: it runs on for ever
			break
		}
		at = next
	}
	return t, ok
}
