package mapping

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestNRICCheckLetter(t *testing.T) {
	// Worked values from sg-employer-notice/v1 §4.2 and the examples.
	for _, id := range []string{"S1234567D", "T1234567J", "F1234567N", "G1234567X", "M1234567K",
		"G5123456T", "M2345678P", "M4102337J", "S8012345J",
		// Digits at the edges of their range (check letters by §4.2, computed apart).
		"S9000009H", "T0999990B", "F9090909Q", "G0000000R", "M9999999X"} {
		t.Run("ok/"+id, func(t *testing.T) {
			if !ValidNRIC(id) {
				t.Fatalf("ValidNRIC(%s) = false", id)
			}
		})
	}
	for _, id := range []string{"S1234567A", "M4102337M", "G5123456X", "A1234567D", "S123456"} {
		t.Run("fail/"+id, func(t *testing.T) {
			if ValidNRIC(id) {
				t.Fatalf("ValidNRIC(%s) = true", id)
			}
		})
	}
}

func TestMyKadBirthDate(t *testing.T) {
	acc := Date{2026, time.March, 3}
	tests := []struct {
		name, yymmdd string
		want         string
	}{
		{"ok/1999", "990815", "1999-08-15"},
		{"ok/2001", "010815", "2001-08-15"},
		{"ok/1990", "900215", "1990-02-15"},
		{"fail/too-young-or-old", "120101", ""},
		{"fail/not-a-date", "991332", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := MyKadBirthDate(MyKadBirthCandidates(tc.yymmdd), acc)
			got := ""
			if ok {
				got = d.String()
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if c := MyKadBirthCandidates("000229"); len(c) != 1 || c[0].String() != "2000-02-29" {
		t.Fatalf("000229 candidates = %v, want only 2000-02-29", c)
	}
}

func TestToMYR(t *testing.T) {
	// Worked values from canonical §4.
	tests := []struct{ amount, cur, want string }{
		{"2450.00", "SGD", "7990.68"},
		{"2150.00", "SGD", "7012.23"},
		{"2030.00", "SGD", "6620.85"},
		{"3800.00", "SGD", "12393.70"},
		{"2100.00", "SGD", "6849.15"},
		{"420.00", "THB", "54.52"},
		{"1500000.00", "IDR", "381.00"},
		{"1000.00", "BND", "3261.50"},
		{"0.01", "THB", "0.00"},
		{"1.00", "THB", "0.13"}, // as many digits as decimals: a leading zero
	}
	for _, tc := range tests {
		t.Run("ok/"+tc.cur+tc.amount, func(t *testing.T) {
			m, err := ExampleRates.ToMYR(tc.amount, tc.cur)
			if err != nil || m.MYRAmount != tc.want {
				t.Fatalf("ToMYR(%s %s) = %q, %v; want %q", tc.amount, tc.cur, m.MYRAmount, err, tc.want)
			}
		})
	}
	t.Run("fail/unknown-currency", func(t *testing.T) {
		if _, err := ExampleRates.ToMYR("1.00", "XXX"); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("fail/rate-not-a-decimal", func(t *testing.T) {
		// A table's own mistake is an error, not a panic in the intake.
		bad := RateTable{ID: "XR-BAD", Rates: map[string]string{"SGD": "3.26 MYR"}}
		if _, err := bad.ToMYR("1.00", "SGD"); err == nil || !strings.Contains(err.Error(), `"3.26 MYR"`) {
			t.Fatalf("%v, want the rate named", err)
		}
	})
	if got := RoundHalfAway(big.NewRat(-6620845, 1000), 2); got != "-6620.85" {
		t.Fatalf("negative half rounds to %s", got)
	}
}

// TestRoundHalfAway: exactly the places asked for, halves away from zero,
// a leading zero where the digits are fewer than the places, no point for
// none, no minus sign on a zero.
func TestRoundHalfAway(t *testing.T) {
	for _, tc := range []struct {
		name   string
		x      *big.Rat
		places int
		want   string
	}{
		{"ok/half-up", big.NewRat(125, 1000), 2, "0.13"},
		{"ok/half-down-negative", big.NewRat(-125, 1000), 2, "-0.13"},
		{"ok/below-half", big.NewRat(124999, 1000000), 2, "0.12"},
		{"ok/digits-as-many-as-places", big.NewRat(5, 10), 1, "0.5"},
		{"ok/digits-fewer-than-places", big.NewRat(5, 1000), 3, "0.005"},
		{"ok/no-places", big.NewRat(5, 2), 0, "3"},
		{"ok/zero-places-negative", big.NewRat(-5, 2), 0, "-3"},
		{"ok/negative-to-zero", big.NewRat(-4, 1000), 2, "0.00"},
		{"ok/whole", big.NewRat(7, 1), 2, "7.00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RoundHalfAway(tc.x, tc.places); got != tc.want {
				t.Fatalf("RoundHalfAway(%s, %d) = %q, want %q", tc.x.RatString(), tc.places, got, tc.want)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2024-02-29", "2025-02-28"},
		{"2026-03-03", "2027-03-03"},
		{"2026-01-31", "2027-01-31"},
	}
	for _, tc := range tests {
		var d Date
		tm, _ := time.Parse(time.DateOnly, tc.in)
		d = DateOf(tm)
		if got := PerkesoClaimLimit(d).String(); got != tc.want {
			t.Errorf("PerkesoClaimLimit(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := AddMonthsClamped(Date{2026, 1, 31}, 1).String(); got != "2026-02-28" {
		t.Errorf("Jan 31 + 1 month = %s", got)
	}
	if got := SGWICAFatalReportDue(Date{2026, 5, 20}).String(); got != "2026-05-30" {
		t.Errorf("fatal report due = %s", got)
	}
}

func TestCountryAssigned(t *testing.T) {
	if len(countries) != 249 {
		t.Fatalf("%d country codes, want 249", len(countries))
	}
	for _, c := range []string{"MY", "SG", "TH", "BN"} {
		if !CountryAssigned(c) {
			t.Errorf("%s not assigned", c)
		}
	}
	for _, c := range []string{"XK", "ZZ", "UK", "EU"} {
		if CountryAssigned(c) {
			t.Errorf("%s assigned", c)
		}
	}
}

func TestThai(t *testing.T) {
	// With the examples', check digits and body digits at the edges of
	// their range (computed apart, by agency-soap/v1 §5.1).
	for _, id := range []string{"6900100123458", "3901000456711", "6900200788109", "1900000000060", "1000000000009", "9999999999994"} {
		if !ValidThaiPID(id) {
			t.Errorf("ValidThaiPID(%s) = false", id)
		}
	}
	for _, id := range []string{"6900100123457", "3901000456710", "690010012345", "190000000006/", "190000000006:", "/900000000006", ":900000000006"} {
		if ValidThaiPID(id) {
			t.Errorf("ValidThaiPID(%s) = true", id)
		}
	}
	for _, tc := range []struct {
		lex, cal, want string
	}{
		{"2567-02-29", "BE", "2024-02-29"},
		{"2568-02-29", "BE", ""},
		{"2569-03-02", "BE", "2026-03-02"},
		{"2026-03-02", "CE", "2026-03-02"},
		{"1899-12-31", "CE", ""},
		{"1900-01-01", "CE", "1900-01-01"},
		{"2100-12-31", "CE", "2100-12-31"},
		{"2101-01-01", "CE", ""},
		{"2443-01-01", "BE", "1900-01-01"},
		{"2442-12-31", "BE", ""},
		{"2643-12-31", "BE", "2100-12-31"},
		{"2644-01-01", "BE", ""},
		{"2026-0a-01", "CE", ""},
		{"2026/03/02", "CE", ""},
		{"2026-13-01", "CE", ""},
		{"2026-03-02", "XX", ""},
	} {
		d, ok := CalDate(tc.lex, tc.cal)
		got := ""
		if ok {
			got = d.String()
		}
		if got != tc.want {
			t.Errorf("CalDate(%s, %s) = %q, want %q", tc.lex, tc.cal, got, tc.want)
		}
	}
}

// TestDateString: the hand-written layout agrees with Sprintf's on every
// date it takes, and dates outside it still print as Sprintf prints them.
func TestDateString(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Date
		want string
	}{
		{"ok/ordinary", Date{2026, 3, 14}, "2026-03-14"},
		{"ok/first", Date{0, 1, 1}, "0000-01-01"},
		{"ok/last", Date{9999, 12, 31}, "9999-12-31"},
		{"ok/unset", Date{}, "0000-00-00"},
		{"fail/year-past-9999", Date{10000, 1, 1}, "10000-01-01"},
		{"fail/negative-year", Date{-1, 1, 1}, "-001-01-01"},
		{"fail/month-13", Date{2026, 13, 1}, "2026-13-01"},
		{"fail/day-100", Date{2026, 1, 100}, "2026-01-100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.String(); got != tc.want {
				t.Fatalf("%#v.String() = %q, want %q", tc.d, got, tc.want)
			}
		})
	}
	for y := 0; y <= 9999; y += 7 {
		for m := time.Month(0); m <= 12; m++ {
			for d := 0; d <= 99; d += 3 {
				dt := Date{y, m, d}
				if got, want := dt.String(), fmt.Sprintf("%04d-%02d-%02d", y, m, d); got != want {
					t.Fatalf("%#v: %q, want %q", dt, got, want)
				}
			}
		}
	}
}

// TestAgeWindow: completed years, a birthday counting on its day, and the
// window of §4.3 item 3 (15 to 99 on the accident date) at both edges.
func TestAgeWindow(t *testing.T) {
	d := func(y int, m time.Month, day int) Date { return Date{y, m, day} }
	for _, tc := range []struct {
		name            string
		birth, accident Date
		age             int
		in              bool
	}{
		{"ok/fifteen-on-the-birthday", d(2011, 3, 3), d(2026, 3, 3), 15, true},
		{"fail/fourteen-the-day-before", d(2011, 3, 4), d(2026, 3, 3), 14, false},
		{"fail/fourteen-the-month-before", d(2011, 4, 1), d(2026, 3, 31), 14, false},
		{"ok/ninety-nine-the-day-before-a-hundred", d(1926, 3, 4), d(2026, 3, 3), 99, true},
		{"fail/a-hundred-on-the-birthday", d(1926, 3, 3), d(2026, 3, 3), 100, false},
		{"ok/leap-day-birthday-on-28-february", d(2008, 2, 29), d(2026, 2, 28), 17, true},
		{"ok/leap-day-birthday-on-1-march", d(2008, 2, 29), d(2026, 3, 1), 18, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AgeOn(tc.birth, tc.accident); got != tc.age {
				t.Fatalf("AgeOn = %d, want %d", got, tc.age)
			}
			if got := InAgeWindow(tc.birth, tc.accident); got != tc.in {
				t.Fatalf("InAgeWindow = %v, want %v", got, tc.in)
			}
		})
	}
}

// TestESAWLists: canonical §6.6's lists as read from their text, every
// code and nothing else (no empty code between two spaces).
func TestESAWLists(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   map[string]bool
		n     int
		first string
		last  string
	}{
		{"ok/nature", ESAWNature, 46, "000", "999"},
		{"ok/body-part", ESAWBodyPart, 41, "00", "99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.set) != tc.n || !tc.set[tc.first] || !tc.set[tc.last] || tc.set[""] {
				t.Fatalf("%d codes (first %v, last %v, empty %v), want %d", len(tc.set), tc.set[tc.first], tc.set[tc.last], tc.set[""], tc.n)
			}
		})
	}
}

// TestMinorToMajor: minor units as a decimal with the currency's exponent,
// a leading zero below one unit, no point for a currency without minor
// units, and the sign kept.
func TestMinorToMajor(t *testing.T) {
	rates := RateTable{ID: "XR-TEST", Minor: map[string]int{"SGD": 2, "JPY": 0, "BHD": 3}}
	for _, tc := range []struct {
		name     string
		minor    int64
		currency string
		want     string
	}{
		{"ok/units-and-cents", 245000, "SGD", "2450.00"},
		{"ok/below-one-unit", 5, "SGD", "0.05"},
		{"ok/zero", 0, "SGD", "0.00"},
		{"ok/negative", -123, "SGD", "-1.23"},
		{"ok/no-minor-units", 500, "JPY", "500"},
		{"ok/three-digits", 1234, "BHD", "1.234"},
		{"ok/smallest-int64", math.MinInt64, "SGD", "-92233720368547758.08"},
		{"ok/largest-int64", math.MaxInt64, "SGD", "92233720368547758.07"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rates.MinorToMajor(tc.minor, tc.currency); got != tc.want {
				t.Fatalf("MinorToMajor(%d, %s) = %q, want %q", tc.minor, tc.currency, got, tc.want)
			}
		})
	}
}
