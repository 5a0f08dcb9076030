"""Local times to instants with Python's zoneinfo, independent of Go's time
package: for mapping.LocalInstant's comparison (TestZoneinfoAgreesOnLocalTimes).

Usage: python3 localtime.py zones      prints the zones zoneinfo knows, one a line
       python3 localtime.py FILE       FILE has one JSON array a line: [zone, y, m, d, h, min];
                                       prints the instant in UTC (fold=0: the earlier of two),
                                       or "skipped" for a local time the zone never shows
"""
import json
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, available_timezones

if sys.argv[1] == "zones":
    print("\n".join(sorted(available_timezones())))
    sys.exit(0)

zones = {}
out = []
with open(sys.argv[1]) as f:
    for line in f:
        name, y, mo, d, h, mi = json.loads(line)
        z = zones.setdefault(name, ZoneInfo(name))
        local = datetime(y, mo, d, h, mi, tzinfo=z)
        utc = local.astimezone(timezone.utc)
        if utc.astimezone(z).replace(tzinfo=None) != local.replace(tzinfo=None):
            out.append("skipped")
        else:
            out.append(utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
sys.stdout.write("\n".join(out) + "\n")
