package wssec

import (
	"cmp"
	"maps"
	"slices"

	"github.com/beevik/etree"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// excC14N serializes a detached element in exclusive canonical form
// (Exclusive XML Canonicalization 1.0, without comments). el is a copy
// made for it (canon's, with the namespaces in scope declared), which it
// changes and writes as it is, without copying it again.
//
// goxmldsig chooses the namespace declarations (etreeutils.TransformExcC14n),
// but its attribute order compares two attributes of different prefixes by
// their local names, where C14N orders them by namespace URI: an element
// with b:c and a:d, b bound to urn:b and a to urn:a, came out "b:c a:d",
// libxml2's (and the specification's) "a:d b:c", and the signature of the
// one side did not verify on the other (TestXmlsecCanonicalForms). So the
// order is set here, then the tree is written with C14N's escapes.
func excC14N(el *etree.Element, prefixList string) ([]byte, error) {
	if err := etreeutils.TransformExcC14n(el, prefixList, false); err != nil {
		return nil, err
	}
	sortAttrs(el, map[string]string{"xml": "http://www.w3.org/XML/1998/namespace"})
	doc := etree.NewDocument()
	doc.SetRoot(el)
	doc.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalEndTags: true, CanonicalText: true}
	return doc.WriteToBytes()
}

// sortAttrs puts the attributes of el and its descendants in C14N's order
// (Canonical XML 1.0 §2.2): the default namespace declaration, the other
// declarations by prefix, then the attributes by namespace URI (none
// first) and local name. scope maps the prefixes in force above el.
func sortAttrs(el *etree.Element, scope map[string]string) {
	cloned := false
	for _, a := range el.Attr {
		if a.Space == "xmlns" {
			if !cloned {
				scope, cloned = maps.Clone(scope), true
			}
			scope[a.Key] = a.Value
		}
	}
	rank := func(a etree.Attr) int {
		switch {
		case a.Space == "" && a.Key == "xmlns":
			return 0
		case a.Space == "xmlns":
			return 1
		}
		return 2
	}
	uri := func(a etree.Attr) string {
		if a.Space == "" {
			return ""
		}
		return scope[a.Space]
	}
	slices.SortStableFunc(el.Attr, func(x, y etree.Attr) int {
		if c := cmp.Compare(rank(x), rank(y)); c != 0 || rank(x) == 0 {
			return c
		}
		if rank(x) == 1 {
			return cmp.Compare(x.Key, y.Key)
		}
		return cmp.Or(cmp.Compare(uri(x), uri(y)), cmp.Compare(x.Key, y.Key))
	})
	for _, c := range el.ChildElements() {
		sortAttrs(c, scope)
	}
}
