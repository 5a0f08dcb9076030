// Package xsdlite validates XML elements against the subset of XML Schema
// 1.0 that the partner schemas use: named and anonymous simple types
// restricting xs:string (pattern, enumeration, minLength, maxLength) or
// xs:base64Binary, complex types with a sequence of elements (minOccurs,
// maxOccurs), and simple content extended with attributes. Anything else in
// a schema is refused at load time, so a schema change that needs more is
// noticed, not silently ignored.
package xsdlite

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// Schema is a loaded schema.
type Schema struct {
	TargetNS string
	simple   map[string]*simpleType
	complex  map[string]*complexType
	elements map[string]*elementDecl
}

type simpleType struct {
	base      string // "string" or "base64Binary"
	patterns  []*regexp.Regexp
	enums     map[string]bool
	minLength int
	maxLength int  // -1: none
	collapse  bool // whiteSpace="collapse": XML whitespace trimmed, runs made one space, before the facets
}

type attrDecl struct {
	name     string
	required bool
	typ      *simpleType
}

type complexType struct {
	seq     []*elementDecl // element-only content
	content *simpleType    // simple content (nil for element-only)
	attrs   []attrDecl
}

type elementDecl struct {
	name     string
	min, max int
	simple   *simpleType
	complex  *complexType
	typeRef  string // resolved lazily
}

// Load reads a schema document.
func Load(xsd []byte) (*Schema, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(xsd); err != nil {
		return nil, err
	}
	root := doc.Root()
	s := &Schema{TargetNS: root.SelectAttrValue("targetNamespace", ""), simple: map[string]*simpleType{},
		complex: map[string]*complexType{}, elements: map[string]*elementDecl{}}
	var pending []*elementDecl
	// Simple types first: complex types and elements refer to them, in any
	// order in the document.
	for _, c := range root.ChildElements() {
		if c.Tag == "simpleType" {
			name := c.SelectAttrValue("name", "")
			st, err := s.simpleType(c)
			if err != nil {
				return nil, fmt.Errorf("simpleType %s: %w", name, err)
			}
			s.simple[name] = st
		}
	}
	for _, c := range root.ChildElements() {
		name := c.SelectAttrValue("name", "")
		switch c.Tag {
		case "simpleType":
		case "complexType":
			ct, err := s.complexType(c, &pending)
			if err != nil {
				return nil, fmt.Errorf("complexType %s: %w", name, err)
			}
			s.complex[name] = ct
		case "element":
			e, err := s.element(c, &pending)
			if err != nil {
				return nil, fmt.Errorf("element %s: %w", name, err)
			}
			s.elements[name] = e
		default:
			return nil, fmt.Errorf("xsdlite: unsupported top-level %s", c.Tag)
		}
	}
	// Resolve type references now that every named type is known (simple
	// types may be declared after their first use).
	for _, e := range pending {
		if err := s.resolve(e); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func local(qname string) (prefix, name string) {
	if i := strings.IndexByte(qname, ':'); i >= 0 {
		return qname[:i], qname[i+1:]
	}
	return "", qname
}

func (s *Schema) resolve(e *elementDecl) error {
	if e.typeRef == "" {
		return nil
	}
	p, n := local(e.typeRef)
	if p == "xs" {
		st, err := builtin(n)
		if err != nil {
			return err
		}
		e.simple = st
		return nil
	}
	if st, ok := s.simple[n]; ok {
		e.simple = st
		return nil
	}
	if ct, ok := s.complex[n]; ok {
		e.complex = ct
		return nil
	}
	return fmt.Errorf("xsdlite: unknown type %s", e.typeRef)
}

func builtin(name string) (*simpleType, error) {
	switch name {
	case "string":
		return &simpleType{base: "string", maxLength: -1}, nil
	case "positiveInteger":
		return &simpleType{base: "string", maxLength: -1, collapse: true, patterns: []*regexp.Regexp{regexp.MustCompile(`^\+?0*[1-9][0-9]*$`)}}, nil
	case "base64Binary":
		return &simpleType{base: "base64Binary", maxLength: -1}, nil
	}
	return nil, fmt.Errorf("xsdlite: unsupported built-in type xs:%s", name)
}

func (s *Schema) simpleType(el *etree.Element) (*simpleType, error) {
	r := el.SelectElement("restriction")
	if r == nil {
		return nil, fmt.Errorf("xsdlite: only restrictions are supported")
	}
	_, base := local(r.SelectAttrValue("base", ""))
	st := &simpleType{base: "string", maxLength: -1}
	if base != "string" {
		named, ok := s.simple[base]
		if !ok {
			return nil, fmt.Errorf("xsdlite: restriction of %s", base)
		}
		cp := *named
		st = &cp
	}
	for _, f := range r.ChildElements() {
		v := f.SelectAttrValue("value", "")
		switch f.Tag {
		case "pattern":
			re, err := compilePattern(v)
			if err != nil {
				return nil, err
			}
			st.patterns = append(st.patterns, re)
		case "enumeration":
			if st.enums == nil {
				st.enums = map[string]bool{}
			}
			st.enums[v] = true
		case "minLength":
			st.minLength, _ = strconv.Atoi(v)
		case "maxLength":
			st.maxLength, _ = strconv.Atoi(v)
		default:
			return nil, fmt.Errorf("xsdlite: unsupported facet %s", f.Tag)
		}
	}
	return st, nil
}

// compilePattern compiles an XML Schema pattern, which Go's syntax reads
// alike as long as it keeps to literals, escaped metacharacters, classes of
// them and quantifiers: the agency schema's do. A construct XML Schema gives
// another meaning (. refuses U+000D, \d is every Unicode digit, ^ and $ are
// plain characters, [a-z-[aeiou]] subtracts) is refused when the schema is
// loaded rather than matched differently.
func compilePattern(p string) (*regexp.Regexp, error) {
	inClass := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && i+1 < len(p):
			i++
			if strings.IndexByte("sSdDwWiIcCpP", p[i]) >= 0 {
				return nil, fmt.Errorf("xsdlite: pattern %q: \\%c is not supported", p, p[i])
			}
		case c == '[' && !inClass:
			inClass = true
			if strings.HasPrefix(p[i+1:], "^") {
				i++
			}
		case c == '[' && i > 0 && p[i-1] == '-':
			return nil, fmt.Errorf("xsdlite: pattern %q: class subtraction is not supported", p)
		case c == ']' && inClass:
			inClass = false
		case !inClass && (c == '.' || c == '^' || c == '$'):
			return nil, fmt.Errorf("xsdlite: pattern %q: an unescaped %c is not supported", p, c)
		}
	}
	return regexp.Compile("^(?:" + p + ")$")
}

