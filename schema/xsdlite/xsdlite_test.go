package xsdlite

import (
	"os"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func mustRead(t testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t *testing.T) *Schema {
	s, err := Load(mustRead(t, "../agency-soap-v1.xsd"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// doc is an InformationReply with a base64Binary member (Document).
const doc = `<xb:InformationReply xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header><xb:MessageId>m-2</xb:MessageId><xb:InReplyTo>m-1</xb:InReplyTo><xb:CaseId>MY:PERKESO:XB-1</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-04T02:40:12Z</xb:SentAt></xb:Header><xb:Reply><xb:Item><xb:Code>MEDICAL_REPORT</xb:Code><xb:Outcome>PROVIDED</xb:Outcome><xb:Document mediaType="application/pdf" sha256="6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b">QUJDRA==</xb:Document></xb:Item></xb:Reply></xb:InformationReply>`

const ack = `<xb:InjuryAcknowledgement xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header><xb:MessageId>m-2</xb:MessageId><xb:InReplyTo>m-1</xb:InReplyTo><xb:CaseId>MY:PERKESO:XB-1</xb:CaseId><xb:Sender>MY:PERKESO</xb:Sender><xb:Receiver>TH:SSO</xb:Receiver><xb:SentAt>2026-03-04T02:40:12Z</xb:SentAt></xb:Header><xb:ReceivedAt>2026-03-04T02:40:12Z</xb:ReceivedAt></xb:InjuryAcknowledgement>`

func TestValidate(t *testing.T) {
	s := load(t)
	for _, tc := range []struct {
		name, xml, path string
	}{
		{"ok/acknowledgement", ack, ""},
		{"fail/missing-element", strings.Replace(ack, "<xb:Sender>MY:PERKESO</xb:Sender>", "", 1), "/xb:InjuryAcknowledgement/xb:Header/xb:Sender"},
		{"fail/pattern", strings.Replace(ack, "2026-03-04T02:40:12Z</xb:SentAt>", "2026-03-04 02:40:12</xb:SentAt>", 1), "/xb:InjuryAcknowledgement/xb:Header/xb:SentAt"},
		{"fail/unknown-child", strings.Replace(ack, "</xb:Header>", "<xb:Extra>1</xb:Extra></xb:Header>", 1), "/xb:InjuryAcknowledgement/xb:Header/xb:Extra"},
		{"fail/order", strings.Replace(strings.Replace(ack, "<xb:InReplyTo>m-1</xb:InReplyTo>", "", 1), "<xb:MessageId>m-2</xb:MessageId>", "<xb:InReplyTo>m-1</xb:InReplyTo><xb:MessageId>m-2</xb:MessageId>", 1), "/xb:InjuryAcknowledgement/xb:Header/xb:MessageId"},
		{"fail/unknown-root", `<xb:Nope xmlns:xb="urn:xb-injury:exchange:v1"/>`, "/xb:Nope"},
		{"ok/xml-whitespace-between-elements", strings.Replace(ack, "<xb:Header>", "<xb:Header>\n\t \r\n", 1), ""},
		{"fail/no-break-space-between-elements", strings.Replace(ack, "<xb:Header>", "<xb:Header>\u00a0", 1), "/xb:InjuryAcknowledgement/xb:Header"},
		{"ok/base64", doc, ""},
		{"ok/base64-with-whitespace", strings.Replace(doc, "QUJDRA==", "QUJD\n RA = =", 1), ""},
		{"fail/base64-bits-past-the-data", strings.Replace(doc, "QUJDRA==", "QUJDRB==", 1), "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Document[1]"},
		{"fail/base64-other-characters", strings.Replace(doc, "QUJDRA==", "QUJD-RA==", 1), "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Document[1]"},
		{"ok/positive-integer-collapsed", `<xb:FaultDetail xmlns:xb="urn:xb-injury:exchange:v1"><xb:Code>server.busy</xb:Code><xb:RetryAfterSeconds>
  30 </xb:RetryAfterSeconds></xb:FaultDetail>`, ""},
		{"fail/positive-integer-zero", `<xb:FaultDetail xmlns:xb="urn:xb-injury:exchange:v1"><xb:Code>server.busy</xb:Code><xb:RetryAfterSeconds> 0 </xb:RetryAfterSeconds></xb:FaultDetail>`, "/xb:FaultDetail/xb:RetryAfterSeconds"},
		{"ok/default-namespace", strings.NewReplacer("xb:", "", "xmlns:xb=", "xmlns=").Replace(ack), ""},
		{"fail/unknown-attribute", strings.Replace(doc, ` sha256="`, ` x="`, 1), "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Document[1]/@x"},
		{"fail/required-attribute-absent", strings.Replace(doc, ` mediaType="application/pdf"`, "", 1), "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Document[1]/@mediaType"},
		{"fail/attribute-in-a-namespace", strings.Replace(doc, ` mediaType="`, ` xb:mediaType="`, 1), "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Document[1]/@mediaType"},
		{"fail/base64-no-break-space", strings.Replace(doc, "QUJDRA==", "QUJD\u00a0RA==", 1), "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Document[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := etree.NewDocument()
			if err := d.ReadFromString(tc.xml); err != nil {
				t.Fatal(err)
			}
			err := s.Validate(d.Root(), "xb")
			if tc.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Path != tc.path {
				t.Fatalf("Validate = %v, want an error at %s", err, tc.path)
			}
		})
	}
}

// FuzzValidate: an agency's message is foreign input. Whatever the
// document, Validate does not panic, and its verdict on a valid document
// survives writing it out and reading it again.
func FuzzValidate(f *testing.F) {
	s, err := Load(mustRead(f, "../agency-soap-v1.xsd"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ack)
	f.Add(doc)
	f.Fuzz(func(t *testing.T, x string) {
		d := etree.NewDocument()
		d.ReadSettings.Permissive = false
		if d.ReadFromString(x) != nil || d.Root() == nil {
			return
		}
		if s.Validate(d.Root(), "xb") != nil {
			return
		}
		out, err := d.WriteToString()
		if err != nil {
			t.Fatal(err)
		}
		again := etree.NewDocument()
		if err := again.ReadFromString(out); err != nil {
			t.Fatalf("a valid document written out does not read: %v\n%q", err, out)
		}
		if err := s.Validate(again.Root(), "xb"); err != nil {
			t.Fatalf("valid, then invalid once written out: %v\n%q\n%q", err, x, out)
		}
	})
}

// TestPatternDialect: a pattern construct XML Schema reads otherwise than
// Go is refused when the schema loads; the agency schema's kinds pass.
func TestPatternDialect(t *testing.T) {
	for _, tc := range []struct {
		name, pattern string
		ok            bool
	}{
		{"ok/classes-and-quantifiers", `[A-Z]{2}:[A-Z0-9_]{2,20}`, true},
		{"ok/escaped-dot", `(0|[1-9][0-9]{0,8})\.[0-9]{2}`, true},
		{"ok/escaped-hyphen-in-class", `[A-Za-z0-9:._\-]{1,128}`, true},
		{"ok/negated-class", `[^ab]+`, true},
		{"fail/dot", `a.b`, false},
		{"fail/digit", `\d{4}`, false},
		{"fail/space", `a\sb`, false},
		{"fail/word", `\w+`, false},
		{"fail/name-char", `\i\c*`, false},
		{"fail/category", `\p{Lu}`, false},
		{"fail/caret", `a^b`, false},
		{"fail/dollar", `a$`, false},
		{"fail/subtraction", `[a-z-[aeiou]]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xsd := `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" xmlns:t="urn:t">
<xs:simpleType name="T"><xs:restriction base="xs:string"><xs:pattern value="` + tc.pattern + `"/></xs:restriction></xs:simpleType>
<xs:element name="e" type="t:T"/></xs:schema>`
			_, err := Load([]byte(xsd))
			if tc.ok && err != nil || !tc.ok && (err == nil || !strings.Contains(err.Error(), "not supported")) {
				t.Fatalf("Load: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestLengths: minLength and maxLength count code points, both bounds
// included (the example NotifyInjury's Person/Name, an xb:Text100).
func TestLengths(t *testing.T) {
	s := load(t)
	env := etree.NewDocument()
	if err := env.ReadFromBytes(mustRead(t, "../../adapters/agencysoap/testdata/example-10.1.request.xml")); err != nil {
		t.Fatal(err)
	}
	const path = "/xb:NotifyInjury/xb:Notification/xb:Person/xb:Name"
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"ok/one", "A", true},
		{"ok/hundred", strings.Repeat("a", 100), true},
		{"ok/hundred-thai-code-points", strings.Repeat("ก", 100), true}, // 300 bytes
		{"fail/empty", "", false},
		{"fail/hundred-and-one", strings.Repeat("a", 101), false},
		{"fail/hundred-and-one-thai-code-points", strings.Repeat("ก", 101), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := env.FindElement("//NotifyInjury") // in its envelope, which declares its namespaces
			body.FindElement("./Notification/Person/Name").SetText(tc.value)
			err := s.Validate(body, "xb")
			if tc.ok != (err == nil) || err != nil && (err.Path != path || err.Reason != "length out of range") {
				t.Fatalf("Validate = %v, want ok %v (else %q at %s)", err, tc.ok, "length out of range", path)
			}
		})
	}
}
