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
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the JSON type of a value.
type Kind uint8

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
type SyntaxError struct {
	Reason string
	// Offset is where it was found, in bytes from 1 (a duplicate member:
	// its name's opening quote); 0 when the reason is the whole document's.
	Offset int
}

func (e *SyntaxError) Error() string { return "jsondoc: " + e.Reason }

// precheck refuses what no parser should start on (a byte-order mark,
// invalid UTF-8) and returns the depth bound to use.
func precheck(payload []byte, maxDepth int) (int, error) {
	if bytes.HasPrefix(payload, []byte{0xEF, 0xBB, 0xBF}) {
		return 0, &SyntaxError{Reason: "byte-order mark before the document"}
	}
	if !utf8.Valid(payload) {
		return 0, &SyntaxError{Reason: "not valid UTF-8"}
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	return maxDepth, nil
}

// Parse reads exactly one JSON value from payload.
//
// It scans the bytes itself rather than through encoding/json's Decoder:
// Decoder.Token boxes every token in an interface and re-scans each value,
// and on the intake path that was most of the cost of reading a notice.
// The grammar is RFC 8259's, exactly what encoding/json accepts (a
// differential fuzz test holds the two to the same verdicts and trees).
func Parse(payload []byte, maxDepth int) (*Value, error) {
	return ParseBounded(payload, maxDepth, 0)
}

// ErrTooManyValues is ParseBounded's refusal of a document with more
// values than its bound.
var ErrTooManyValues = errors.New("jsondoc: more values than the document may hold")

// Reason says why Parse or ParseBounded refused a document, without the
// package's prefix, for a caller that puts the reason in its own words
// (an adapter's problem, a configuration file's error).
func Reason(err error) string {
	var se *SyntaxError
	if errors.As(err, &se) {
		return se.Reason
	}
	return strings.TrimPrefix(err.Error(), "jsondoc: ")
}

// ParseBounded is Parse that stops at the (maxValues+1)th value (objects,
// arrays, strings, numbers, literals; 0 is unbounded). The tree costs
// about 25 bytes of memory per byte of a document made of small values,
// so a large payload's bound on values is what bounds its tree.
func ParseBounded(payload []byte, maxDepth, maxValues int) (*Value, error) {
	return parse(payload, maxDepth, maxValues, nil)
}

// Scratch is room for one tree at a time, for a caller that reads many
// documents and drops each tree before it reads the next (a check of the
// gateway's own output, a stored column): the tree's values, members and
// items are laid out in blocks the Scratch keeps, not allocated anew for
// each document. Checking every accepted notice's canonical record
// allocated 8 KB of tree per notice, 16 % of all the gateway allocated.
// A Scratch is not safe for concurrent use; a sync.Pool of them is.
type Scratch struct {
	values      []Value
	members     []Member
	items       []*Value
	openMembers []Member // the open containers' stacks, kept as they grew
	openItems   []*Value
}

// ParseThen reads payload like Parse and hands its tree to use, for a
// caller that keeps nothing of the tree but what it copies out (strings
// are the document's own and may be kept): the tree lives only until use
// returns, in a pooled Scratch's blocks.
func ParseThen(payload []byte, maxDepth int, use func(v *Value) error) error {
	s := scratches.Get().(*Scratch)
	defer scratches.Put(s)
	v, err := s.Parse(payload, maxDepth)
	if err != nil {
		return err
	}
	return use(v)
}

var scratches = sync.Pool{New: func() any { return new(Scratch) }}

// maxKeptStack bounds the open containers' stacks a Scratch keeps from one
// document to the next (a 6 MB batch's array of thousands of items grows
// its stack to that size, and a pooled Scratch would hold it).
const maxKeptStack = 1024

// Parse is Parse into s. The tree is valid until s parses again; its
// strings are copies of the document's, valid for as long as they are
// held.
func (s *Scratch) Parse(payload []byte, maxDepth int) (*Value, error) {
	return parse(payload, maxDepth, 0, s)
}

// parse reads one document, into s's blocks if s is not nil.
func parse(payload []byte, maxDepth, maxValues int, s *Scratch) (*Value, error) {
	maxDepth, err := precheck(payload, maxDepth)
	if err != nil {
		return nil, err
	}
	p := parser{b: payload, s: string(payload), maxDepth: maxDepth, maxValues: maxValues}
	p.preallocate(s)
	if s != nil {
		defer s.keep(&p)
	}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, &SyntaxError{Reason: "data after the document"}
	}
	return v, nil
}

