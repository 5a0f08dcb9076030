package ecmaregexp

import (
	"math/bits"
	"regexp/syntax"
)

// A seqs answers a pattern of the shape the formats' patterns nearly all
// have, for ASCII text: anchored at the start, a run of character classes
// each repeated between min and max times, perhaps with alternatives. Go's
// regexp sets up a machine for every match; on each accepted notice about
// fifty matches of such patterns cost 4 % of the gateway's CPU. A seqs walks
// the text once per class, keeping the set of positions the classes so far
// can end at.
//
// It answers only when the text is ASCII and at most maxSeqText bytes;
// MatchString asks Go's regexp otherwise, and for every pattern seqs cannot
// take (FuzzSeqs compares the two).
type seqs struct {
	alts [][]class // the pattern's alternatives, each a run of classes
	end  bool      // anchored at the end too: the whole text must match
}

// class is a set of ASCII characters, repeated min to max times (max < 0:
// without bound). A character outside ASCII is in no class: seqs sees only
// ASCII text.
type class struct {
	set      [2]uint64
	min, max int
}

const (
	maxSeqText = 63 // positions 0..63 fit one uint64
	maxAlts    = 16
	maxClasses = 64
)

// compileSeqs compiles expr (Go syntax, from translate) into a seqs, or
// returns nil if it has another shape.
func compileSeqs(expr string) *seqs {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	items := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		items = re.Sub
	}
	if len(items) == 0 || items[0].Op != syntax.OpBeginText {
		return nil // unanchored: a match may start anywhere
	}
	items = items[1:]
	s := &seqs{alts: [][]class{nil}}
	if n := len(items); n > 0 && items[n-1].Op == syntax.OpEndText {
		s.end, items = true, items[:n-1]
	}
	for _, it := range items {
		if s.alts = expand(s.alts, it); s.alts == nil {
			return nil
		}
	}
	return s
}

// expand appends re to each of the alternatives alts, multiplying them by
// re's own alternatives, or returns nil if re has a construct seqs does not
// know or the alternatives grow past their bounds.
func expand(alts [][]class, re *syntax.Regexp) [][]class {
	if re.Flags&syntax.FoldCase != 0 {
		return nil
	}
	switch re.Op {
	case syntax.OpEmptyMatch:
		return alts
	case syntax.OpLiteral, syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		for _, r := range runes(re) {
			if alts = appendClass(alts, class{set: setOf(r), min: 1, max: 1}); alts == nil {
				return nil
			}
		}
		return alts
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		min, max := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			min, max = 0, -1
		case syntax.OpPlus:
			min, max = 1, -1
		case syntax.OpQuest:
			min, max = 0, 1
		}
		sub := re.Sub[0]
		if rs := runes(sub); len(rs) == 1 && sub.Flags&syntax.FoldCase == 0 {
			return appendClass(alts, class{set: setOf(rs[0]), min: min, max: max})
		}
		if min == 0 && max == 1 { // (...)?: without it, or with it
			return union(alts, expand(clone(alts), sub))
		}
		return nil
	case syntax.OpCapture:
		return expand(alts, re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if alts = expand(alts, sub); alts == nil {
				return nil
			}
		}
		return alts
	case syntax.OpAlternate:
		var out [][]class
		for _, sub := range re.Sub {
			if out = union(out, expand(clone(alts), sub)); out == nil {
				return nil
			}
		}
		return out
	}
	return nil
}

// runes is re's characters, one class each, if re is a literal or a single
// character class; else nil.
func runes(re *syntax.Regexp) []*syntax.Regexp {
	switch re.Op {
	case syntax.OpLiteral:
		out := make([]*syntax.Regexp, len(re.Rune))
		for i, r := range re.Rune {
			out[i] = &syntax.Regexp{Op: syntax.OpCharClass, Rune: []rune{r, r}}
		}
		return out
	case syntax.OpCharClass:
		return []*syntax.Regexp{re}
	case syntax.OpAnyCharNotNL:
		return []*syntax.Regexp{{Op: syntax.OpCharClass, Rune: []rune{0, '\n' - 1, '\n' + 1, 0x10ffff}}}
	case syntax.OpAnyChar:
		return []*syntax.Regexp{{Op: syntax.OpCharClass, Rune: []rune{0, 0x10ffff}}}
	}
	return nil
}

// setOf is the ASCII part of a character class.
func setOf(re *syntax.Regexp) [2]uint64 {
	var set [2]uint64
	for i := 0; i+1 < len(re.Rune); i += 2 {
		for r := re.Rune[i]; r <= re.Rune[i+1] && r < 128; r++ {
			set[r/64] |= 1 << (r % 64)
		}
	}
	return set
}

func appendClass(alts [][]class, c class) [][]class {
	for i, a := range alts {
		if len(a) == maxClasses {
			return nil
		}
		alts[i] = append(a, c)
	}
	return alts
}

func clone(alts [][]class) [][]class {
	out := make([][]class, len(alts))
	for i, a := range alts {
		out[i] = append([]class(nil), a...)
	}
	return out
}

func union(a, b [][]class) [][]class {
	if b == nil || len(a)+len(b) > maxAlts {
		return nil
	}
	return append(a, b...)
}

// match reports whether text matches, and whether seqs could answer.
func (s *seqs) match(text string) (matched, answered bool) {
	if len(text) > maxSeqText {
		return false, false
	}
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			return false, false
		}
	}
	for _, alt := range s.alts {
		at := uint64(1) // the positions the classes so far can end at
		for _, c := range alt {
			if at = c.step(text, at); at == 0 {
				break
			}
		}
		if at != 0 && (!s.end || at&(1<<len(text)) != 0) {
			return true, true
		}
	}
	return false, true
}

// step is the positions c can end at, from any of the positions at.
func (c class) step(text string, at uint64) uint64 {
	var next uint64
	for ; at != 0; at &= at - 1 {
		p := bits.TrailingZeros64(at)
		for k := 0; ; k++ {
			if k >= c.min {
				next |= 1 << (p + k)
			}
			if k == c.max || p+k == len(text) || !c.has(text[p+k]) {
				break
			}
		}
	}
	return next
}

func (c class) has(b byte) bool { return c.set[b/64]&(1<<(b%64)) != 0 }
