// Package jsondoc reads a partner's JSON document (RFC 8259) strictly into an
// ordered tree: it refuses a byte-order mark, invalid UTF-8, duplicate member
// names, trailing data and nesting past a bound, and it keeps every number as
// written so that "5" and "5.0" stay distinguishable. Adapters validate the
// tree member by member and report problems with JSON Pointers (RFC 6901).
package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Kind is the JSON type of a value.
type Kind int

// JSON value kinds.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// Value is one node of a document.
type Value struct {
	Kind    Kind
	Bool    bool
	Str     string // String value, or the number as written
	Items   []*Value
	Members []Member
}

// Member is one name/value pair of an object, in document order.
type Member struct {
	Name  string
	Value *Value
}

// Get returns the member named name of an object.
func (v *Value) Get(name string) (*Value, bool) {
	if v == nil || v.Kind != Object {
		return nil, false
	}
	for _, m := range v.Members {
		if m.Name == name {
			return m.Value, true
		}
	}
	return nil, false
}

// DefaultMaxDepth bounds nesting; no partner format nests deeper than 6.
const DefaultMaxDepth = 32

// SyntaxError says why a payload is not one readable JSON document.
type SyntaxError struct{ Reason string }

func (e *SyntaxError) Error() string { return "jsondoc: " + e.Reason }

// Parse reads exactly one JSON value from payload.
func Parse(payload []byte, maxDepth int) (*Value, error) {
	if bytes.HasPrefix(payload, []byte{0xEF, 0xBB, 0xBF}) {
		return nil, &SyntaxError{"byte-order mark before the document"}
	}
	if !utf8.Valid(payload) {
		return nil, &SyntaxError{"not valid UTF-8"}
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	p := parser{dec: dec, maxDepth: maxDepth}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &SyntaxError{"data after the document"}
	}
	return v, nil
}

type parser struct {
	dec      *json.Decoder
	maxDepth int
}

func (p *parser) token() (json.Token, error) {
	t, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SyntaxError{"unexpected end of document"}
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, &SyntaxError{fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)}
		}
		return nil, &SyntaxError{err.Error()}
	}
	return t, nil
}

func (p *parser) value(depth int) (*Value, error) {
	t, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.fromToken(t, depth)
}

func (p *parser) fromToken(t json.Token, depth int) (*Value, error) {
	switch t := t.(type) {
	case nil:
		return &Value{Kind: Null}, nil
	case bool:
		return &Value{Kind: Bool, Bool: t}, nil
	case json.Number:
		return &Value{Kind: Number, Str: string(t)}, nil
	case string:
		return &Value{Kind: String, Str: t}, nil
	case json.Delim:
		if depth+1 > p.maxDepth {
			return nil, &SyntaxError{fmt.Sprintf("nesting deeper than %d levels", p.maxDepth)}
		}
		switch t {
		case '{':
			return p.object(depth + 1)
		case '[':
			return p.array(depth + 1)
		}
	}
	return nil, &SyntaxError{fmt.Sprintf("unexpected token %v", t)}
}

func (p *parser) object(depth int) (*Value, error) {
	v := &Value{Kind: Object}
	seen := map[string]bool{}
	for p.dec.More() {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, &SyntaxError{"object member name is not a string"}
		}
		if seen[name] {
			return nil, &SyntaxError{fmt.Sprintf("duplicate member name %q", truncate(name))}
		}
		seen[name] = true
		mv, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.Members = append(v.Members, Member{name, mv})
	}
	if _, err := p.token(); err != nil { // '}'
		return nil, err
	}
	return v, nil
}

func (p *parser) array(depth int) (*Value, error) {
	v := &Value{Kind: Array, Items: []*Value{}}
	for p.dec.More() {
		iv, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.Items = append(v.Items, iv)
	}
	if _, err := p.token(); err != nil { // ']'
		return nil, err
	}
	return v, nil
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) > 40 {
		r := []rune(s)
		return string(r[:40]) + "…"
	}
	return s
}

// Pointer appends one reference token to a JSON Pointer, escaping '~' and '/'.
func Pointer(base string, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return base + "/" + token
}

// Index appends an array index to a JSON Pointer.
func Index(base string, i int) string { return fmt.Sprintf("%s/%d", base, i) }

// Any converts the tree to the generic form JSON Schema validators take
// (maps, slices, json.Number, string, bool, nil), without parsing again.
func (v *Value) Any() any {
	switch v.Kind {
	case Object:
		m := make(map[string]any, len(v.Members))
		for _, mem := range v.Members {
			m[mem.Name] = mem.Value.Any()
		}
		return m
	case Array:
		a := make([]any, len(v.Items))
		for i, it := range v.Items {
			a[i] = it.Any()
		}
		return a
	case Number:
		return json.Number(v.Str)
	case String:
		return v.Str
	case Bool:
		return v.Bool
	}
	return nil
}