type parser struct {
	b         []byte
	s         string // b as a string: names and values without escapes are slices of it, not allocations
	i         int
	maxDepth  int
	maxValues int // 0: unbounded
	values    int
	slab      []Value // values are handed out from here, a few allocations per document
	members   []Member
	items     []*Value // the members and items of the open containers; each is copied out once, at its size
	// memberBlock and itemBlock are where they are copied to (preallocate).
	memberBlock []Member
	itemBlock   []*Value
}

// maxPrealloc bounds each of the blocks preallocate makes at once, since
// what it counts may be inside strings: a string of commas is one value.
const maxPrealloc = 256

// preallocate makes room for the document's tree in three allocations: a
// document holds at most one value more than its commas and opening
// brackets, at most one member per colon, and at most one item more per
// array than its commas. Before, a JWS header of three values took a
// block of 32 values (2.5 KB), and every object and array its own slice.
//
// With a Scratch the blocks are the Scratch's, cleared, grown if the
// document needs more room than they had.
func (p *parser) preallocate(s *Scratch) {
	commas, colons := countUpTo(p.b, ',', maxPrealloc), countUpTo(p.b, ':', maxPrealloc)
	opens := countUpTo(p.b, '{', maxPrealloc) + countUpTo(p.b, '[', maxPrealloc)
	values := 1 + commas + opens
	if p.maxValues > 0 {
		values = min(values, p.maxValues+1)
	}
	if s == nil {
		p.slab = make([]Value, min(values, maxPrealloc))
		p.memberBlock = make([]Member, min(colons, maxPrealloc))
		p.itemBlock = make([]*Value, min(commas+opens, maxPrealloc))
		p.members = make([]Member, 0, min(colons, 32))
		return
	}
	s.values = cleared(s.values, min(values, maxPrealloc))
	s.members = cleared(s.members, min(colons, maxPrealloc))
	s.items = cleared(s.items, min(commas+opens, maxPrealloc))
	p.slab, p.memberBlock, p.itemBlock = s.values, s.members, s.items
	p.members, p.items = s.openMembers[:0], s.openItems[:0]
}

// countUpTo counts c in b, in chunks, until it has counted at least n
// (every block is at most maxPrealloc long, so no more is needed): a large
// document, an insurer's batch of several MB, was counted whole four times.
func countUpTo(b []byte, c byte, n int) int {
	const chunk = 4 << 10
	k := 0
	for len(b) > 0 && k < n {
		m := min(len(b), chunk)
		k += bytes.Count(b[:m], []byte{c})
		b = b[m:]
	}
	return k
}

// cleared is block, or a new one if it is too small, as n zero elements.
func cleared[T any](block []T, n int) []T {
	if cap(block) < n {
		return make([]T, n)
	}
	block = block[:n]
	clear(block)
	return block
}

// keep keeps p's open containers' stacks, as they grew, for the next
// document, unless they grew past maxKeptStack.
func (s *Scratch) keep(p *parser) {
	if cap(p.members) <= maxKeptStack {
		s.openMembers = p.members[:0]
	}
	if cap(p.items) <= maxKeptStack {
		s.openItems = p.items[:0]
	}
}

// carve copies an object's members or an array's items out of the open
// containers' stack, into its preallocated block while that has room.
func carve[T any](block *[]T, open []T) []T {
	n := len(open)
	if n > len(*block) {
		return slices.Clone(open)
	}
	s := (*block)[:n:n]
	*block = (*block)[n:]
	copy(s, open)
	return s
}

func (p *parser) node(k Kind) *Value {
	if len(p.slab) == 0 {
		p.slab = make([]Value, 32)
	}
	v := &p.slab[0]
	p.slab = p.slab[1:]
	v.Kind = k
	return v
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) unexpected() error {
	if p.i >= len(p.b) {
		return &SyntaxError{Reason: "unexpected end of document"}
	}
	r, _ := utf8.DecodeRune(p.b[p.i:])
	return &SyntaxError{Reason: fmt.Sprintf("invalid character %q at byte %d", r, p.i+1), Offset: p.i + 1}
}

// value reads one value; the caller skipped the whitespace before it.
func (p *parser) value(depth int) (*Value, error) {
	if p.i >= len(p.b) {
		return nil, p.unexpected()
	}
	if p.values++; p.maxValues > 0 && p.values > p.maxValues {
		return nil, ErrTooManyValues
	}
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth+1 > p.maxDepth {
			return nil, &SyntaxError{Reason: fmt.Sprintf("nesting deeper than %d levels", p.maxDepth)}
		}
		p.i++
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case c == '"':
		str, err := p.str()
		if err != nil {
			return nil, err
		}
		v := p.node(String)
		v.Str = str
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", Bool, true)
	case c == 'f':
		return p.literal("false", Bool, false)
	case c == 'n':
		return p.literal("null", Null, false)
	}
	return nil, p.unexpected()
}

