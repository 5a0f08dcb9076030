// Package wssec is the gateway's WS-Security layer for the agency SOAP
// exchange (agency-soap/v1 §3): it parses envelopes defensively, signs them
// with an X.509 token (OASIS WSS 1.0 X.509 Token Profile: BinarySecurityToken,
// Timestamp, XML Signature over Body and Timestamp with exclusive C14N and
// SHA-256), and verifies them with the defences a signature-wrapping attacker
// would test: unique ids, references resolving to the actual Body and
// Timestamp only, one Body child, known transforms only, no DTDs, bounded
// size and depth. Canonicalization comes from russellhaering/goxmldsig; the
// tree is beevik/etree.
package wssec

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/beevik/etree"
)

// Namespaces.
const (
	NSSoap11 = "http://schemas.xmlsoap.org/soap/envelope/"
	NSSoap12 = "http://www.w3.org/2003/05/soap-envelope"
	NSWsse   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSWsu    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	NSDs     = "http://www.w3.org/2000/09/xmldsig#"
	NSExcC14 = "http://www.w3.org/2001/10/xml-exc-c14n#"

	AlgExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgRSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgECDSA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgSHA256    = "http://www.w3.org/2001/04/xmlenc#sha256"

	ValueTypeX509 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
	EncodingB64   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// Limits bound what parsing an envelope may cost.
type Limits struct {
	MaxBytes int // default 1 MiB
	MaxDepth int // default 64
	// MaxElements bounds the elements of an envelope, default 5,000. The
	// agency schema repeats nothing more than ten times, so its largest
	// messages hold a few hundred elements; a 1 MiB envelope of empty
	// elements is 240,000, and its tree took about 40 MB.
	MaxElements int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 20
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 64
	}
	if l.MaxElements <= 0 {
		l.MaxElements = 5000
	}
	return l
}

// ErrTooLarge, ErrTooDeep and ErrDTD are parse refusals.
var (
	ErrTooLarge = errors.New("wssec: envelope over the size limit")
	ErrTooDeep  = errors.New("wssec: envelope nested too deep")
	ErrDTD      = errors.New("wssec: DTDs and entity declarations are not accepted")
	ErrTooMany  = errors.New("wssec: envelope has too many elements")
)

// Parse reads an envelope. It first streams the bytes with encoding/xml
// (which never expands external entities) to refuse DTDs, processing
// instructions other than the XML declaration, excessive depth and too
// many elements, then builds the tree.
func Parse(raw []byte, lim Limits) (*etree.Document, error) {
	lim = lim.withDefaults()
	if len(raw) > lim.MaxBytes {
		return nil, ErrTooLarge
	}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	dec.Strict = true
	depth, elements := 0, 0
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("wssec: not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > lim.MaxDepth {
				return nil, ErrTooDeep
			}
			if elements++; elements > lim.MaxElements {
				return nil, ErrTooMany
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return nil, ErrDTD
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, fmt.Errorf("wssec: processing instruction %q not accepted", t.Target)
			}
		}
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{Permissive: false}
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, fmt.Errorf("wssec: not well-formed XML: %w", err)
	}
	if doc.Root() == nil {
		return nil, errors.New("wssec: no root element")
	}
	return doc, nil
}

// ns returns the namespace URI of an element.
func ns(el *etree.Element) string { return el.NamespaceURI() }

// is reports whether el is {space}local.
func is(el *etree.Element, space, local string) bool {
	return el != nil && el.Tag == local && ns(el) == space
}

// children returns the element children of el named {space}local.
func children(el *etree.Element, space, local string) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if is(c, space, local) {
			out = append(out, c)
		}
	}
	return out
}

// attrNS returns the value of the attribute {space}local.
func attrNS(el *etree.Element, space, local string) (string, bool) {
	for _, a := range el.Attr {
		if a.Key == local && a.NamespaceURI() == space {
			return a.Value, true
		}
	}
	return "", false
}
