package schema

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// A quick is a schema the JSON Schema library compiled, recompiled to answer
// one question fast: is this document valid? It walks the jsondoc tree
// directly, with the library's own patterns and formats, and allocates next
// to nothing for a valid document. The library's validator builds a context,
// a map of unevaluated properties and a generic copy of the tree for every
// value; on every accepted notice it cost more than the ES256 verification.
//
// A quick only says yes or no. When it says no, the library validates again
// and explains why, so a quick that refused too much would cost time, never
// correctness; one that accepted too much would let a bad document through,
// which TestQuickAgrees and FuzzQuick hunt for by comparing the two on every
// mutation of the example documents. A schema using a keyword quick does not
// know, or referring to itself, is not recompiled: the library validates it.
type quick struct {
	s                *jsonschema.Schema
	typed            bool            // the schema has "type"
	kinds            uint8           // bit k set: "type" allows jsondoc.Kind k
	integer          bool            // "type" allows a number only if it is an integer
	strs             map[string]bool // the enum, when it holds only strings
	ref, not         *quick
	ifs, then, els   *quick
	allOf, anyOf     []*quick
	oneOf            []*quick
	props            map[string]*quick
	additional       *quick // additionalProperties as a schema
	denyAdditional   bool   // additionalProperties: false
	items            *quick
	minimum, maximum *big.Rat
	xmin, xmax       *big.Rat // exclusiveMinimum, exclusiveMaximum
}

// compileQuick recompiles s, or says why it cannot.
func compileQuick(s *jsonschema.Schema) (*quick, error) {
	return (&quickCompiler{done: map[*jsonschema.Schema]*quick{}, open: map[*jsonschema.Schema]bool{}}).compile(s)
}

type quickCompiler struct {
	done map[*jsonschema.Schema]*quick
	open map[*jsonschema.Schema]bool // being compiled: a reference back is a cycle
}

func (c *quickCompiler) compile(s *jsonschema.Schema) (*quick, error) {
	if s == nil {
		return nil, nil
	}
	if q, ok := c.done[s]; ok {
		return q, nil
	}
	if c.open[s] {
		return nil, fmt.Errorf("%s refers to itself", s.Location)
	}
	if k := unsupported(s); k != "" {
		return nil, fmt.Errorf("%s uses %s", s.Location, k)
	}
	for _, v := range enumValues(s) {
		switch v.(type) {
		case nil, bool, string, json.Number:
		default:
			return nil, fmt.Errorf("%s compares with a %T", s.Location, v)
		}
	}
	c.open[s] = true
	defer delete(c.open, s)
	q := &quick{s: s, minimum: s.Minimum, maximum: s.Maximum, xmin: s.ExclusiveMinimum, xmax: s.ExclusiveMaximum}
	if s.Types != nil && !s.Types.IsEmpty() {
		types := s.Types.ToStrings()
		for _, t := range types {
			k, ok := kindOf[t]
			if !ok {
				return nil, fmt.Errorf("%s: type %q", s.Location, t)
			}
			q.kinds |= 1 << k
		}
		q.typed = true
		q.integer = slices.Contains(types, "integer") && !slices.Contains(types, "number")
	}
	if s.Enum != nil && !slices.ContainsFunc(s.Enum.Values, func(v any) bool { _, ok := v.(string); return !ok }) {
		q.strs = map[string]bool{}
		for _, v := range s.Enum.Values {
			q.strs[v.(string)] = true
		}
	}
	var err error
	one := func(dst **quick, sub *jsonschema.Schema) {
		if err == nil {
			*dst, err = c.compile(sub)
		}
	}
	many := func(subs []*jsonschema.Schema) []*quick {
		out := make([]*quick, len(subs))
		for i, sub := range subs {
			one(&out[i], sub)
		}
		return out
	}
	one(&q.ref, s.Ref)
	one(&q.not, s.Not)
	one(&q.ifs, s.If)
	one(&q.then, s.Then)
	one(&q.els, s.Else)
	one(&q.items, s.Items2020)
	q.allOf, q.anyOf, q.oneOf = many(s.AllOf), many(s.AnyOf), many(s.OneOf)
	if len(s.Properties) > 0 {
		q.props = make(map[string]*quick, len(s.Properties))
		for name, sub := range s.Properties {
			var p *quick
			one(&p, sub)
			q.props[name] = p
		}
	}
	switch a := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		q.denyAdditional = !a
	case *jsonschema.Schema:
		one(&q.additional, a)
	default:
		return nil, fmt.Errorf("%s: additionalProperties %T", s.Location, a)
	}
	if err != nil {
		return nil, err
	}
	c.done[s] = q
	return q, nil
}

