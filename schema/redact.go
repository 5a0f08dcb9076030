package schema

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// Error is a failed JSON Schema check told without the document's values:
// for each failure, where in the document (a JSON pointer) and which
// keyword refused it. The library's own message quotes the value
// ("'G5123456T' does not match pattern …"), and these errors end up in
// logs, which must never hold an identity number, a name or medical text.
type Error struct {
	Failures []Failure
}

// Failure is one refusal: the keyword (its path in the schema, such as
// "properties/idNo/pattern" shortened to "pattern") at a place in the document.
type Failure struct {
	Pointer string // JSON pointer into the document
	Keyword string // the refusing keyword, e.g. "pattern", "required", "additionalProperties"
}

// maxFailures bounds what an Error lists: the first by place.
const maxFailures = 10

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("fails the JSON Schema at ")
	for i, f := range e.Failures {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Pointer)
		if f.Pointer == "" {
			b.WriteString("(root)")
		}
		b.WriteString(" (" + f.Keyword + ")")
	}
	return b.String()
}

// redact turns the library's validation error into an Error; other errors
// (which do not quote documents) pass unchanged.
func redact(err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	// The library finds a schema's properties in map order, so its causes
	// come in a different order from one run to the next, and a bound
	// taken in that order kept different ones: sorted first, the same
	// document always gives the same error in the logs.
	fs := leaves(ve, nil)
	slices.SortFunc(fs, compareFailures)
	fs = slices.Compact(fs)
	return &Error{Failures: fs[:min(len(fs), maxFailures)]}
}

// leaves collects the innermost failures, which say what refused what.
func leaves(ve *jsonschema.ValidationError, fs []Failure) []Failure {
	if len(ve.Causes) == 0 {
		f := Failure{Pointer: pointer(ve.InstanceLocation)}
		if ve.ErrorKind != nil {
			if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
				f.Keyword = kp[len(kp)-1]
			}
		}
		return append(fs, f)
	}
	for _, c := range ve.Causes {
		fs = leaves(c, fs)
	}
	return fs
}

// compareFailures orders failures by place, token by token, an array's
// indexes as numbers (/injuries/2 before /injuries/10) and before names,
// then by keyword. It is a total order whatever the tokens, so the sort
// gives one result for every order the library gives the failures in.
func compareFailures(a, b Failure) int {
	at, bt := strings.Split(a.Pointer, "/"), strings.Split(b.Pointer, "/")
	for i := range min(len(at), len(bt)) {
		if c := compareTokens(at[i], bt[i]); c != 0 {
			return c
		}
	}
	return cmp.Or(cmp.Compare(len(at), len(bt)), strings.Compare(a.Keyword, b.Keyword))
}

func compareTokens(a, b string) int {
	if a == b {
		return 0
	}
	ai, aerr := strconv.ParseUint(a, 10, 64)
	bi, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		return cmp.Or(cmp.Compare(ai, bi), strings.Compare(a, b)) // "1" and "01"
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// pointer writes a location as a JSON pointer (RFC 6901).
func pointer(loc []string) string {
	p := ""
	for _, tok := range loc {
		p = jsondoc.Pointer(p, tok)
	}
	return p
}
