package agencysoap

import (
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// notifyDecision builds a NotifyDecision; edit rewrites its text before
// parsing, to break one rule at a time.
func notifyDecision(t testing.TB, edit func(string) string) string {
	x := `<xb:NotifyDecision xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header>
<xb:MessageId>urn:uuid:1b2c3d4e-0000-4000-8000-000000000003</xb:MessageId><xb:CaseId>` + caseID + `</xb:CaseId>
<xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-20T01:00:00Z</xb:SentAt></xb:Header>
<xb:Decision><xb:Subject>PERMANENT_DISABLEMENT</xb:Subject><xb:Outcome>PARTIAL</xb:Outcome>
<xb:DecisionDate cal="BE">2569-03-20</xb:DecisionDate><xb:LegalBasis>Workmen's Compensation Act B.E. 2537</xb:LegalBasis>
<xb:PermanentIncapacityPct>30</xb:PermanentIncapacityPct><xb:AppealBy cal="CE">2026-04-20</xb:AppealBy></xb:Decision></xb:NotifyDecision>`
	if edit != nil {
		x = edit(x)
	}
	return x
}

func TestCheckCaseMessage(t *testing.T) {
	ri := `<xb:RequestInformation xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header>
<xb:MessageId>` + reqMID + `</xb:MessageId><xb:CaseId>` + caseID + `</xb:CaseId>
<xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-10T01:00:00Z</xb:SentAt></xb:Header>
<xb:Request><xb:Item><xb:Code>WAGES_6M</xb:Code></xb:Item><xb:ReplyBy cal="BE">2569-03-24</xb:ReplyBy></xb:Request></xb:RequestInformation>`
	tests := []struct {
		name, xml string
		loc       string // empty: no problem
	}{
		{"ok/request-information", ri, ""},
		{"ok/decision", notifyDecision(t, nil), ""},
		{"ok/leap-day-by-the-ce-year", notifyDecision(t, replace(`cal="BE">2569-03-20`, `cal="BE">2567-02-29`)), ""},
		{"ok/no-pct", notifyDecision(t, func(s string) string {
			return replace(`<xb:PermanentIncapacityPct>30</xb:PermanentIncapacityPct>`, ``)(replace(`PERMANENT_DISABLEMENT`, `CASH_BENEFITS`)(s))
		}), ""},
		{"fail/reply-by-not-a-date", replace(`cal="BE">2569-03-24`, `cal="BE">2568-02-29`)(ri), "/xb:RequestInformation/xb:Request/xb:ReplyBy"},
		{"fail/decision-date-not-a-date", notifyDecision(t, replace(`cal="BE">2569-03-20`, `cal="CE">2026-02-30`)), "/xb:NotifyDecision/xb:Decision/xb:DecisionDate"},
		{"fail/appeal-by-after-2100", notifyDecision(t, replace(`cal="CE">2026-04-20`, `cal="BE">2644-01-01`)), "/xb:NotifyDecision/xb:Decision/xb:AppealBy"},
		{"fail/appeal-by-unknown-calendar", notifyDecision(t, replace(`cal="CE">2026-04-20`, `cal="AH">1447-10-01`)), "/xb:NotifyDecision/xb:Decision/xb:AppealBy"},
		{"fail/pct-on-other-subject", notifyDecision(t, replace(`PERMANENT_DISABLEMENT`, `CASH_BENEFITS`)), "/xb:NotifyDecision/xb:Decision/xb:PermanentIncapacityPct"},
		{"fail/first-in-document-order", notifyDecision(t, func(s string) string {
			return replace(`cal="BE">2569-03-20`, `cal="CE">2026-02-30`)(replace(`PERMANENT_DISABLEMENT`, `CASH_BENEFITS`)(s))
		}), "/xb:NotifyDecision/xb:Decision/xb:DecisionDate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			el := element(t, tc.xml)
			if xs, err := schema.AgencySOAP(); err != nil {
				t.Fatal(err)
			} else if verr := xs.Validate(el, "xb"); verr != nil && tc.name != "fail/appeal-by-unknown-calendar" {
				t.Fatalf("the case is not schema-valid: %s at %s", verr.Reason, verr.Path)
			}
			p := CheckCaseMessage(el)
			switch {
			case tc.loc == "" && p != nil:
				t.Fatalf("unexpected problem %+v", *p)
			case tc.loc != "" && p == nil:
				t.Fatal("no problem found")
			case p != nil && (p.Code != CodeContent || p.Location != tc.loc):
				t.Fatalf("got %s at %s (%s), want %s at %s", p.Code, p.Location, p.Reason, CodeContent, tc.loc)
			}
		})
	}
}

// FuzzCheckCaseMessage feeds arbitrary Body children through the schema
// and, for one the schema passes, the case message's content rules: they
// may not panic, and what they pass has real dates only and a
// PermanentIncapacityPct only in a decision on permanent disablement.
func FuzzCheckCaseMessage(f *testing.F) {
	f.Add(notifyDecision(f, nil))
	f.Add(notifyDecision(f, replace(`cal="BE">2569-03-20`, `cal="BE">2568-02-29`)))
	f.Add(`<xb:RequestInformation xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header><xb:MessageId>m-1</xb:MessageId><xb:CaseId>` + caseID +
		`</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-10T01:00:00Z</xb:SentAt></xb:Header>` +
		`<xb:Request><xb:Item><xb:Code>WAGES_6M</xb:Code></xb:Item><xb:ReplyBy cal="BE">2569-03-24</xb:ReplyBy></xb:Request></xb:RequestInformation>`)
	xs, err := schema.AgencySOAP()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, x string) {
		d := etree.NewDocument()
		d.ReadSettings.Permissive = false
		if d.ReadFromString(x) != nil || d.Root() == nil || xs.Validate(d.Root(), "xb") != nil {
			return
		}
		if CheckCaseMessage(d.Root()) != nil {
			return
		}
		for _, el := range d.Root().FindElements("//*[@cal]") {
			if _, ok := mapping.CalDate(strings.TrimSpace(el.Text()), el.SelectAttrValue("cal", "")); !ok {
				t.Fatalf("passed %s %q", el.Tag, el.Text())
			}
		}
		if d.FindElement("//PermanentIncapacityPct") != nil && d.FindElement("//Decision/Subject").Text() != "PERMANENT_DISABLEMENT" {
			t.Fatal("passed a PermanentIncapacityPct on another subject")
		}
	})
}