// unsupported names a keyword of s that quick does not implement.
func unsupported(s *jsonschema.Schema) string {
	switch {
	case s.RecursiveRef != nil || s.DynamicRef != nil:
		return "a dynamic reference"
	case s.PropertyNames != nil || len(s.PatternProperties) > 0:
		return "propertyNames or patternProperties"
	case len(s.Dependencies) > 0 || len(s.DependentRequired) > 0 || len(s.DependentSchemas) > 0:
		return "dependencies"
	case s.UnevaluatedProperties != nil || s.UnevaluatedItems != nil:
		return "unevaluated keywords"
	case s.Items != nil || s.AdditionalItems != nil || len(s.PrefixItems) > 0:
		return "tuple items"
	case s.Contains != nil || s.UniqueItems:
		return "contains or uniqueItems"
	case s.ContentEncoding != nil || s.ContentMediaType != nil || s.ContentSchema != nil:
		return "content keywords"
	case s.MultipleOf != nil:
		return "multipleOf"
	case len(s.Extensions) > 0:
		return "a vocabulary extension"
	}
	return ""
}

func enumValues(s *jsonschema.Schema) []any {
	var vs []any
	if s.Enum != nil {
		vs = append(vs, s.Enum.Values...)
	}
	if s.Const != nil {
		vs = append(vs, *s.Const)
	}
	return vs
}

// valid reports whether v is valid against the schema.
func (q *quick) valid(v *jsondoc.Value) bool {
	if q == nil {
		return true
	}
	s := q.s
	if s.Bool != nil {
		return *s.Bool
	}
	if q.typed && (q.kinds&(1<<v.Kind) == 0 || (q.integer && v.Kind == jsondoc.Number && !isInteger(v))) {
		return false
	}
	if s.Const != nil && !equal(v, *s.Const) {
		return false
	}
	if q.strs != nil {
		if v.Kind != jsondoc.String || !q.strs[v.Str] {
			return false
		}
	} else if s.Enum != nil && !slices.ContainsFunc(s.Enum.Values, func(w any) bool { return equal(v, w) }) {
		return false
	}
	if s.Format != nil && s.Format.Validate(v.Any()) != nil {
		return false
	}
	if !q.ref.valid(v) || (q.not != nil && q.not.valid(v)) {
		return false
	}
	for _, sub := range q.allOf {
		if !sub.valid(v) {
			return false
		}
	}
	if len(q.anyOf) > 0 && !slices.ContainsFunc(q.anyOf, func(sub *quick) bool { return sub.valid(v) }) {
		return false
	}
	if len(q.oneOf) > 0 {
		n := 0
		for _, sub := range q.oneOf {
			if sub.valid(v) {
				n++
			}
		}
		if n != 1 {
			return false
		}
	}
	if q.ifs != nil {
		if q.ifs.valid(v) {
			if !q.then.valid(v) {
				return false
			}
		} else if !q.els.valid(v) {
			return false
		}
	}
	switch v.Kind {
	case jsondoc.Object:
		return q.object(v)
	case jsondoc.Array:
		return q.array(v)
	case jsondoc.String:
		return q.string(v.Str)
	case jsondoc.Number:
		return q.number(v.Str)
	}
	return true
}

