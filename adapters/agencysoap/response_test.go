package agencysoap

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

const (
	reqMID  = "urn:uuid:1b2c3d4e-0000-4000-8000-000000000001"
	caseID  = "TH:SSO:2569-000123"
	pdfData = "%PDF-1.4 sick leave certificate"
)

// element parses one Body child given without an envelope.
func element(t testing.TB, xml string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	return d.Root()
}

func requestInformation(t testing.TB) *etree.Element {
	return element(t, `<xb:RequestInformation xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header>
<xb:MessageId>`+reqMID+`</xb:MessageId><xb:CaseId>`+caseID+`</xb:CaseId>
<xb:Sender>MY:PERKESO</xb:Sender><xb:Receiver>TH:SSO</xb:Receiver><xb:SentAt>2026-03-10T01:00:00Z</xb:SentAt></xb:Header>
<xb:Request><xb:Item><xb:Code>WAGES_6M</xb:Code></xb:Item><xb:Item><xb:Code>SICK_LEAVE_PERIODS</xb:Code></xb:Item>
<xb:Item><xb:Code>MEDICAL_REPORT</xb:Code></xb:Item></xb:Request></xb:RequestInformation>`)
}

// reply builds an InformationReply to requestInformation; edit rewrites
// its text before parsing, to break one rule at a time.
func reply(t testing.TB, edit func(string) string) *etree.Element {
	sum := sha256.Sum256([]byte(pdfData))
	x := `<xb:InformationReply xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header>
<xb:MessageId>urn:uuid:1b2c3d4e-0000-4000-8000-000000000002</xb:MessageId><xb:InReplyTo>` + reqMID + `</xb:InReplyTo>
<xb:CaseId>` + caseID + `</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver>
<xb:SentAt>2026-03-10T01:00:02Z</xb:SentAt></xb:Header><xb:Reply>
<xb:Item><xb:Code>WAGES_6M</xb:Code><xb:Outcome>PROVIDED</xb:Outcome><xb:Month period="2569-01" cal="BE" currency="THB">15000.00</xb:Month></xb:Item>
<xb:Item><xb:Code>SICK_LEAVE_PERIODS</xb:Code><xb:Outcome>PROVIDED</xb:Outcome><xb:SickLeave><xb:From cal="BE">2569-03-03</xb:From><xb:To cal="BE">2569-03-09</xb:To></xb:SickLeave>
<xb:Document mediaType="application/pdf" sha256="` + hex.EncodeToString(sum[:]) + `">` + base64.StdEncoding.EncodeToString([]byte(pdfData)) + `</xb:Document></xb:Item>
<xb:Item><xb:Code>MEDICAL_REPORT</xb:Code><xb:Outcome>TO_FOLLOW</xb:Outcome><xb:ExpectedBy cal="CE">2026-03-24</xb:ExpectedBy></xb:Item>
</xb:Reply></xb:InformationReply>`
	if edit != nil {
		x = edit(x)
	}
	return element(t, x)
}

