package wssec

import (
	"strings"

	"github.com/beevik/etree"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// Envelope is a SOAP envelope's structure.
type Envelope struct {
	Doc       *etree.Document
	Root      *etree.Element
	Header    *etree.Element // nil when absent
	Body      *etree.Element
	BodyChild *etree.Element
	SOAP      string // NSSoap11 or NSSoap12
}

// Inspect checks the envelope structure: a SOAP 1.1 or 1.2 Envelope whose
// children are an optional Header and exactly one Body, the Body holding
// exactly one element and no text.
func Inspect(doc *etree.Document) (*Envelope, *Error) {
	root := doc.Root()
	e := &Envelope{Doc: doc, Root: root}
	switch {
	case is(root, NSSoap11, "Envelope"):
		e.SOAP = NSSoap11
	case is(root, NSSoap12, "Envelope"):
		e.SOAP = NSSoap12
	default:
		return nil, fail(CodeSchema, "the root element is not a SOAP 1.1 or 1.2 Envelope")
	}
	for i, c := range root.ChildElements() {
		switch {
		case is(c, e.SOAP, "Header") && i == 0 && e.Header == nil:
			e.Header = c
		case is(c, e.SOAP, "Body") && e.Body == nil:
			e.Body = c
		default:
			return nil, fail(CodeSchema, "the Envelope holds something other than one Header and one Body")
		}
	}
	if e.Body == nil {
		return nil, fail(CodeSchema, "the Envelope has no Body")
	}
	if strings.TrimSpace(textOf(root)) != "" {
		return nil, fail(CodeSchema, "text directly inside the Envelope")
	}
	kids := e.Body.ChildElements()
	if len(kids) != 1 || strings.TrimSpace(textOf(e.Body)) != "" {
		return nil, fail(CodeSchema, "the Body must hold exactly one element")
	}
	e.BodyChild = kids[0]
	return e, nil
}

// textOf concatenates the character data directly inside el.
func textOf(el *etree.Element) string {
	var b strings.Builder
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return b.String()
}

// Canonical is el's exclusive canonical form (without comments or an
// inclusive prefix list), with the namespaces in scope at el taken into
// account: how agency-soap/v1 §8.3 compares the Body children of two
// messages with one MessageId.
func Canonical(el *etree.Element) ([]byte, error) { return canon(el, "") }

// canon is the exclusive canonical form (with an optional inclusive prefix
// list) of el, with the namespaces in scope at el taken into account.
func canon(el *etree.Element, prefixList string) ([]byte, error) {
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		return nil, err
	}
	detached, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		return nil, err
	}
	return excC14N(detached, prefixList)
}

// ids maps every wsu:Id and Id attribute value to its element; a value that
// appears twice makes the document ambiguous and is refused.
func ids(root *etree.Element) (map[string]*etree.Element, bool) {
	m := map[string]*etree.Element{}
	ok := true
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for _, a := range el.Attr {
			if a.Key == "Id" && (a.Space == "" || a.NamespaceURI() == NSWsu) || a.Key == "ID" && a.Space == "" {
				if _, dup := m[a.Value]; dup {
					ok = false
				}
				m[a.Value] = el
			}
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	return m, ok
}
