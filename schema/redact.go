package schema

import (
	"errors"
	"strings"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/santhosh-tekuri/jsonschema/v6"
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

// maxFailures bounds what an Error lists.
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
	e := &Error{}
	leaves(ve, e)
	return e
}

// leaves collects the innermost failures, which say what refused what.
func leaves(ve *jsonschema.ValidationError, e *Error) {
	if len(e.Failures) == maxFailures {
		return
	}
	if len(ve.Causes) == 0 {
		f := Failure{Pointer: pointer(ve.InstanceLocation)}
		if ve.ErrorKind != nil {
			if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
				f.Keyword = kp[len(kp)-1]
			}
		}
		e.Failures = append(e.Failures, f)
		return
	}
	for _, c := range ve.Causes {
		leaves(c, e)
	}
}

// pointer writes a location as a JSON pointer (RFC 6901).
func pointer(loc []string) string {
	p := ""
	for _, tok := range loc {
		p = jsondoc.Pointer(p, tok)
	}
	return p
}
