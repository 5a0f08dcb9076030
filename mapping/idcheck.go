package mapping

import (
	"fmt"
	"time"
)

var (
	nricTableST = [11]byte{'J', 'Z', 'I', 'H', 'G', 'F', 'E', 'D', 'C', 'B', 'A'}
	nricTableFG = [11]byte{'X', 'W', 'U', 'T', 'R', 'Q', 'P', 'N', 'M', 'L', 'K'}
	nricTableM  = [11]byte{'X', 'W', 'U', 'T', 'R', 'Q', 'P', 'N', 'J', 'L', 'K'}
)

// NRICCheckLetter computes the check letter of a Singapore NRIC or FIN
// (sg-employer-notice/v1 §4.2) from its prefix and seven digits. ok is false
// for an unknown prefix or a non-digit.
func NRICCheckLetter(prefix byte, digits string) (letter byte, ok bool) {
	if len(digits) != 7 {
		return 0, false
	}
	weights := [7]int{2, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i := 0; i < 7; i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		sum += weights[i] * int(c-'0')
	}
	var table *[11]byte
	switch prefix {
	case 'S':
		table = &nricTableST
	case 'T':
		sum += 4
		table = &nricTableST
	case 'F':
		table = &nricTableFG
	case 'G':
		sum += 4
		table = &nricTableFG
	case 'M':
		sum += 3
		table = &nricTableM
	default:
		return 0, false
	}
	return table[sum%11], true
}

// ValidNRIC reports whether a 9-character NRIC/FIN has the right check letter.
// The caller has already checked the pattern.
func ValidNRIC(id string) bool {
	if len(id) != 9 {
		return false
	}
	want, ok := NRICCheckLetter(id[0], id[1:8])
	return ok && want == id[8]
}

// myKadPBInvalid lists the MyKad place-of-birth codes never issued (§4.3 item 1).
var myKadPBInvalid = map[string]bool{
	"00": true, "17": true, "18": true, "19": true, "20": true, "69": true, "70": true,
	"73": true, "80": true, "81": true, "94": true, "95": true, "96": true, "97": true,
}

// MyKadPlaceOfBirthValid reports whether the two-digit place-of-birth code was issued.
func MyKadPlaceOfBirthValid(pb string) bool { return len(pb) == 2 && !myKadPBInvalid[pb] }

// Date is a calendar date without a zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// NewDate returns the date and whether it exists in the Gregorian calendar.
func NewDate(y int, m time.Month, d int) (Date, bool) {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return Date{y, m, d}, t.Year() == y && t.Month() == m && t.Day() == d
}

// String renders the date as YYYY-MM-DD.
func (d Date) String() string {
	if d.Year < 0 || d.Year > 9999 || d.Month < 1 || d.Month > 12 || d.Day < 0 || d.Day > 99 {
		return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
	}
	// The common case by hand: Sprintf was 0.9 % of the gateway's CPU under
	// loadtest (every canonical record writes several dates).
	b := [10]byte{'0' + byte(d.Year/1000), '0' + byte(d.Year/100%10), '0' + byte(d.Year/10%10), '0' + byte(d.Year%10), '-',
		'0' + byte(d.Month/10), '0' + byte(d.Month%10), '-', '0' + byte(d.Day/10), '0' + byte(d.Day%10)}
	return string(b[:])
}

// Time is midnight UTC of the date, for arithmetic.
func (d Date) Time() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// Before reports whether d is strictly before e.
func (d Date) Before(e Date) bool { return d.Time().Before(e.Time()) }

// DateOf returns the calendar date of t in t's location.
func DateOf(t time.Time) Date { return Date{t.Year(), t.Month(), t.Day()} }

// AgeOn returns the completed years between birth and on.
func AgeOn(birth, on Date) int {
	age := on.Year - birth.Year
	if on.Month < birth.Month || (on.Month == birth.Month && on.Day < birth.Day) {
		age--
	}
	return age
}

// Age window for a worker on the accident date (§4.3 item 3).
const (
	MinWorkerAge = 15
	MaxWorkerAge = 99
)

// InAgeWindow reports whether a person born on birth is 15..99 on the accident date.
func InAgeWindow(birth, accident Date) bool {
	a := AgeOn(birth, accident)
	return a >= MinWorkerAge && a <= MaxWorkerAge
}

// MyKadBirthCandidates returns the real dates among 19YY-MM-DD and 20YY-MM-DD
// for a MyKad's first six digits (§4.3 item 2).
func MyKadBirthCandidates(yymmdd string) []Date {
	yy := atoi(yymmdd[0:2])
	mm := atoi(yymmdd[2:4])
	dd := atoi(yymmdd[4:6])
	var out []Date
	for _, century := range []int{1900, 2000} {
		if d, ok := NewDate(century+yy, time.Month(mm), dd); ok {
			out = append(out, d)
		}
	}
	return out
}

// MyKadBirthDate picks the candidate in the age window on the accident date.
func MyKadBirthDate(candidates []Date, accident Date) (Date, bool) {
	for _, c := range candidates {
		if InAgeWindow(c, accident) {
			return c, true
		}
	}
	return Date{}, false
}

// MyKadSex returns M for an odd last digit and F for an even one (§4.3 item 5).
func MyKadSex(mykad string) string {
	if (mykad[len(mykad)-1]-'0')%2 == 1 {
		return "M"
	}
	return "F"
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
