package interop

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

const envelope = `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1">
  <soap:Body>
    <xb:NotifyInjury><xb:Header><xb:MessageId>urn:uuid:5f0c6b1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f</xb:MessageId><xb:Sender>TH:SSO</xb:Sender></xb:Header><xb:Notification><xb:Name>Ahmad Zaki bin Yusof</xb:Name><xb:Place>อำเภอสะเดา จังหวัดสงขลา</xb:Place></xb:Notification></xb:NotifyInjury>
  </soap:Body>
</soap:Envelope>`

type signingKit struct {
	dir, cert, key string
	iss            *certs.Issued
}

func rsaKit(t *testing.T) signingKit {
	dir := t.TempDir()
	ca, _ := certs.NewCA("agency CA")
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	iss, err := ca.IssueSigning("TH:SSO", k)
	if err != nil {
		t.Fatal(err)
	}
	kit := signingKit{dir: dir, cert: filepath.Join(dir, "sign.pem"), key: filepath.Join(dir, "sign.key"), iss: iss}
	if err := certs.WriteFiles(kit.cert, kit.key, iss.Cert, iss.Key); err != nil {
		t.Fatal(err)
	}
	return kit
}

func xmlsec(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("xmlsec1", args...).CombinedOutput()
	return string(out), err
}

// idArgs tells xmlsec1 which attributes are ids (it reads no schema).
var idArgs = []string{"--id-attr:Id", "http://schemas.xmlsoap.org/soap/envelope/:Body",
	"--id-attr:Id", "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd:Timestamp"}

