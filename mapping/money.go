package mapping

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// RateTable is a reference exchange-rate table: MYR per one unit of a currency.
type RateTable struct {
	ID    string
	Rates map[string]string // currency -> rate, written as in the table
	Minor map[string]int    // currency -> ISO 4217 minor-unit digits
}

// OrExample is t, or ExampleRates for the zero table: the adapters'
// callers that name no table get the one the specifications define.
func (t RateTable) OrExample() RateTable {
	if t.ID == "" {
		return ExampleRates
	}
	return t
}

// ExampleRates is XR-EXAMPLE-2026 (canonical §4): example rates, not market
// data, used for every date by the specifications and their examples.
var ExampleRates = RateTable{
	ID:    "XR-EXAMPLE-2026",
	Rates: map[string]string{"MYR": "1", "SGD": "3.2615", "BND": "3.2615", "THB": "0.1298", "IDR": "0.000254"},
	Minor: map[string]int{"MYR": 2, "SGD": 2, "BND": 2, "THB": 2, "IDR": 2},
}

// Money is an amount in its source currency with its MYR equivalent.
type Money struct {
	Amount    string
	Currency  string
	MYRAmount string
	MYRRate   string
}

// ToMYR converts a decimal amount in currency to MYR at the table's rate,
// exactly in decimal, rounded to 2 decimals half away from zero (canonical §4).
func (t RateTable) ToMYR(amount, currency string) (Money, error) {
	rate, ok := t.Rates[currency]
	if !ok {
		return Money{}, fmt.Errorf("mapping: no %s rate for %s", t.ID, currency)
	}
	a, ok := new(big.Rat).SetString(amount)
	if !ok {
		return Money{}, fmt.Errorf("mapping: amount %q is not a decimal", amount)
	}
	r, ok := new(big.Rat).SetString(rate)
	if !ok {
		return Money{}, fmt.Errorf("mapping: %s's %s rate %q is not a decimal", t.ID, currency, rate)
	}
	return Money{Amount: amount, Currency: currency, MYRAmount: RoundHalfAway(new(big.Rat).Mul(a, r), 2), MYRRate: rate}, nil
}

// RoundHalfAway renders x with exactly places decimals, rounding half away from zero.
func RoundHalfAway(x *big.Rat, places int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	scaled := new(big.Rat).Mul(x, new(big.Rat).SetInt(scale))
	num, den := scaled.Num(), scaled.Denom()
	neg := num.Sign() < 0
	num = new(big.Int).Abs(num)
	q, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(rem, big.NewInt(2)).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	s := q.String()
	if len(s) <= places {
		s = strings.Repeat("0", places-len(s)+1) + s
	}
	out := s[:len(s)-places]
	if places > 0 {
		out += "." + s[len(s)-places:]
	}
	if neg && q.Sign() != 0 {
		out = "-" + out
	}
	return out
}

// MinorToMajor renders an amount in minor units as a decimal in major units
// with the currency's ISO 4217 exponent (canonical §4).
func (t RateTable) MinorToMajor(minor int64, currency string) string {
	exp := t.Minor[currency]
	neg := minor < 0
	// The magnitude as unsigned: negating the smallest int64 overflows back
	// to itself, but its two's complement read as uint64 is its magnitude.
	mag := uint64(minor)
	if neg {
		mag = -mag
	}
	s := strconv.FormatUint(mag, 10)
	for len(s) <= exp {
		s = "0" + s
	}
	out := s
	if exp > 0 {
		out = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		out = "-" + out
	}
	return out
}