func (s *Schema) complexType(el *etree.Element, pending *[]*elementDecl) (*complexType, error) {
	ct := &complexType{}
	for _, c := range el.ChildElements() {
		switch c.Tag {
		case "sequence":
			for _, e := range c.ChildElements() {
				if e.Tag != "element" {
					return nil, fmt.Errorf("xsdlite: unsupported %s in a sequence", e.Tag)
				}
				d, err := s.element(e, pending)
				if err != nil {
					return nil, err
				}
				ct.seq = append(ct.seq, d)
			}
		case "simpleContent":
			ext := c.SelectElement("extension")
			if ext == nil {
				return nil, fmt.Errorf("xsdlite: simpleContent without extension")
			}
			p, base := local(ext.SelectAttrValue("base", ""))
			if p == "xs" {
				st, err := builtin(base)
				if err != nil {
					return nil, err
				}
				ct.content = st
			} else if st, ok := s.simple[base]; ok {
				ct.content = st
			} else {
				return nil, fmt.Errorf("xsdlite: simple content base %s unknown (declare it first)", base)
			}
			for _, a := range ext.SelectElements("attribute") {
				ad := attrDecl{name: a.SelectAttrValue("name", ""), required: a.SelectAttrValue("use", "") == "required"}
				if t := a.SelectAttrValue("type", ""); t != "" {
					_, n := local(t)
					st, ok := s.simple[n]
					if !ok {
						return nil, fmt.Errorf("xsdlite: attribute type %s unknown", t)
					}
					ad.typ = st
				} else if inl := a.SelectElement("simpleType"); inl != nil {
					st, err := s.simpleType(inl)
					if err != nil {
						return nil, err
					}
					ad.typ = st
				}
				ct.attrs = append(ct.attrs, ad)
			}
		default:
			return nil, fmt.Errorf("xsdlite: unsupported %s in a complexType", c.Tag)
		}
	}
	return ct, nil
}

func (s *Schema) element(el *etree.Element, pending *[]*elementDecl) (*elementDecl, error) {
	d := &elementDecl{name: el.SelectAttrValue("name", ""), min: 1, max: 1}
	if v := el.SelectAttrValue("minOccurs", ""); v != "" {
		d.min, _ = strconv.Atoi(v)
	}
	if v := el.SelectAttrValue("maxOccurs", ""); v == "unbounded" {
		d.max = 1 << 30
	} else if v != "" {
		d.max, _ = strconv.Atoi(v)
	}
	if t := el.SelectAttrValue("type", ""); t != "" {
		d.typeRef = t
		*pending = append(*pending, d)
		return d, nil
	}
	if st := el.SelectElement("simpleType"); st != nil {
		t, err := s.simpleType(st)
		if err != nil {
			return nil, err
		}
		d.simple = t
		return d, nil
	}
	if ct := el.SelectElement("complexType"); ct != nil {
		t, err := s.complexType(ct, pending)
		if err != nil {
			return nil, err
		}
		d.complex = t
		return d, nil
	}
	return nil, fmt.Errorf("xsdlite: element %s has no type", d.name)
}