func (q *quick) object(v *jsondoc.Value) bool {
	s := q.s
	if (s.MinProperties != nil && len(v.Members) < *s.MinProperties) || (s.MaxProperties != nil && len(v.Members) > *s.MaxProperties) {
		return false
	}
	for _, name := range s.Required {
		if _, ok := v.Get(name); !ok {
			return false
		}
	}
	for _, m := range v.Members {
		if p, ok := q.props[m.Name]; ok {
			if !p.valid(m.Value) {
				return false
			}
			continue
		}
		if q.denyAdditional || (q.additional != nil && !q.additional.valid(m.Value)) {
			return false
		}
	}
	return true
}

func (q *quick) array(v *jsondoc.Value) bool {
	s := q.s
	if (s.MinItems != nil && len(v.Items) < *s.MinItems) || (s.MaxItems != nil && len(v.Items) > *s.MaxItems) {
		return false
	}
	if q.items != nil {
		for _, it := range v.Items {
			if !q.items.valid(it) {
				return false
			}
		}
	}
	return true
}

func (q *quick) string(str string) bool {
	s := q.s
	if s.MinLength != nil || s.MaxLength != nil {
		n := utf8.RuneCountInString(str)
		if (s.MinLength != nil && n < *s.MinLength) || (s.MaxLength != nil && n > *s.MaxLength) {
			return false
		}
	}
	return s.Pattern == nil || s.Pattern.MatchString(str)
}

func (q *quick) number(lit string) bool {
	return within(lit, q.minimum, 0, 1) && within(lit, q.maximum, -1, 0) &&
		within(lit, q.xmin, 1, 1) && within(lit, q.xmax, -1, -1)
}

// within reports whether a number literal compares with bound as lo..hi
// (-1 less, 0 equal, 1 greater); a nil bound holds.
func within(lit string, bound *big.Rat, lo, hi int) bool {
	if bound == nil {
		return true
	}
	c, ok := compare(lit, bound)
	return ok && lo <= c && c <= hi
}

// compare compares a number literal with a bound: a plain integer with an
// integer bound, the usual case, without allocating.
func compare(lit string, bound *big.Rat) (int, bool) {
	if bound.IsInt() && bound.Num().IsInt64() && !strings.ContainsAny(lit, ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return cmp.Compare(n, bound.Num().Int64()), true
		}
	}
	n, ok := new(big.Rat).SetString(lit)
	if !ok {
		return 0, false
	}
	return n.Cmp(bound), true
}

// kindOf maps JSON Schema's types to jsondoc's kinds; "integer" is a number
// that isInteger must confirm.
var kindOf = map[string]jsondoc.Kind{"null": jsondoc.Null, "boolean": jsondoc.Bool, "number": jsondoc.Number,
	"integer": jsondoc.Number, "string": jsondoc.String, "array": jsondoc.Array, "object": jsondoc.Object}

// isInteger reports whether a number is without a fraction ("1.0" and
// "1e2" are integers), as the library decides.
func isInteger(v *jsondoc.Value) bool {
	if !strings.ContainsAny(v.Str, ".eE") {
		return true // jsondoc read it: digits with an optional minus
	}
	n, ok := new(big.Rat).SetString(v.Str)
	return ok && n.IsInt()
}

// equal compares v with a scalar of the schema (compileQuick admits no
// other); numbers compare by value, as the library compares them.
func equal(v *jsondoc.Value, w any) bool {
	switch w := w.(type) {
	case nil:
		return v.Kind == jsondoc.Null
	case bool:
		return v.Kind == jsondoc.Bool && v.Bool == w
	case string:
		return v.Kind == jsondoc.String && v.Str == w
	case json.Number:
		if v.Kind != jsondoc.Number {
			return false
		}
		a, ok1 := new(big.Rat).SetString(v.Str)
		b, ok2 := new(big.Rat).SetString(string(w))
		return ok1 && ok2 && a.Cmp(b) == 0
	}
	return false
}