// swapFirstItems answers the first two requested items in the wrong order,
// each item schema-valid.
func swapFirstItems(s string) string {
	a := strings.Index(s, "<xb:Item><xb:Code>WAGES_6M")
	b := strings.Index(s, "<xb:Item><xb:Code>SICK_LEAVE_PERIODS")
	c := strings.Index(s, "<xb:Item><xb:Code>MEDICAL_REPORT")
	return s[:a] + s[b:c] + s[a:b] + s[c:]
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func TestCheckResponse(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "example-10.2.response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	ack := body(t, string(b))
	notify := body(t, example(t))
	tests := []struct {
		name      string
		req, resp *etree.Element
		code, loc string // empty: no problem
	}{
		{"ok/injury-acknowledgement", notify, ack, "", ""},
		{"ok/information-reply", requestInformation(t), reply(t, nil), "", ""},
		{"fail/wrong-response", requestInformation(t), ack, CodeSchema, "/xb:InformationReply"},
		{"fail/schema", requestInformation(t), reply(t, replace(`<xb:Outcome>PROVIDED`, `<xb:Outcome>MAYBE`)), CodeSchema,
			"/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Outcome"},
		{"fail/in-reply-to", requestInformation(t), reply(t, replace(reqMID+`</xb:InReplyTo>`, `urn:uuid:1b2c3d4e-0000-4000-8000-000000000009</xb:InReplyTo>`)),
			CodeContent, "/xb:InformationReply/xb:Header/xb:InReplyTo"},
		{"fail/case-id", requestInformation(t), reply(t, replace(caseID, "TH:SSO:2569-000999")), CodeContent, "/xb:InformationReply/xb:Header/xb:CaseId"},
		{"fail/item-count", requestInformation(t), reply(t, func(s string) string {
			i := strings.Index(s, "<xb:Item><xb:Code>MEDICAL_REPORT")
			return s[:i] + s[strings.Index(s, "</xb:Reply>"):]
		}), CodeContent, "/xb:InformationReply/xb:Reply"},
		{"fail/item-order", requestInformation(t), reply(t, swapFirstItems), CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Code"},
		{"fail/month-on-other-code", requestInformation(t), reply(t, replace(`<xb:Outcome>TO_FOLLOW</xb:Outcome>`,
			`<xb:Outcome>TO_FOLLOW</xb:Outcome><xb:Month period="2569-01" cal="BE" currency="THB">1.00</xb:Month>`)),
			CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[3]/xb:Month[1]"},
		{"fail/sick-leave-on-other-code", requestInformation(t), reply(t, replace(`currency="THB">15000.00</xb:Month>`,
			`currency="THB">15000.00</xb:Month><xb:SickLeave><xb:From cal="CE">2026-03-03</xb:From><xb:To cal="CE">2026-03-04</xb:To></xb:SickLeave>`)),
			CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:SickLeave[1]"},
		{"fail/expected-by-missing", requestInformation(t), reply(t, replace(`<xb:ExpectedBy cal="CE">2026-03-24</xb:ExpectedBy>`, ``)),
			CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[3]/xb:ExpectedBy"},
		{"fail/expected-by-not-to-follow", requestInformation(t), reply(t, replace(`<xb:Outcome>TO_FOLLOW`, `<xb:Outcome>NOT_HELD`)),
			CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[3]/xb:ExpectedBy"},
		{"fail/document-hash", requestInformation(t), reply(t, replace(base64.StdEncoding.EncodeToString([]byte(pdfData)),
			base64.StdEncoding.EncodeToString([]byte(pdfData+"!")))), CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[2]/xb:Document[1]"},
		{"ok/document-of-5-mib", requestInformation(t), reply(t, documentOf(maxDocument)), "", ""},
		{"fail/document-over-5-mib", requestInformation(t), reply(t, documentOf(maxDocument+1)), CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[2]/xb:Document[1]"},
		{"fail/sick-leave-not-a-date", requestInformation(t), reply(t, replace(`<xb:To cal="BE">2569-03-09`, `<xb:To cal="BE">2568-02-29`)),
			CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[2]/xb:SickLeave[1]/xb:To"},
		{"fail/month-before-1900", requestInformation(t), reply(t, replace(`period="2569-01" cal="BE"`, `period="1899-12" cal="CE"`)),
			CodeContent, "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Month[1]"},
		{"ok/leap-day-by-the-ce-year", requestInformation(t), reply(t, replace(`<xb:ExpectedBy cal="CE">2026-03-24`, `<xb:ExpectedBy cal="BE">2567-02-29`)), "", ""},
		{"fail/ack-without-case-id", notify, body(t, strings.Replace(string(b), "<xb:CaseId>MY:PERKESO:XB-2026-000731</xb:CaseId>", "", 1)),
			CodeContent, "/xb:InjuryAcknowledgement/xb:Header/xb:CaseId"},
		{"fail/ack-case-id-of-another-institution", notify, body(t, strings.Replace(string(b), "<xb:CaseId>MY:PERKESO:", "<xb:CaseId>TH:SSO:", 1)),
			CodeContent, "/xb:InjuryAcknowledgement/xb:Header/xb:CaseId"},
		{"fail/sender-not-the-institution-asked", requestInformation(t), reply(t, replace(`<xb:Sender>TH:SSO</xb:Sender>`, `<xb:Sender>BN:SPK</xb:Sender>`)),
			"client.sender.mismatch", "/xb:InformationReply/xb:Header/xb:Sender"},
		{"fail/receiver-not-the-institution-asking", requestInformation(t), reply(t, replace(`<xb:Receiver>MY:PERKESO</xb:Receiver>`, `<xb:Receiver>TH:SSO</xb:Receiver>`)),
			"client.receiver.unknown", "/xb:InformationReply/xb:Header/xb:Receiver"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := CheckResponse(tc.req, tc.resp)
			switch {
			case tc.code == "" && p != nil:
				t.Fatalf("unexpected problem %+v", *p)
			case tc.code != "" && p == nil:
				t.Fatal("no problem found")
			case p != nil && (p.Code != tc.code || p.Location != tc.loc):
				t.Fatalf("got %s at %s (%s), want %s at %s", p.Code, p.Location, p.Reason, tc.code, tc.loc)
			}
		})
	}
	// The wrong answer's problem names what came instead, and no answer
	// (an empty Body) as nothing.
	for _, tc := range []struct {
		resp *etree.Element
		want string
	}{{ack, "is answered with InformationReply, not InjuryAcknowledgement"}, {nil, "is answered with InformationReply, not nothing"}} {
		if p := CheckResponse(requestInformation(t), tc.resp); p == nil || !strings.HasSuffix(p.Reason, tc.want) {
			t.Fatalf("%+v, want a reason ending %q", p, tc.want)
		}
	}
}

// FuzzCheckResponse feeds arbitrary answers to a RequestInformation: the
// check never panics, and what it accepts is an InformationReply.
func FuzzCheckResponse(f *testing.F) {
	for _, edit := range []func(string) string{nil, swapFirstItems, replace(`<xb:Outcome>TO_FOLLOW`, `<xb:Outcome>NOT_HELD`)} {
		d := etree.NewDocument()
		d.SetRoot(reply(f, edit))
		s, _ := d.WriteToString()
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x string) {
		d := etree.NewDocument()
		d.ReadSettings.Permissive = false
		if d.ReadFromString(x) != nil || d.Root() == nil {
			return
		}
		if CheckResponse(requestInformation(t), d.Root()) == nil && d.Root().Tag != "InformationReply" {
			t.Fatalf("accepted a %s", d.Root().Tag)
		}
	})
}

// documentOf replaces the reply's document with one of n bytes, and its
// sha256 with the new document's.
func documentOf(n int) func(string) string {
	return func(s string) string {
		doc := bytes.Repeat([]byte("%"), n)
		was, now := sha256.Sum256([]byte(pdfData)), sha256.Sum256(doc)
		return strings.NewReplacer(base64.StdEncoding.EncodeToString([]byte(pdfData)), base64.StdEncoding.EncodeToString(doc),
			hex.EncodeToString(was[:]), hex.EncodeToString(now[:])).Replace(s)
	}
}
