package sgemployer

import (
	"fmt"
	"math/big"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/mapping"
)

// checker collects problems, at most one per pointer (sg-employer-notice/v1
// §2 item 10: a member yields at most one problem, its first failing check).
type checker struct {
	problems []adapters.Problem
	failed   map[string]bool
}

func (c *checker) add(ptr, code, msg string) {
	if c.failed == nil {
		c.failed = map[string]bool{}
	}
	if c.failed[ptr] {
		return
	}
	c.failed[ptr] = true
	c.problems = append(c.problems, adapters.Problem{Pointer: ptr, Code: code, Message: msg})
}

// object checks that v is an object and reports members it does not define.
// It returns nil (after reporting) when v is not an object.
func (c *checker) object(v *jsondoc.Value, ptr string, known ...string) *jsondoc.Value {
	if v.Kind != jsondoc.Object {
		c.add(ptr, adapters.CodeType, "must be an object, not "+v.Kind.String())
		return nil
	}
	return v
}

// unknown reports the members of obj that are not in known, after the known
// members have been checked.
func (c *checker) unknown(obj *jsondoc.Value, ptr string, known ...string) {
	if obj == nil {
		return
	}
	for _, m := range obj.Members {
		ok := false
		for _, k := range known {
			if m.Name == k {
				ok = true
				break
			}
		}
		if !ok {
			c.add(jsondoc.Pointer(ptr, m.Name), adapters.CodeUnknownMember, "member not defined by sg-employer-notice/v1")
		}
	}
}

// member fetches a member; it reports MISSING for an absent required member
// and TYPE for null. ok is false when there is nothing further to check.
func (c *checker) member(obj *jsondoc.Value, ptr, name string, required bool) (v *jsondoc.Value, p string, ok bool) {
	p = jsondoc.Pointer(ptr, name)
	if obj == nil {
		return nil, p, false
	}
	v, present := obj.Get(name)
	if !present {
		if required {
			c.add(p, adapters.CodeMissing, "required member is absent")
		}
		return nil, p, false
	}
	if v.Kind == jsondoc.Null {
		c.add(p, adapters.CodeType, "null is not allowed")
		return nil, p, false
	}
	return v, p, true
}

// str fetches a string member.
func (c *checker) str(obj *jsondoc.Value, ptr, name string, required bool) (string, string, bool) {
	v, p, ok := c.member(obj, ptr, name, required)
	if !ok {
		return "", p, false
	}
	if v.Kind != jsondoc.String {
		c.add(p, adapters.CodeType, "must be a string, not "+v.Kind.String())
		return "", p, false
	}
	return v.Str, p, true
}

// match checks s against re, reporting code when it does not match.
func (c *checker) match(s, p string, re *regexp.Regexp, code, what string) bool {
	if !re.MatchString(s) {
		c.add(p, code, "must be "+what)
		return false
	}
	return true
}

// text checks a free text: min..max code points and not blank (RANGE).
func (c *checker) text(s, p string, min, max int) bool {
	n := utf8.RuneCountInString(s)
	if n < min || n > max {
		c.add(p, adapters.CodeRange, fmt.Sprintf("must be %d to %d characters, is %d", min, max, n))
		return false
	}
	if isBlank(s) {
		c.add(p, adapters.CodeRange, "must not be blank")
		return false
	}
	return true
}

// oneOf checks a closed list (CODE).
func (c *checker) oneOf(s, p string, list map[string]bool) bool {
	if !list[s] {
		c.add(p, adapters.CodeCode, "is not a value of the closed list")
		return false
	}
	return true
}

// country checks an ISO 3166-1 alpha-2 code: pattern (FORMAT) then assigned (CODE).
func (c *checker) country(s, p string) bool {
	if !c.match(s, p, reCountry, adapters.CodeFormat, "two upper-case letters") {
		return false
	}
	if !mapping.CountryAssigned(s) {
		c.add(p, adapters.CodeCode, "is not an assigned ISO 3166-1 alpha-2 code")
		return false
	}
	return true
}

