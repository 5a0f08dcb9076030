package mapping_test

import (
	"fmt"
	"time"

	"github.com/perkeso/jambatan/mapping"
)

// Amounts are converted exactly, in decimal, and rounded once at the end,
// half away from zero (canonical §4); the record keeps the rate it used.
func ExampleRateTable_ToMYR() {
	m, err := mapping.ExampleRates.ToMYR("2450.00", "SGD")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Amount, m.Currency, "=", m.MYRAmount, "MYR at", m.MYRRate)

	_, err = mapping.ExampleRates.ToMYR("100.00", "USD")
	fmt.Println(err)
	// Output:
	// 2450.00 SGD = 7990.68 MYR at 3.2615
	// mapping: no XR-EXAMPLE-2026 rate for USD
}

// A MyKad number gives its holder's birth date without the century: of
// 19YY and 20YY, the one that makes the worker 15 to 99 years old on the
// accident date is taken.
func ExampleMyKadBirthDate() {
	accident, _ := mapping.NewDate(2026, time.March, 3)
	for _, yymmdd := range []string{"900215", "010815", "120101"} {
		d, ok := mapping.MyKadBirthDate(mapping.MyKadBirthCandidates(yymmdd), accident)
		if !ok {
			fmt.Println(yymmdd, "no birth date in the age window")
			continue
		}
		fmt.Println(yymmdd, d)
	}
	// Output:
	// 900215 1990-02-15
	// 010815 2001-08-15
	// 120101 no birth date in the age window
}

// A Singapore NRIC or FIN ends in a check letter computed from its prefix
// and digits (sg-employer-notice/v1 §4.2).
func ExampleValidNRIC() {
	for _, id := range []string{"S1234567D", "S1234567A", "G5123456T"} {
		fmt.Println(id, mapping.ValidNRIC(id))
	}
	// Output:
	// S1234567D true
	// S1234567A false
	// G5123456T true
}

// The claim limit is the accident date plus 12 calendar months; a day the
// month reached lacks becomes its last day.
func ExamplePerkesoClaimLimit() {
	leap, _ := mapping.NewDate(2024, time.February, 29)
	fmt.Println(mapping.PerkesoClaimLimit(leap))
	// Output:
	// 2025-02-28
}
