package xsdlite

import (
	"os"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

func load(t *testing.T) *Schema {
	b, err := os.ReadFile("../agency-soap-v1.xsd")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

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