// integer fetches an integer member written without fraction or exponent,
// within min..max.
func (c *checker) integer(obj *jsondoc.Value, ptr, name string, min, max int64) (int, string, bool) {
	v, p, ok := c.member(obj, ptr, name, true)
	if !ok {
		return 0, p, false
	}
	if v.Kind != jsondoc.Number || !reInteger.MatchString(v.Str) {
		c.add(p, adapters.CodeType, "must be an integer written without fraction or exponent")
		return 0, p, false
	}
	n, _ := new(big.Int).SetString(v.Str, 10)
	if n.Cmp(big.NewInt(min)) < 0 || n.Cmp(big.NewInt(max)) > 0 {
		c.add(p, adapters.CodeRange, fmt.Sprintf("must be between %d and %d", min, max))
		return 0, p, false
	}
	return int(n.Int64()), p, true
}

// boolean fetches a boolean member.
func (c *checker) boolean(obj *jsondoc.Value, ptr, name string) (bool, string, bool) {
	v, p, ok := c.member(obj, ptr, name, true)
	if !ok {
		return false, p, false
	}
	if v.Kind != jsondoc.Bool {
		c.add(p, adapters.CodeType, "must be a boolean, not "+v.Kind.String())
		return false, p, false
	}
	return v.Bool, p, true
}

func isBlank(s string) bool {
	for _, r := range s {
		if !unicode.Is(unicode.White_Space, r) {
			return false
		}
	}
	return true
}

var (
	reInteger  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	reCountry  = regexp.MustCompile(`^[A-Z]{2}$`)
	reNoticeID = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	reLocalDT  = regexp.MustCompile(`^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$`)
	reLocalD   = regexp.MustCompile(`^[0-9]{2}/[0-9]{2}/[0-9]{4}$`)
	reUEN      = regexp.MustCompile(`^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`)
	rePhone    = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)
	reEmail    = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	reNRIC     = regexp.MustCompile(`^[ST][0-9]{7}[A-Z]$`)
	reFIN      = regexp.MustCompile(`^[FGM][0-9]{7}[A-Z]$`)
	reNRICAny  = regexp.MustCompile(`^[STFGM][0-9]{7}[A-Z]$`)
	reMyKad    = regexp.MustCompile(`^[0-9]{12}$`)
	rePassport = regexp.MustCompile(`^[A-Z0-9]{5,20}$`)
	reSSOC     = regexp.MustCompile(`^[0-9]{5}$`)
	reLang     = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)
	rePostSG   = regexp.MustCompile(`^[0-9]{6}$`)
	rePostMY   = regexp.MustCompile(`^[0-9]{5}$`)
	reAME      = regexp.MustCompile(`^(0|[1-9][0-9]{0,6})\.[0-9]{2}$`)
	reInsurer  = regexp.MustCompile(`^[A-Z0-9]{3,12}$`)
	rePolicy   = regexp.MustCompile(`^[A-Za-z0-9/-]{1,30}$`)
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

var (
	idTypes       = set("NRIC", "FIN")
	sexes         = set("M", "F")
	incidentTypes = set("WORK_ACCIDENT", "COMMUTING_ACCIDENT", "OCCUPATIONAL_DISEASE", "DANGEROUS_OCCURRENCE_WITH_INJURY")
	directions    = set("TO_WORK", "FROM_WORK")
	segments      = set("MALAYSIA", "CHECKPOINT", "SINGAPORE")
	modes         = set("MOTORCYCLE", "CAR", "BUS", "TRAIN", "BICYCLE", "WALKING", "OTHER")
	crossings     = set("WOODLANDS", "TUAS", "RTS_LINK")
	sides         = set("LEFT", "RIGHT", "BOTH")
	bodyParts     = func() map[string]bool {
		m := map[string]bool{}
		for k := range mapping.SGBodyPartESAW {
			m[k] = true
		}
		return m
	}()
	natures = func() map[string]bool {
		m := map[string]bool{}
		for k := range mapping.SGNatureESAW {
			m[k] = true
		}
		return m
	}()
)
