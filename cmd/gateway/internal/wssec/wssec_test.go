package wssec_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

const plain = `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1">
  <soap:Body>
    <xb:NotifyInjury><xb:Header><xb:MessageId>urn:uuid:1</xb:MessageId><xb:Sender>TH:SSO</xb:Sender></xb:Header><xb:Notification><xb:Name>สมชาย</xb:Name></xb:Notification></xb:NotifyInjury>
  </soap:Body>
</soap:Envelope>`

var now = time.Now().UTC().Truncate(time.Second)

type keys struct {
	ca       *certs.CA
	rsa      *certs.Issued
	ec       *certs.Issued
	other    *certs.Issued // same CA, another institution
	outsider *certs.Issued
}

func newKeys(t testing.TB) keys {
	ca, _ := certs.NewCA("agency CA")
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	r, _ := ca.IssueSigning("TH:SSO", rk)
	e, _ := ca.IssueSigning("TH:SSO", nil)
	o, _ := ca.IssueSigning("XX:OTHER", nil)
	oca, _ := certs.NewCA("another CA")
	out, _ := oca.IssueSigning("TH:SSO", nil)
	return keys{ca, r, e, o, out}
}

func signed(t testing.TB, iss *certs.Issued, xml string) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	s := &wssec.Signer{Cert: iss.Cert, Key: iss.Key, Now: func() time.Time { return now }}
	if err := s.Sign(doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func verifier(k keys) *wssec.Verifier {
	pool := x509.NewCertPool()
	pool.AddCert(k.ca.Cert)
	return &wssec.Verifier{Now: func() time.Time { return now }, Trust: func(c *x509.Certificate) error {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return err
		}
		if c.Subject.CommonName != "TH:SSO" {
			return errors.New("certificate is not registered for this partner")
		}
		return nil
	}}
}