// Error locates a schema violation.
type Error struct {
	Path   string // e.g. /xb:NotifyInjury/xb:Notification/xb:Injury[2]/xb:Nature
	Reason string
}

func (e *Error) Error() string { return e.Path + ": " + e.Reason }

// Validate checks el against the global element declaration of its name.
// prefix is the prefix used in reported paths (e.g. "xb"). It answers
// *Error, whose Path a SOAP Fault reports: check it for nil before it is
// held as an error, since a nil *Error in an error is not a nil error.
func (s *Schema) Validate(el *etree.Element, prefix string) *Error {
	if el.NamespaceURI() != s.TargetNS {
		return &Error{"/", "element is not in namespace " + s.TargetNS}
	}
	d, ok := s.elements[el.Tag]
	if !ok {
		return &Error{"/" + prefix + ":" + el.Tag, "unknown element"}
	}
	return s.check(el, d, "/"+prefix+":"+el.Tag, prefix)
}

func (s *Schema) check(el *etree.Element, d *elementDecl, path, prefix string) *Error {
	if d.complex != nil {
		return s.checkComplex(el, d.complex, path, prefix)
	}
	if len(el.ChildElements()) > 0 {
		return &Error{path, "no child elements allowed"}
	}
	for _, a := range el.Attr {
		if a.Space != "xmlns" && !(a.Space == "" && a.Key == "xmlns") {
			return &Error{path + "/@" + a.Key, "attribute not allowed"}
		}
	}
	return checkSimple(el.Text(), d.simple, path)
}

func checkSimple(v string, st *simpleType, path string) *Error {
	if st == nil {
		return nil
	}
	if st.base == "base64Binary" {
		// XML Schema's lexical form: the alphabet, whitespace anywhere (the
		// type collapses it), padding, and no bits set past the data
		// (Strict: "QR==" is not base64Binary, "QQ==" is).
		if _, err := base64.StdEncoding.Strict().DecodeString(strings.Join(strings.FieldsFunc(v, isXMLSpace), "")); err != nil {
			return &Error{path, "not base64"}
		}
		return nil
	}
	if st.collapse {
		v = strings.Join(strings.FieldsFunc(v, isXMLSpace), " ")
	}
	n := utf8.RuneCountInString(v)
	if n < st.minLength || (st.maxLength >= 0 && n > st.maxLength) {
		return &Error{path, "length out of range"}
	}
	if st.enums != nil && !st.enums[v] {
		return &Error{path, "value not in the enumeration"}
	}
	for _, re := range st.patterns {
		if !re.MatchString(v) {
			return &Error{path, "value does not match the pattern"}
		}
	}
	return nil
}

func (s *Schema) checkComplex(el *etree.Element, ct *complexType, path, prefix string) *Error {
	// Attributes: declared ones only (namespace declarations aside).
	seen := map[string]bool{}
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		var decl *attrDecl
		for i := range ct.attrs {
			if ct.attrs[i].name == a.Key && a.Space == "" {
				decl = &ct.attrs[i]
			}
		}
		if decl == nil {
			return &Error{path + "/@" + a.Key, "attribute not allowed"}
		}
		seen[a.Key] = true
		if err := checkSimple(a.Value, decl.typ, path+"/@"+a.Key); err != nil {
			return err
		}
	}
	for _, a := range ct.attrs {
		if a.required && !seen[a.name] {
			return &Error{path + "/@" + a.name, "required attribute missing"}
		}
	}
	if ct.content != nil {
		if len(el.ChildElements()) > 0 {
			return &Error{path, "no child elements allowed"}
		}
		return checkSimple(el.Text(), ct.content, path)
	}
	if strings.TrimFunc(directText(el), isXMLSpace) != "" {
		return &Error{path, "text not allowed here"}
	}
	kids := el.ChildElements()
	i := 0
	for _, d := range ct.seq {
		n := 0
		for i < len(kids) && kids[i].Tag == d.name && kids[i].NamespaceURI() == s.TargetNS {
			n++
			p := path + "/" + prefix + ":" + d.name
			if d.max > 1 {
				p += "[" + strconv.Itoa(n) + "]"
			}
			if n > d.max {
				return &Error{p, "too many occurrences"}
			}
			if err := s.check(kids[i], d, p, prefix); err != nil {
				return err
			}
			i++
		}
		if n < d.min {
			return &Error{path + "/" + prefix + ":" + d.name, "required element missing"}
		}
	}
	if i < len(kids) {
		return &Error{path + "/" + prefix + ":" + kids[i].Tag, "element not allowed here"}
	}
	return nil
}

// isXMLSpace: XML's whitespace (S), not Unicode's; a no-break space
// between elements is text.
func isXMLSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func directText(el *etree.Element) string {
	var b strings.Builder
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return b.String()
}
