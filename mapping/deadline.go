package mapping

import "time"

// Deadline codes of canonical §5.
const (
	DeadlinePerkesoClaimLimit = "PERKESO_CLAIM_LIMIT"
	DeadlineSGWICAFatalReport = "SG_WICA_FATAL_REPORT"
)

// AddMonthsClamped adds n calendar months; when the day does not exist in the
// month reached, it gives that month's last day (2024-02-29 + 12 -> 2025-02-28).
func AddMonthsClamped(d Date, n int) Date {
	first := time.Date(d.Year, d.Month, 1, 0, 0, 0, 0, time.UTC).AddDate(0, n, 0)
	last := first.AddDate(0, 1, -1).Day()
	day := d.Day
	if day > last {
		day = last
	}
	return Date{first.Year(), first.Month(), day}
}

// PerkesoClaimLimit is the accident date plus 12 calendar months.
func PerkesoClaimLimit(occurred Date) Date { return AddMonthsClamped(occurred, 12) }

// SGWICAFatalReportDue is the accident date plus 10 days.
func SGWICAFatalReportDue(occurred Date) Date { return DateOf(occurred.Time().AddDate(0, 0, 10)) }