// reparse serializes and parses again, as a receiver would.
func reparse(t testing.TB, doc *etree.Document) *etree.Document {
	t.Helper()
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	d, err := wssec.Parse(b, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func find(doc *etree.Document, path string) *etree.Element { return doc.FindElement(path) }

func TestVerify(t *testing.T) {
	k := newKeys(t)
	v := verifier(k)
	mutate := func(f func(d *etree.Document)) *etree.Document {
		d := reparse(t, signed(t, k.rsa, plain))
		f(d)
		return reparse(t, d)
	}
	tests := []struct {
		name string
		doc  *etree.Document
		code string
	}{
		{"ok/rsa", reparse(t, signed(t, k.rsa, plain)), ""},
		{"ok/ecdsa", reparse(t, signed(t, k.ec, plain)), ""},
		{"ok/envelope-in-the-default-namespace", reparse(t, signed(t, k.ec, strings.NewReplacer("soap:", "", "xmlns:soap", "xmlns").Replace(plain))), ""},
		{"fail/body-tampered", mutate(func(d *etree.Document) { find(d, "//Name").SetText("Somchai") }), wssec.CodeSignature},
		{"fail/timestamp-tampered", mutate(func(d *etree.Document) {
			find(d, "//Expires").SetText(now.Add(200 * time.Second).Format("2006-01-02T15:04:05Z"))
		}), wssec.CodeSignature},
		{"fail/extra-body-child", mutate(func(d *etree.Document) { find(d, "//Body").CreateElement("xb:Extra") }), wssec.CodeSchema},
		{"fail/wrapping-moved-body", mutate(func(d *etree.Document) {
			// The signed Body goes into a header wrapper; a new Body with the
			// same id carries the attacker's content.
			body := find(d, "//Body")
			id := body.SelectAttrValue("wsu:Id", "")
			env := d.Root()
			env.RemoveChild(body)
			w := find(d, "//Header").CreateElement("Wrapper")
			w.AddChild(body)
			nb := env.CreateElement("soap:Body")
			nb.CreateAttr("wsu:Id", id)
			nb.CreateElement("xb:NotifyInjury").CreateElement("xb:Evil")
		}), wssec.CodeSignature},
		{"fail/wrapping-decoy-reference", mutate(func(d *etree.Document) {
			// The real Body loses its id; a decoy in the header takes it.
			body := find(d, "//Body")
			id := body.SelectAttrValue("wsu:Id", "")
			body.RemoveAttr("wsu:Id")
			body.CreateAttr("wsu:Id", "OTHER")
			decoy := find(d, "//Header").CreateElement("soap:Body")
			decoy.CreateAttr("wsu:Id", id)
		}), wssec.CodeSignature},
		// An id is an id whichever attribute carries it: the Body's or the
		// Timestamp's value again, on an element outside what is signed (a
		// header of no one's), as wsu:Id, a plain Id or ID, is ambiguous.
		{"fail/duplicate-ids", mutate(func(d *etree.Document) {
			decoy(d).CreateAttr("wsu:Id", find(d, "//Body").SelectAttrValue("wsu:Id", ""))
		}), wssec.CodeSignature},
		{"fail/duplicate-id-unprefixed", mutate(func(d *etree.Document) {
			decoy(d).CreateAttr("Id", find(d, "//Body").SelectAttrValue("wsu:Id", ""))
		}), wssec.CodeSignature},
		{"fail/duplicate-id-upper-case", mutate(func(d *etree.Document) {
			decoy(d).CreateAttr("ID", find(d, "//Timestamp").SelectAttrValue("wsu:Id", ""))
		}), wssec.CodeSignature},
		{"ok/same-value-in-another-namespace", mutate(func(d *etree.Document) {
			decoy(d).CreateAttr("x:Id", find(d, "//Body").SelectAttrValue("wsu:Id", "")) // not an id attribute
		}), ""},
		{"ok/header-of-no-ones", mutate(func(d *etree.Document) { decoy(d) }), ""},
		{"fail/timestamp-not-referenced", mutate(func(d *etree.Document) {
			si := find(d, "//SignedInfo")
			si.RemoveChild(si.SelectElements("Reference")[0])
		}), wssec.CodeSignature},
		{"fail/unknown-transform", mutate(func(d *etree.Document) {
			find(d, "//Transform").SelectAttr("Algorithm").Value = "http://www.w3.org/TR/1999/REC-xpath-19991116"
		}), wssec.CodeSignature},
		{"fail/no-security", mutate(func(d *etree.Document) { h := find(d, "//Header"); h.RemoveChild(h.SelectElement("Security")) }), wssec.CodeMissing},
		{"fail/no-timestamp", mutate(func(d *etree.Document) { s := find(d, "//Security"); s.RemoveChild(s.SelectElement("Timestamp")) }), wssec.CodeMissing},
		{"fail/unknown-must-understand", mutate(func(d *etree.Document) {
			x := find(d, "//Header").CreateElement("x:Routing")
			x.CreateAttr("xmlns:x", "urn:x")
			x.CreateAttr("soap:mustUnderstand", "1")
		}), wssec.CodeMustUnderstand},
		// The Timestamp is checked before the signature, so these fail for
		// their times, not for the digest they break.
		{"fail/expires-not-after-created", mutate(func(d *etree.Document) {
			find(d, "//Expires").SetText(find(d, "//Created").Text())
		}), wssec.CodeTimestamp},
		{"fail/lasts-over-the-maximum", mutate(func(d *etree.Document) {
			find(d, "//Expires").SetText(now.Add(301 * time.Second).Format("2006-01-02T15:04:05Z"))
		}), wssec.CodeTimestamp},
		{"fail/created-in-local-time", mutate(func(d *etree.Document) {
			find(d, "//Created").SetText(now.Format("2006-01-02T15:04:05") + "+00:00")
		}), wssec.CodeTimestamp},
		// KeyInfo is not signed: the certificate may come as X509Data
		// instead of a reference to the token, and is trusted or not.
		{"ok/x509data", mutate(func(d *etree.Document) {
			x509Data(d, k.rsa.Cert.Raw)
		}), ""},
		{"fail/x509data-of-another-ca", mutate(func(d *etree.Document) {
			x509Data(d, k.outsider.Cert.Raw)
		}), wssec.CodeUntrusted},
		{"fail/x509data-two-certificates", mutate(func(d *etree.Document) {
			x509Data(d, k.rsa.Cert.Raw).CreateElement("ds:X509Certificate").SetText(base64.StdEncoding.EncodeToString(k.rsa.Cert.Raw))
		}), wssec.CodeMissing},
		{"fail/header-after-body", mutate(func(d *etree.Document) {
			env, h := d.Root(), find(d, "//Header")
			env.RemoveChild(h)
			env.AddChild(h)
		}), wssec.CodeSchema},
		{"fail/two-bodies", mutate(func(d *etree.Document) { d.Root().CreateElement("soap:Body") }), wssec.CodeSchema},
		{"fail/other-partner-certificate", reparse(t, signed(t, k.other, plain)), wssec.CodeUntrusted},
		{"fail/certificate-from-another-ca", reparse(t, signed(t, k.outsider, plain)), wssec.CodeUntrusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := v.Verify(tc.doc)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if res.BodyChild.Tag != "NotifyInjury" {
					t.Fatalf("body child %s", res.BodyChild.Tag)
				}
				return
			}
			if err == nil || err.Code != tc.code {
				t.Fatalf("Verify = %v, want %s", err, tc.code)
			}
			if strings.HasPrefix(tc.name, "fail/duplicate-id") && err.Reason != "an id is used by more than one element" {
				t.Fatalf("refused for %q, not for the id used twice", err.Reason)
			}
			if !slices.Contains(wssec.Codes(), err.Code) {
				t.Fatalf("code %s is not in Codes(), which the metrics show from the start", err.Code)
			}
		})
	}
}

