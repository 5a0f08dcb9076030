package mapping

import "time"

// ValidThaiPID checks a 13-digit Thai personal identification number
// (agency-soap/v1 §5.1): check = (11 - (sum of d_i * (14-i)) mod 11) mod 10.
func ValidThaiPID(id string) bool {
	if len(id) != 13 {
		return false
	}
	sum := 0
	for i := 0; i < 12; i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return false
		}
		sum += int(c-'0') * (13 - i)
	}
	if id[12] < '0' || id[12] > '9' {
		return false
	}
	return (11-sum%11)%10 == int(id[12]-'0')
}

// CalDate converts a yyyy-MM-dd date in the Buddhist Era ("BE", year - 543)
// or the Common Era ("CE") to a Gregorian date; leap years are decided on the
// CE year, and the CE year must be 1900-2100 (agency-soap/v1 §5.2).
func CalDate(lexical, cal string) (Date, bool) {
	if len(lexical) != 10 || lexical[4] != '-' || lexical[7] != '-' {
		return Date{}, false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if lexical[i] < '0' || lexical[i] > '9' {
			return Date{}, false
		}
	}
	y, m, d := atoi(lexical[0:4]), atoi(lexical[5:7]), atoi(lexical[8:10])
	switch cal {
	case "BE":
		y -= 543
	case "CE":
	default:
		return Date{}, false
	}
	if y < 1900 || y > 2100 {
		return Date{}, false
	}
	return NewDate(y, time.Month(m), d)
}

// THSSOBodyPartESAW and THSSONatureESAW are canonical §6.3.
var (
	THSSOBodyPartESAW = map[string]string{"101": "10", "102": "12", "103": "13", "111": "21", "121": "31", "131": "42",
		"141": "52", "142": "53", "143": "54", "151": "62", "152": "63", "153": "64", "190": "78"}
	THSSONatureESAW = map[string]string{"201": "011", "202": "012", "203": "020", "204": "031", "205": "032", "206": "040",
		"207": "061", "208": "051", "209": "112", "210": "071", "211": "120", "299": "999"}
)

// ESAW code lists (canonical §6.6).
var (
	ESAWNature = set("000 010 011 012 019 020 021 022 029 030 031 032 039 040 050 051 052 059 060 061 062 063 069 070 071 072 079 " +
		"080 081 082 089 090 091 092 099 100 101 102 103 109 110 111 112 119 120 999")
	ESAWBodyPart = set("00 10 11 12 13 14 15 18 19 20 21 29 30 31 39 40 41 42 43 48 49 50 51 52 53 54 55 58 59 60 61 62 63 64 65 68 69 " +
		"70 71 78 99")
)

func set(s string) map[string]bool {
	m := map[string]bool{}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if i > start {
				m[s[start:i]] = true
			}
			start = i + 1
		}
	}
	return m
}
