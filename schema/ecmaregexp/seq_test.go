package ecmaregexp

import (
	"math/bits"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// patterns are the formats' patterns (schemas and adapters) and some
// written to reach seqs' corners.
var patterns = []string{
	`^[A-Z]{2}$`, `^[A-Z]{3}$`, `^[0-9]{2}$`, `^[0-9]{3}$`, `^[0-9]{4}$`, `^[0-9]{5}$`, `^[0-9]{6}$`, `^[0-9]{8}$`,
	`^[0-9]{10}$`, `^[0-9]{12}$`, `^[0-9]{13}$`,
	`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`,
	`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`,
	`^[0-9]{2}/[0-9]{2}/[0-9]{4}$`, `^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$`,
	`^\+[1-9][0-9]{7,14}$`, `^[^@\s]+@[^@\s]+\.[^@\s]+$`,
	`^[STFGM][0-9]{7}[A-Z]$`, `^[ST][0-9]{7}[A-Z]$`, `^[FGM][0-9]{7}[A-Z]$`,
	`^[A-Za-z0-9/-]{1,30}$`, `^[A-Za-z0-9._/-]+$`, `^[A-Za-z0-9._-]+$`, `^[A-Za-z0-9/-]+$`, `^[A-Za-z0-9./-]{1,40}$`,
	`^[A-Z0-9]{5,20}$`, `^[A-Z0-9]{3,12}$`,
	`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`,
	`^[0-9]+(\.[0-9]+)?$`, `^-?[0-9]+\.[0-9]{2}$`, `^-?[0-9]+(\.[0-9]+)?$`, `^-?(0|[1-9][0-9]*)$`,
	`^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`,
	`^([0-9]{5}|[0-9]{6})$`, `^(SG-UEN:.+|INSURER:.+|[A-Z]{2}:.+)$`, `^(0|[1-9][0-9]{0,6})\.[0-9]{2}$`,
	`^[A-Z][0-9]{2}(\.[0-9A-Z]{1,2})?$`, `^[0-9]{2}-[0-9]{6}$`, `^[VWXY][0-9]{2}`,
	// corners
	`^$`, `^`, `^a*$`, `^a*a$`, `^a{2,}b?a{0,3}$`, `^(a|ab)(c|bcd)(d*)$`, `^[^a]*a`, `^.*x.*$`, `^\u00e9?e$`,
	`^(?:a|)b$`, `^a?a?a?aaa$`, `^[\s!]{0,3}$`, `^\x00?$`, `^(aa|bb|cc|dd)(ff|gg|hh|ii)$`,
	// not taken: seqs leaves them to Go's regexp
	`^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$`, `[0-9]{2}`, `(?i)^ab$`, `^a$|^b$`, `^\bx$`, `^(aa|bb|cc|dd|ee)(ff|gg|hh|ii)(jj|kk)$`,
}

// notTaken are the patterns above that seqs must leave to Go's regexp.
var notTaken = map[string]bool{
	`^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$`:       true, // a repeated group
	`[0-9]{2}`:                               true, // unanchored
	`(?i)^ab$`:                               true, // case folded
	`^a$|^b$`:                                true, // anchors inside alternatives
	`^\bx$`:                                  true, // a word boundary
	`^(aa|bb|cc|dd|ee)(ff|gg|hh|ii)(jj|kk)$`: true, // 40 alternatives
}

func TestSeqsTake(t *testing.T) {
	for _, p := range patterns {
		r := MustCompile(p)
		if taken := r.seqs != nil; taken == notTaken[p] {
			t.Errorf("%s: taken by seqs %v, want %v", p, taken, !notTaken[p])
		}
	}
}

// TestSeqsAgree compares seqs with Go's regexp on texts made to match each
// pattern and on their mutations (a character changed, added or removed),
// and on texts too long or not ASCII, which seqs hands over.
func TestSeqsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var both, matched int
	for _, p := range patterns {
		r := MustCompile(p)
		if r.seqs == nil {
			continue
		}
		alphabet := "\x00\t\n\r -./:@T+Z" + "09afgz" + "AGSZ" + "\x7f"
		for range 3000 {
			s := r.seqs.example(rng)
			for range rng.IntN(3) {
				s = mutate(rng, s, alphabet)
			}
			if rng.IntN(50) == 0 {
				s += strings.Repeat("9", 64)
			}
			if rng.IntN(50) == 0 {
				s += "é"
			}
			got, want := r.MatchString(s), r.re.MatchString(s)
			if got != want {
				t.Fatalf("%s on %q: seqs %v, regexp %v", p, s, got, want)
			}
			both++
			if want {
				matched++
			}
		}
	}
	t.Logf("%d texts, %d matched", both, matched)
	if matched < both/4 || matched > both*3/4 {
		t.Fatalf("%d of %d texts matched: the texts do not probe both answers", matched, both)
	}
}

// example makes a text that one of s's alternatives would take (an empty
// class makes one that no alternative takes).
func (s *seqs) example(rng *rand.Rand) string {
	var b strings.Builder
	for _, c := range s.alts[rng.IntN(len(s.alts))] {
		n := c.min
		if c.max < 0 || c.max > c.min {
			top := c.max
			if top < 0 || top > c.min+4 {
				top = c.min + 4
			}
			n = c.min + rng.IntN(top-c.min+1)
		}
		for range n {
			b.WriteByte(c.pick(rng))
		}
	}
	return b.String()
}

func (c class) pick(rng *rand.Rand) byte {
	n := bits.OnesCount64(c.set[0]) + bits.OnesCount64(c.set[1])
	if n == 0 {
		return 0xff
	}
	k := rng.IntN(n)
	for b := 0; b < 128; b++ {
		if c.has(byte(b)) {
			if k == 0 {
				return byte(b)
			}
			k--
		}
	}
	panic("unreachable")
}

func mutate(rng *rand.Rand, s, alphabet string) string {
	c := string(alphabet[rng.IntN(len(alphabet))])
	i := rng.IntN(len(s) + 1)
	switch rng.IntN(3) {
	case 0:
		return s[:i] + c + s[i:]
	case 1:
		if i < len(s) {
			return s[:i] + c + s[i+1:]
		}
	}
	if i < len(s) {
		return s[:i] + s[i+1:]
	}
	return s
}

func FuzzSeqs(f *testing.F) {
	for _, p := range patterns {
		f.Add(p, "SG-UEN:201912345K")
		f.Add(p, "2026-01-02T03:04:05Z")
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		expr, err := translate(pattern)
		if err != nil {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		seqs := compileSeqs(expr)
		if seqs == nil {
			return
		}
		if got, ok := seqs.match(s); ok && got != re.MatchString(s) {
			t.Fatalf("%s (Go %s) on %q: seqs %v, regexp %v", pattern, expr, s, got, !got)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	for _, tc := range []struct{ name, pattern, s string }{
		{"instant", `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`, "2026-11-01T08:30:00Z"},
		{"country", `^[A-Z]{2}$`, "SG"},
		{"email", `^[^@\s]+@[^@\s]+\.[^@\s]+$`, "safety.officer@example.com.sg"},
		{"uen", `^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`, "201912345K"},
	} {
		r := MustCompile(tc.pattern)
		b.Run("seqs/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				if !r.MatchString(tc.s) {
					b.Fatal("no match")
				}
			}
		})
		b.Run("regexp/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				if !r.re.MatchString(tc.s) {
					b.Fatal("no match")
				}
			}
		})
	}
}