func TestTimestampWindow(t *testing.T) {
	k := newKeys(t)
	doc := reparse(t, signed(t, k.ec, plain))
	for _, tc := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"ok/now", now, true},
		{"ok/skew-before-created", now.Add(-110 * time.Second), true},
		{"ok/skew-after-expiry", now.Add(300*time.Second + 110*time.Second), true},
		{"fail/future", now.Add(-130 * time.Second), false},
		{"fail/expired", now.Add(300*time.Second + 130*time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(k)
			at := tc.at
			v.Now = func() time.Time { return at }
			v.Trust = nil
			_, err := v.Verify(doc)
			if tc.ok != (err == nil) || (err != nil && err.Code != wssec.CodeTimestamp) {
				t.Fatalf("Verify at %s = %v", at, err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	dtd, deep, many, large := wssec.ErrDTD.Error(), wssec.ErrTooDeep.Error(), wssec.ErrTooMany.Error(), wssec.ErrTooLarge.Error()
	for _, tc := range []struct {
		name, xml string
		lim       wssec.Limits
		want      string // in the refusal
	}{
		{"fail/dtd", `<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`, wssec.Limits{}, dtd},
		{"fail/billion-laughs", `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY l0 "ha"><!ENTITY l1 "&l0;&l0;&l0;&l0;">]><l>&l1;</l>`, wssec.Limits{}, dtd},
		{"fail/external-entity", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`, wssec.Limits{}, dtd},
		{"fail/deep", strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000), wssec.Limits{}, deep},
		{"fail/too-many-elements", "<a>" + strings.Repeat("<b/>", 5000) + "</a>", wssec.Limits{}, many},
		{"fail/too-many-elements-lowered", "<a><b/><b/></a>", wssec.Limits{MaxElements: 2}, many},
		{"fail/oversize", "<a>" + strings.Repeat("x", 2<<20) + "</a>", wssec.Limits{}, large},
		{"fail/not-well-formed", "<a><b></a>", wssec.Limits{}, "not well-formed XML"},
		{"fail/processing-instruction", `<?xml-stylesheet href="x"?><a/>`, wssec.Limits{}, `processing instruction "xml-stylesheet" not accepted`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := wssec.Parse([]byte(tc.xml), tc.lim); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, xml string
		lim       wssec.Limits
		want      error // nil: parsed
	}{
		{"ok/depth-at-the-bound", "<a><b><c/></b></a>", wssec.Limits{MaxDepth: 3}, nil},
		{"fail/depth-one-over", "<a><b><c><d/></c></b></a>", wssec.Limits{MaxDepth: 3}, wssec.ErrTooDeep},
		{"ok/size-at-the-bound", "<a>xy</a>", wssec.Limits{MaxBytes: 9}, nil},
		{"fail/size-one-over", "<a>xyz</a>", wssec.Limits{MaxBytes: 9}, wssec.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := wssec.Parse([]byte(tc.xml), tc.lim); !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("ok/elements-at-the-bound", func(t *testing.T) {
		if _, err := wssec.Parse([]byte("<a>"+strings.Repeat("<b/>", 4999)+"</a>"), wssec.Limits{}); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	k := newKeys(f)
	b, _ := reparse(f, signed(f, k.ec, plain)).WriteToBytes()
	f.Add(b)
	f.Add([]byte(plain))
	v := verifier(k)
	f.Fuzz(func(t *testing.T, raw []byte) {
		doc, err := wssec.Parse(raw, wssec.Limits{MaxBytes: 64 << 10})
		if err != nil {
			return
		}
		res, verr := v.Verify(doc)
		if verr == nil && res.Cert == nil {
			t.Fatal("verified without a certificate")
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k := newKeys(b)
	for _, c := range []struct {
		name string
		iss  *certs.Issued
	}{{"rsa2048", k.rsa}, {"ecdsa-p256", k.ec}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				signed(b, c.iss, plain)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	k := newKeys(b)
	raw, _ := signed(b, k.rsa, plain).WriteToBytes()
	v := verifier(k)
	b.ReportAllocs()
	for b.Loop() {
		doc, err := wssec.Parse(raw, wssec.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, verr := v.Verify(doc); verr != nil {
			b.Fatal(verr)
		}
	}
}

// TestReplace: after Replace, signatures carry the new certificate and
// verify with it; signing while another goroutine replaces the certificate
// always gives a signature whose token and value agree (run under -race).
func TestReplace(t *testing.T) {
	k := newKeys(t)
	s := &wssec.Signer{Cert: k.rsa.Cert, Key: k.rsa.Key, Now: func() time.Time { return now }}
	sign := func() *wssec.Result {
		t.Helper()
		doc := etree.NewDocument()
		if err := doc.ReadFromString(plain); err != nil {
			t.Fatal(err)
		}
		if err := s.Sign(doc); err != nil {
			t.Fatal(err)
		}
		res, verr := verifier(k).Verify(doc)
		if verr != nil {
			t.Fatalf("a signature made during a replacement does not verify: %v", verr)
		}
		return res
	}
	if !sign().Cert.Equal(k.rsa.Cert) {
		t.Fatal("before: not the configured certificate")
	}
	s.Replace(k.ec.Cert, k.ec.Key)
	if !sign().Cert.Equal(k.ec.Cert) {
		t.Fatal("after: not the replacing certificate")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			if i%2 == 0 {
				s.Replace(k.rsa.Cert, k.rsa.Key)
			} else {
				s.Replace(k.ec.Cert, k.ec.Key)
			}
		}
	}()
	for i := 0; i < 20; i++ {
		sign()
	}
	<-done
}

// TestSignedWhitespace: an envelope whose Body holds a carriage return in
// text and a tab, line feed and carriage return in an attribute verifies
// once written and read again: the writer keeps them as character
// references, which a parser does not normalize.
func TestSignedWhitespace(t *testing.T) {
	k := newKeys(t)
	xml := strings.Replace(plain, "<xb:Name>สมชาย</xb:Name>", "<xb:Name note=\"a&#9;b&#10;c&#13;d\">line 1&#13;\nline 2&#13;</xb:Name>", 1)
	doc := reparse(t, signed(t, k.rsa, xml))
	if _, err := verifier(k).Verify(doc); err != nil {
		t.Fatalf("the envelope as received: %v", err)
	}
	if got := doc.FindElement("//Name"); got == nil || got.Text() != "line 1\r\nline 2\r" || got.SelectAttrValue("note", "") != "a\tb\nc\rd" {
		t.Fatalf("the Name as received: %#v", got)
	}
}

// TestCanonicalAttributeOrder: attributes of different prefixes are
// ordered by namespace URI, not by prefix or local name (libxml2's
// exclusive C14N of the same element).
func TestCanonicalAttributeOrder(t *testing.T) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<xb:Name xmlns:xb="urn:xb" z="1" a="2" xmlns:b="urn:b" b:c="3" xmlns:a="urn:a" a:d="4" xmlns:c="urn:0" c:z="5">x</xb:Name>`); err != nil {
		t.Fatal(err)
	}
	got, err := wssec.ExcC14N(doc.Root(), "")
	want := `<xb:Name xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:0" xmlns:xb="urn:xb" a="2" z="1" c:z="5" a:d="4" b:c="3">x</xb:Name>`
	if err != nil || string(got) != want {
		t.Fatalf("canonical form\n got %s (%v)\nwant %s", got, err, want)
	}
	// The default namespace's declaration comes first (xmllint --exc-c14n
	// of the same element).
	if err := doc.ReadFromString(`<Name xmlns:b="urn:b" b:c="3" z="1" xmlns="urn:d"><b:x a="1" xmlns:a="urn:a" a:q="2"/></Name>`); err != nil {
		t.Fatal(err)
	}
	got, err = wssec.ExcC14N(doc.Root(), "")
	want = `<Name xmlns="urn:d" xmlns:b="urn:b" z="1" b:c="3"><b:x xmlns:a="urn:a" a="1" a:q="2"></b:x></Name>`
	if err != nil || string(got) != want {
		t.Fatalf("canonical form with a default namespace\n got %s (%v)\nwant %s", got, err, want)
	}
}

// TestCheckCredential: a signing key is accepted only with its own
// certificate and of a kind the profile allows.
func TestCheckCredential(t *testing.T) {
	k := newKeys(t)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	issue := func(key crypto.Signer) *x509.Certificate {
		t.Helper()
		c, err := k.ca.IssueSigning("MY:PERKESO", key)
		if err != nil {
			t.Fatal(err)
		}
		return c.Cert
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		key  crypto.Signer
		ok   bool
	}{
		{"ok/rsa", k.rsa.Cert, k.rsa.Key, true},
		{"ok/ecdsa-p256", k.ec.Cert, k.ec.Key, true},
		{"fail/another-certificate", k.rsa.Cert, k.ec.Key, false},
		{"fail/another-key-of-the-kind", k.ec.Cert, issueKey(t), false},
		{"fail/ed25519", issue(ed), ed, false},
		{"fail/ecdsa-p384", issue(p384), p384, false},
		{"fail/rsa-1024", issue(rsa1024), rsa1024, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := wssec.CheckCredential(tc.cert, tc.key); (err == nil) != tc.ok {
				t.Fatalf("CheckCredential = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func issueKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTrustInstitution(t *testing.T) {
	ca, _ := certs.NewCA("agency CA")
	oca, _ := certs.NewCA("another CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	trust := wssec.TrustInstitution(roots, "TH:SSO")
	for _, tc := range []struct {
		name string
		by   *certs.CA
		cn   string
		ok   bool
	}{
		{"ok/the-institution", ca, "TH:SSO", true},
		{"fail/another-institution", ca, "XX:OTHER", false},
		{"fail/another-ca", oca, "TH:SSO", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.by.IssueSigning(tc.cn, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := trust(c.Cert); (err == nil) != tc.ok {
				t.Fatalf("trust: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// decoy adds a header of no one's (namespace urn:x, no mustUnderstand) to
// d's SOAP Header, outside what the signature covers.
// x509Data replaces the signature's KeyInfo with an X509Data holding the
// certificate der, and returns the X509Data.
func x509Data(d *etree.Document, der []byte) *etree.Element {
	ki := find(d, "//KeyInfo")
	for _, c := range ki.ChildElements() {
		ki.RemoveChild(c)
	}
	xd := ki.CreateElement("ds:X509Data")
	xd.CreateElement("ds:X509Certificate").SetText(base64.StdEncoding.EncodeToString(der))
	return xd
}

func decoy(d *etree.Document) *etree.Element {
	x := find(d, "//Header").CreateElement("x:Note")
	x.CreateAttr("xmlns:x", "urn:x")
	return x
}

// TestSignTimestamp: the signed Timestamp is Created at the signer's clock
// and lasts its TTL, at most the 300 s a receiver accepts (the default when
// none is set).
func TestSignTimestamp(t *testing.T) {
	k := newKeys(t)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"ok/default", 0, 300 * time.Second},
		{"ok/shorter", 60 * time.Second, 60 * time.Second},
		{"ok/at-the-bound", 300 * time.Second, 300 * time.Second},
		{"ok/longer-is-cut", 10 * time.Minute, 300 * time.Second},
		{"ok/negative-is-the-default", -time.Second, 300 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(plain); err != nil {
				t.Fatal(err)
			}
			at := now.Add(-time.Hour) // the signer's clock, not the machine's
			s := &wssec.Signer{Cert: k.ec.Cert, Key: k.ec.Key, TTL: tc.ttl, Now: func() time.Time { return at }}
			if err := s.Sign(doc); err != nil {
				t.Fatal(err)
			}
			created, err1 := time.Parse(time.RFC3339, find(doc, "//Created").Text())
			expires, err2 := time.Parse(time.RFC3339, find(doc, "//Expires").Text())
			if err1 != nil || err2 != nil || !created.Equal(at) || expires.Sub(created) != tc.want {
				t.Fatalf("Created %s, Expires %s (%v %v); want Created %s and %s later", created, expires, err1, err2, at, tc.want)
			}
		})
	}
}
