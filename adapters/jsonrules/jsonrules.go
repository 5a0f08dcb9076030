// Package jsonrules checks a partner's JSON document member by member, as the
// JSON formats' specifications require (sg-employer-notice/v1 §2 items 9-10):
// every problem listed, at most one per member (its first failing check),
// located by JSON Pointer. Adapters describe their members with these
// helpers in specification order.
package jsonrules

import (
	"fmt"
	"math/big"
	"unicode"
	"unicode/utf8"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema/ecmaregexp"
)

// Checker collects problems, at most one per pointer (sg-employer-notice/v1
// §2 item 10: a member yields at most one problem, its first failing check).
type Checker struct {
	Problems []adapters.Problem
	failed   map[string]bool
	// Format names the format in messages (e.g. "sg-employer-notice/v1").
	Format string
	// Root is the pointer of what the Checker reads: "" for a document,
	// "/claims/3" for one claim of a batch. A list cut at MaxProblems ends
	// with a problem there.
	Root string
}

// MaxProblems bounds the problems one Checker lists. The specifications
// ask for every problem, but a document can be made of little else: an
// unknown member costs its sender about 10 bytes and its problem about
// 100, so a 4 MiB insurer batch of them made a 94 MB response. Past the
// bound, one RANGE problem at Root says the list stops there; the checks
// still run, so cross-member rules see every member's verdict.
const MaxProblems = 100

// Add records a problem unless its pointer already has one.
func (c *Checker) Add(ptr, code, msg string) {
	if c.failed == nil {
		c.failed = map[string]bool{}
	}
	if c.failed[ptr] {
		return
	}
	c.failed[ptr] = true
	switch {
	case len(c.Problems) < MaxProblems:
		c.Problems = append(c.Problems, adapters.Problem{Pointer: ptr, Code: code, Message: msg})
	case len(c.Problems) == MaxProblems:
		c.Problems = append(c.Problems, adapters.Problem{Pointer: c.Root, Code: adapters.CodeRange,
			Message: fmt.Sprintf("more than %d problems; the first %d are listed", MaxProblems, MaxProblems)})
	}
}

// Object checks that v is an object (TYPE otherwise) and returns it, or nil
// when it is not; Unknown reports its undefined members once its known
// ones are checked.
func (c *Checker) Object(v *jsondoc.Value, ptr string) *jsondoc.Value {
	if v.Kind != jsondoc.Object {
		c.Add(ptr, adapters.CodeType, "must be an object, not "+v.Kind.String())
		return nil
	}
	return v
}

// Unknown reports the members of obj that are not in known, after the known
// members have been checked.
func (c *Checker) Unknown(obj *jsondoc.Value, ptr string, known ...string) {
	if obj == nil {
		return
	}
	for _, m := range obj.Members {
		if len(c.Problems) > MaxProblems {
			return // the list is cut, and no rule reads an unknown member
		}
		ok := false
		for _, k := range known {
			if m.Name == k {
				ok = true
				break
			}
		}
		if !ok {
			c.Add(jsondoc.Pointer(ptr, m.Name), adapters.CodeUnknownMember, "member not defined by "+c.Format)
		}
	}
}

// Member fetches a member; it reports MISSING for an absent required member
// and TYPE for null. ok is false when there is nothing further to check.
func (c *Checker) Member(obj *jsondoc.Value, ptr, name string, required bool) (v *jsondoc.Value, p string, ok bool) {
	p = jsondoc.Pointer(ptr, name)
	if obj == nil {
		return nil, p, false
	}
	v, present := obj.Get(name)
	if !present {
		if required {
			c.Add(p, adapters.CodeMissing, "required member is absent")
		}
		return nil, p, false
	}
	if v.Kind == jsondoc.Null {
		c.Add(p, adapters.CodeType, "null is not allowed")
		return nil, p, false
	}
	return v, p, true
}

// Str fetches a string member.
func (c *Checker) Str(obj *jsondoc.Value, ptr, name string, required bool) (string, string, bool) {
	v, p, ok := c.Member(obj, ptr, name, required)
	if !ok {
		return "", p, false
	}
	if v.Kind != jsondoc.String {
		c.Add(p, adapters.CodeType, "must be a string, not "+v.Kind.String())
		return "", p, false
	}
	return v.Str, p, true
}

// Match checks s against re, reporting code when it does not match.
func (c *Checker) Match(s, p string, re interface{ MatchString(string) bool }, code, what string) bool {
	if !re.MatchString(s) {
		c.Add(p, code, "must be "+what)
		return false
	}
	return true
}

// Text checks a free text: min..max code points and not blank (RANGE).
func (c *Checker) Text(s, p string, min, max int) bool {
	n := utf8.RuneCountInString(s)
	if n < min || n > max {
		c.Add(p, adapters.CodeRange, fmt.Sprintf("must be %d to %d characters, is %d", min, max, n))
		return false
	}
	if IsBlank(s) {
		c.Add(p, adapters.CodeRange, "must not be blank")
		return false
	}
	return true
}

// OneOf checks a closed list (CODE).
func (c *Checker) OneOf(s, p string, list map[string]bool) bool {
	if !list[s] {
		c.Add(p, adapters.CodeCode, "is not a value of the closed list")
		return false
	}
	return true
}

// Country checks an ISO 3166-1 alpha-2 code: pattern (FORMAT) then assigned (CODE).
func (c *Checker) Country(s, p string) bool {
	if !c.Match(s, p, reCountry, adapters.CodeFormat, "two upper-case letters") {
		return false
	}
	if !mapping.CountryAssigned(s) {
		c.Add(p, adapters.CodeCode, "is not an assigned ISO 3166-1 alpha-2 code")
		return false
	}
	return true
}

// Integer fetches an integer member written without fraction or exponent,
// within min..max.
func (c *Checker) Integer(obj *jsondoc.Value, ptr, name string, min, max int64) (int, string, bool) {
	v, p, ok := c.Member(obj, ptr, name, true)
	if !ok {
		return 0, p, false
	}
	if v.Kind != jsondoc.Number || !reInteger.MatchString(v.Str) {
		c.Add(p, adapters.CodeType, "must be an integer written without fraction or exponent")
		return 0, p, false
	}
	n, _ := new(big.Int).SetString(v.Str, 10)
	if n.Cmp(big.NewInt(min)) < 0 || n.Cmp(big.NewInt(max)) > 0 {
		c.Add(p, adapters.CodeRange, fmt.Sprintf("must be between %d and %d", min, max))
		return 0, p, false
	}
	return int(n.Int64()), p, true
}

// Boolean fetches a boolean member.
func (c *Checker) Boolean(obj *jsondoc.Value, ptr, name string) (bool, string, bool) {
	v, p, ok := c.Member(obj, ptr, name, true)
	if !ok {
		return false, p, false
	}
	if v.Kind != jsondoc.Bool {
		c.Add(p, adapters.CodeType, "must be a boolean, not "+v.Kind.String())
		return false, p, false
	}
	return v.Bool, p, true
}

// Failed reports whether a pointer already carries a problem.
func (c *Checker) Failed(ptr string) bool { return c.failed[ptr] }

// IsBlank reports whether s holds only Unicode White_Space.
func IsBlank(s string) bool {
	for _, r := range s {
		if !unicode.Is(unicode.White_Space, r) {
			return false
		}
	}
	return true
}

var (
	reInteger = ecmaregexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	reCountry = ecmaregexp.MustCompile(`^[A-Z]{2}$`)
)

// Set builds a closed list.
func Set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}