func (p *parser) literal(word string, k Kind, b bool) (*Value, error) {
	for j := 0; j < len(word); j++ {
		if p.i >= len(p.b) || p.b[p.i] != word[j] {
			return nil, p.unexpected()
		}
		p.i++
	}
	v := p.node(k)
	v.Bool = b
	return v, nil
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? as written.
func (p *parser) number() (*Value, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if !p.digits() {
		return nil, p.unexpected()
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, p.unexpected()
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, p.unexpected()
		}
	}
	v := p.node(Number)
	v.Str = p.s[start:p.i]
	return v, nil
}

func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// str reads a string at p.i (its opening quote). The payload is valid UTF-8
// already; escapes decode as encoding/json decodes them, a lone surrogate
// becoming U+FFFD.
func (p *parser) str() (string, error) {
	p.i++
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s, nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", p.unexpected()
		}
		p.i++
	}
	return "", p.unexpected()
}

// escaped finishes a string that holds an escape, from its first one.
func (p *parser) escaped(start int) (string, error) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", p.unexpected()
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			return "", p.unexpected()
		}
		switch e := p.b[p.i]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4(p.i + 1)
			if !ok {
				p.i++
				for k := 0; k < 4 && p.i < len(p.b) && isHex(p.b[p.i]); k++ {
					p.i++
				}
				return "", p.unexpected()
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
				if lo, ok := p.lowSurrogate(); ok {
					r = lo
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.unexpected()
		}
		p.i++
	}
	return "", p.unexpected()
}

// lowSurrogate completes a high surrogate at p.i-4..p.i with the escaped
// low surrogate that follows it, if one does.
func (p *parser) lowSurrogate() (rune, bool) {
	hi, _ := p.hex4(p.i - 3)
	if p.i+6 >= len(p.b) || p.b[p.i+1] != '\\' || p.b[p.i+2] != 'u' {
		return 0, false
	}
	lo, ok := p.hex4(p.i + 3)
	if !ok {
		return 0, false
	}
	if r := utf16.DecodeRune(hi, lo); r != utf8.RuneError {
		p.i += 6
		return r, true
	}
	return 0, false
}

func (p *parser) hex4(at int) (rune, bool) {
	if at+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (p *parser) object(depth int) (*Value, error) {
	v := p.node(Object)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	var seen map[string]bool // past a few members; before that a scan is cheaper
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.unexpected()
		}
		at := p.i
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		open := p.members[base:]
		if has(open, seen, name) {
			return nil, &SyntaxError{Reason: fmt.Sprintf("duplicate member name %q", truncate(name)), Offset: at + 1}
		}
		if len(open) == 16 {
			seen = make(map[string]bool, 32)
			for _, m := range open {
				seen[m.Name] = true
			}
		}
		if seen != nil {
			seen[name] = true
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.unexpected()
		}
		p.i++
		p.space()
		mv, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.members = append(p.members, Member{name, mv})
		if more, err := p.next('}'); !more {
			if err != nil {
				return nil, err
			}
			v.Members = carve(&p.memberBlock, p.members[base:])
			return v, nil
		}
	}
}

// has reports whether an open object already has a member named name.
func has(members []Member, seen map[string]bool, name string) bool {
	if seen != nil {
		return seen[name]
	}
	for _, m := range members {
		if m.Name == name {
			return true
		}
	}
	return false
}

func (p *parser) array(depth int) (*Value, error) {
	v := p.node(Array)
	v.Items = []*Value{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	base := len(p.items)
	defer func() { p.items = p.items[:base] }()
	for {
		iv, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.items = append(p.items, iv)
		if more, err := p.next(']'); !more {
			if err != nil {
				return nil, err
			}
			v.Items = carve(&p.itemBlock, p.items[base:])
			return v, nil
		}
	}
}

// next reads what follows a member or an item: a comma (more to come) or
// the closing bracket of its container.
func (p *parser) next(closing byte) (more bool, err error) {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ',' {
		p.i++
		p.space()
		return true, nil
	}
	if p.i < len(p.b) && p.b[p.i] == closing {
		p.i++
		return false, nil
	}
	return false, p.unexpected()
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
func Index(base string, i int) string { return base + "/" + strconv.Itoa(i) }

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
