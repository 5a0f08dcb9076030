// Package ecmaregexp compiles the regular expressions of JSON Schema and of
// the partner formats' specifications, which are ECMA-262's (JSON Schema
// 2020-12 §6.4), into Go's regexp with the same meaning.
//
// Go's syntax reads most of them alike, but two constructs match other
// characters: ECMA-262's \s is every Unicode space separator, the line ends
// and U+FEFF, Go's the ASCII ones alone; ECMA-262's . refuses U+000D, U+2028
// and U+2029 besides U+000A, Go's only U+000A. A partner validating with ajv
// (or any ECMA-262 engine) refused an e-mail address holding a no-break space
// that the gateway accepted. Compile rewrites those two, and \uXXXX, which Go
// does not know; a construct whose meaning it cannot keep (\S inside a class,
// an empty class) is an error rather than a different match.
package ecmaregexp

import (
	"fmt"
	"regexp"
	"strings"
)

// space is ECMA-262's WhiteSpace and LineTerminator, the set \s matches,
// written for a Go character class.
const space = `\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}`

// A Regexp is a compiled pattern: Go's regexp, and for the common shape of
// pattern a faster matcher (seqs) that gives the same answers.
type Regexp struct {
	re   *regexp.Regexp
	seqs *seqs // nil: re answers every text
}

// Compile compiles an ECMA-262 pattern (with the u flag, as JSON Schema
// validators use it) into an equivalent Go regexp.
func Compile(pattern string) (*Regexp, error) {
	expr, err := translate(pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	return &Regexp{re: re, seqs: compileSeqs(expr)}, nil
}

// MatchString reports whether s holds a match of the pattern.
func (r *Regexp) MatchString(s string) bool {
	if r.seqs != nil {
		if matched, ok := r.seqs.match(s); ok {
			return matched
		}
	}
	return r.re.MatchString(s)
}

// String is the pattern in Go's syntax.
func (r *Regexp) String() string { return r.re.String() }

// MustCompile is Compile for patterns the program holds; it panics on error.
func MustCompile(pattern string) *Regexp {
	re, err := Compile(pattern)
	if err != nil {
		panic(err)
	}
	return re
}

// translate rewrites pattern's \s, \S, . and \uXXXX for Go's syntax and
// passes everything else through, for Go's parser to accept or refuse.
func translate(pattern string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			i++
			switch e := pattern[i]; {
			case e == 's' && inClass:
				b.WriteString(space)
			case e == 's':
				b.WriteString("[" + space + "]")
			case e == 'S' && inClass:
				return "", fmt.Errorf(`\S inside a character class is not supported`)
			case e == 'S':
				b.WriteString("[^" + space + "]")
			case e == 'u' && i+4 < len(pattern) && isHex(pattern[i+1:i+5]):
				b.WriteString(`\x{` + pattern[i+1:i+5] + `}`)
				i += 4
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			if strings.HasPrefix(pattern[i+1:], "^") {
				b.WriteByte('^')
				i++
			}
			if strings.HasPrefix(pattern[i+1:], "]") {
				return "", fmt.Errorf("an empty character class is not supported")
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		case c == '.' && !inClass:
			b.WriteString(`[^\n\r\x{2028}\x{2029}]`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return false
		}
	}
	return true
}