// TestXmlsecVerifiesGateway: an envelope signed by the gateway verifies with
// xmlsec1; a tampered copy does not.
func TestXmlsecVerifiesGateway(t *testing.T) {
	need(t, "xmlsec1")
	kit := rsaKit(t)
	doc := etree.NewDocument()
	if err := doc.ReadFromString(envelope); err != nil {
		t.Fatal(err)
	}
	if err := (&wssec.Signer{Cert: kit.iss.Cert, Key: kit.iss.Key}).Sign(doc); err != nil {
		t.Fatal(err)
	}
	signed, _ := doc.WriteToString()
	good := filepath.Join(kit.dir, "signed.xml")
	if err := os.WriteFile(good, []byte(signed), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--verify", "--pubkey-cert-pem", kit.cert}, idArgs...)
	if out, err := xmlsec(t, append(args, good)...); err != nil {
		t.Fatalf("xmlsec1 rejects the gateway's signature: %v\n%s", err, out)
	}
	bad := filepath.Join(kit.dir, "tampered.xml")
	if err := os.WriteFile(bad, []byte(strings.Replace(signed, "Ahmad Zaki", "Ahmad Zakk", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Refused for its digest, not for some other fault of the call.
	if out, err := xmlsec(t, append(args, bad)...); err == nil || !strings.Contains(string(out), "data and digest do not match") {
		t.Fatalf("xmlsec1 on a tampered envelope: %v\n%s", err, out)
	}
}

// TestGatewayVerifiesXmlsec: an envelope signed by xmlsec1 from a template
// verifies in the gateway; a tampered copy does not.
func TestGatewayVerifiesXmlsec(t *testing.T) {
	need(t, "xmlsec1")
	kit := rsaKit(t)
	signed := xmlsecSign(t, kit, envelope)
	v := &wssec.Verifier{}
	for _, tc := range []struct {
		name string
		xml  string
		ok   bool
	}{
		{"ok/as-signed", string(signed), true},
		{"fail/tampered", strings.Replace(string(signed), "Ahmad Zaki", "Ahmad Zakk", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := wssec.Parse([]byte(tc.xml), wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, verr := v.Verify(doc)
			if tc.ok && verr != nil {
				t.Fatalf("gateway rejects xmlsec1's signature: %v\n%s", verr, tc.xml)
			}
			if !tc.ok && (verr == nil || verr.Code != wssec.CodeSignature) {
				t.Fatalf("gateway: %v", verr)
			}
		})
	}
}

// xmlsecSign signs env with xmlsec1 from a template: a Security header with
// the kit's certificate, a Timestamp, and references to it and to the Body.
func xmlsecSign(t *testing.T, kit signingKit, env string) []byte {
	t.Helper()
	created := time.Now().UTC().Truncate(time.Second)
	tmpl := strings.Replace(env, `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"`,
		`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsu="`+wssec.NSWsu+`" xmlns:wsse="`+wssec.NSWsse+`" xmlns:ds="`+wssec.NSDs+`"`, 1)
	tmpl = strings.Replace(tmpl, "<soap:Body>", `<soap:Header><wsse:Security soap:mustUnderstand="1">`+
		`<wsse:BinarySecurityToken wsu:Id="X509-1" EncodingType="`+wssec.EncodingB64+`" ValueType="`+wssec.ValueTypeX509+`">`+
		base64.StdEncoding.EncodeToString(kit.iss.Cert.Raw)+`</wsse:BinarySecurityToken>`+
		`<wsu:Timestamp wsu:Id="TS-1"><wsu:Created>`+created.Format(time.RFC3339)+`</wsu:Created><wsu:Expires>`+created.Add(5*time.Minute).Format(time.RFC3339)+`</wsu:Expires></wsu:Timestamp>`+
		`<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="`+wssec.AlgExcC14N+`"/><ds:SignatureMethod Algorithm="`+wssec.AlgRSASHA256+`"/>`+
		`<ds:Reference URI="#TS-1"><ds:Transforms><ds:Transform Algorithm="`+wssec.AlgExcC14N+`"/></ds:Transforms><ds:DigestMethod Algorithm="`+wssec.AlgSHA256+`"/><ds:DigestValue/></ds:Reference>`+
		`<ds:Reference URI="#BODY-1"><ds:Transforms><ds:Transform Algorithm="`+wssec.AlgExcC14N+`"/></ds:Transforms><ds:DigestMethod Algorithm="`+wssec.AlgSHA256+`"/><ds:DigestValue/></ds:Reference>`+
		`</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#X509-1" ValueType="`+wssec.ValueTypeX509+`"/></wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature>`+
		`</wsse:Security></soap:Header><soap:Body wsu:Id="BODY-1">`, 1)
	in := filepath.Join(kit.dir, "template.xml")
	out := filepath.Join(kit.dir, "signed.xml")
	if err := os.WriteFile(in, []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--sign", "--privkey-pem", kit.key + "," + kit.cert, "--output", out}, idArgs...)
	if o, err := xmlsec(t, append(args, in)...); err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, o)
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestXmlsecCanonicalForms: the Body's canonical form is what both sides
// sign, so the gateway and xmlsec1 (libxml2's exclusive C14N) must agree on
// it for whatever an agency's Body holds: character references in text and
// attributes, literal whitespace in an attribute (which XML normalizes),
// CDATA, entities, namespaces declared, unused, redeclared, undeclared or
// used only by an attribute, xml:lang, empty elements, comments, Thai and
// characters past the BMP. Each Body is signed by the gateway and verified
// by xmlsec1, and signed by xmlsec1 and verified by the gateway.
func TestXmlsecCanonicalForms(t *testing.T) {
	need(t, "xmlsec1")
	kit := rsaKit(t)
	v := &wssec.Verifier{}
	verifyArgs := append([]string{"--verify", "--pubkey-cert-pem", kit.cert}, idArgs...)
	for _, tc := range []struct{ name, body string }{
		{"ok/char-refs-in-attribute", `<xb:Name note="a&#10;b&#9;c&#13;d">x</xb:Name>`},
		{"ok/literal-whitespace-in-attribute", "<xb:Name note=\"a\tb\nc\r\nd\">x</xb:Name>"},
		{"ok/char-ref-cr-in-text", `<xb:Name>a&#13;b&#9;c</xb:Name>`},
		{"ok/crlf-in-text", "<xb:Name>a\r\nb\rc</xb:Name>"},
		{"ok/cdata", `<xb:Name><![CDATA[a<b>&c]]]]><![CDATA[>]]></xb:Name>`},
		{"ok/entities", `<xb:Name q='a"b&lt;c&gt;d&apos;'>&lt;&gt;&amp;&quot;&apos;</xb:Name>`},
		{"ok/default-namespace", `<Name xmlns="urn:other"><Inner>x</Inner></Name>`},
		{"ok/undeclared-default", `<Outer xmlns="urn:d"><Inner xmlns="">x</Inner></Outer>`},
		{"ok/unused-namespace", `<xb:Name xmlns:u="urn:unused">x</xb:Name>`},
		{"ok/namespace-for-an-attribute", `<xb:Name xmlns:p="urn:p" p:a="1">x</xb:Name>`},
		{"ok/redeclared-namespace", `<xb:Name xmlns:xb="urn:xb-injury:exchange:v1">x</xb:Name>`},
		{"ok/attribute-order", `<xb:Name z="1" a="2" xmlns:b="urn:b" b:c="3" xmlns:a="urn:a" a:d="4">x</xb:Name>`},
		{"ok/xml-lang", `<xb:Name xml:lang="th">x</xb:Name>`},
		{"ok/empty-elements", `<xb:Empty/><xb:Empty2></xb:Empty2><xb:Empty3 a=""/>`},
		{"ok/comment", `<xb:Name>a<!-- c -->b</xb:Name>`},
		{"ok/whitespace-in-tags", "<xb:Name   a = '1'\n\tb=\"2\"  >x</xb:Name  >"},
		{"ok/thai-and-astral", `<xb:Place>อำเภอสะเดา จังหวัดสงขลา 𝄞 😀</xb:Place>`},
		{"ok/char-refs-for-text", `<xb:Place>&#3629;&#x0E33; &#x1F600;</xb:Place>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := strings.Replace(envelope, "<xb:Notification>", "<xb:Notification>"+tc.body, 1)
			if !strings.Contains(env, tc.body) {
				t.Fatal("envelope layout changed")
			}

			doc, err := wssec.Parse([]byte(env), wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := (&wssec.Signer{Cert: kit.iss.Cert, Key: kit.iss.Key}).Sign(doc); err != nil {
				t.Fatal(err)
			}
			signed, _ := doc.WriteToString()
			file := filepath.Join(t.TempDir(), "signed.xml")
			if err := os.WriteFile(file, []byte(signed), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := xmlsec(t, append(verifyArgs, file)...); err != nil {
				t.Errorf("xmlsec1 rejects the gateway's signature: %v\n%s\n%s", err, out, signed)
			}

			doc, err = wssec.Parse(xmlsecSign(t, kit, env), wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if _, verr := v.Verify(doc); verr != nil {
				t.Errorf("the gateway rejects xmlsec1's signature: %v", verr)
			}
		})
	}
}

// TestXmlsecAgreesOnChanges: what the gateway's WS-Security check accepts,
// xmlsec1 verifies too. An envelope signed by xmlsec1 is changed in one
// way each, everywhere: each element removed, repeated, given text, a
// comment or an attribute; each text and attribute value changed. The
// gateway refuses more than xmlsec1 does, on purpose (one Security header,
// exactly the Body and Timestamp referenced, exclusive C14N only, the
// Timestamp's window); it must not accept a change xmlsec1 refuses, nor
// accept one that changes the Body's content.
func TestXmlsecAgreesOnChanges(t *testing.T) {
	need(t, "xmlsec1")
	kit := rsaKit(t)
	signed := xmlsecSign(t, kit, envelope)
	base := etree.NewDocument()
	if err := base.ReadFromBytes(signed); err != nil {
		t.Fatal(err)
	}
	bodyText := func(d *etree.Document) string {
		b := d.FindElement("//Body")
		if b == nil {
			return ""
		}
		c, _ := wssec.Canonical(b)
		return string(c)
	}
	want := bodyText(base)

	type change struct {
		what string
		xml  []byte
	}
	var changes []change
	edit := func(path []int, what string, f func(el *etree.Element)) {
		where, b := changedAt(t, base, path, f)
		changes = append(changes, change{where + " " + what, b})
	}
	var walk func(el *etree.Element, path []int)
	walk = func(el *etree.Element, path []int) {
		path = path[:len(path):len(path)]
		if len(path) > 0 {
			edit(path, "removed", func(el *etree.Element) { el.Parent().RemoveChild(el) })
			edit(path, "repeated", func(el *etree.Element) { el.Parent().InsertChildAt(el.Index(), el.Copy()) })
		}
		edit(path, "with a comment", func(el *etree.Element) { el.InsertChildAt(0, etree.NewComment(" c ")) })
		edit(path, "with an attribute", func(el *etree.Element) { el.CreateAttr("extra", "1") })
		for _, a := range el.Attr {
			key := a.FullKey()
			edit(path, "@"+key+" changed", func(el *etree.Element) { el.CreateAttr(key, a.Value+"x") })
			edit(path, "without @"+key, func(el *etree.Element) { el.RemoveAttr(key) })
		}
		kids := el.ChildElements()
		if len(kids) == 0 {
			edit(path, "text changed", func(el *etree.Element) { el.SetText(el.Text() + "x") })
			edit(path, "text with a space", func(el *etree.Element) { el.SetText(" " + el.Text()) })
			return
		}
		edit(path, "with text", func(el *etree.Element) { el.InsertChildAt(0, etree.NewText("\n  ")) })
		for i, k := range kids {
			walk(k, append(path, i))
		}
	}
	walk(base.Root(), nil)

	v := &wssec.Verifier{Trust: func(c *x509.Certificate) error {
		if !c.Equal(kit.iss.Cert) {
			return errors.New("not the signer's certificate")
		}
		return nil
	}}
	dir := t.TempDir()
	args := append([]string{"--verify", "--pubkey-cert-pem", kit.cert}, idArgs...)
	both, strict := 0, 0
	for i, c := range changes {
		doc, err := wssec.Parse(c.xml, wssec.Limits{})
		if err != nil {
			continue // not a well-formed envelope: neither side sees it
		}
		_, verr := v.Verify(doc)
		if verr != nil {
			strict++
			continue
		}
		file := filepath.Join(dir, fmt.Sprintf("c%04d.xml", i))
		if err := os.WriteFile(file, c.xml, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := xmlsec(t, append(args, file)...); err != nil {
			t.Errorf("%s: the gateway accepts, xmlsec1 refuses:\n%s", c.what, out)
			continue
		}
		if got := bodyText(doc); got != want {
			t.Errorf("%s: accepted with another Body:\n%s", c.what, got)
		}
		both++
	}
	t.Logf("%d changes: %d accepted by the gateway (and xmlsec1), %d refused by the gateway", len(changes), both, strict)
	if both == 0 || strict == 0 {
		t.Fatal("the changes do not test both verdicts")
	}
}
