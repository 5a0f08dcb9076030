package agencysoap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// source is the example's message: §10.1 received at 02:40:12 UTC.
var source = adaptertest.Source{Format: Format, ReceivedAt: time.Date(2026, 3, 4, 2, 40, 12, 0, time.UTC), Rates: mapping.ExampleRates}

// body returns the Body child of an envelope (the example's security header
// holds placeholders; signatures are tested in wssec and the server).
func body(t testing.TB, xml string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	b := d.FindElement("//Body")
	if b == nil {
		t.Fatal("no Body")
	}
	c := b.ChildElements()[0]
	xs, err := schema.AgencySOAP()
	if err != nil {
		t.Fatal(err)
	}
	if err := xs.Validate(c, "xb"); err != nil {
		t.Fatalf("schema: %v", err)
	}
	return c
}

func example(t testing.TB) string {
	b, err := os.ReadFile(filepath.Join("testdata", "example-10.1.request.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExample maps §10.1 to exactly the record of §10.3, then to the golden file.
func TestExample(t *testing.T) {
	n := ReadNotifyInjury(body(t, example(t)))
	if p := n.First(); p != nil {
		t.Fatalf("problem: %+v", p)
	}
	rec, err := n.Canonical(source.ReceivedAt, "MY:PERKESO:XB-2026-000731", source.Rates)
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.CheckRecord(t, rec, source)
	got, _ := json.MarshalIndent(rec, "", "  ")
	got = append(got, '\n')
	adaptertest.MatchSpec(t, filepath.Join("testdata", "example-10.3.expect.json"), got, true)
	adaptertest.Golden(t, filepath.Join("testdata", "example-10.1.golden.json"), got)
}

func TestContentRules(t *testing.T) {
	ex := example(t)
	const mykad = `<xb:ForeignId scheme="MY_NRIC" country="MY">910716025347</xb:ForeignId>`
	tests := []struct {
		name, old, new, loc string
	}{
		{"ok/example", "", "", ""},
		{"fail/C2-th-pid", "6900100123458", "6900100123457", "/xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId"},
		{"fail/C2-mykad-birth", "910716025347", "910717025347", "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[1]"},
		{"fail/C2-country", `scheme="TH_PID" country="TH"`, `scheme="TH_PID" country="MY"`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId"},
		{"fail/C2-mykad-digits", "910716025347", "91071602534", "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[1]"},
		{"fail/C2-mykad-place-of-birth", "910716025347", "910716005347", "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[1]"},
		{"fail/C2-mykad-sex", "<xb:Sex>M</xb:Sex>", "<xb:Sex>F</xb:Sex>", "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[1]"},
		{"ok/C2-passport", mykad, mykad + `<xb:ForeignId scheme="PASSPORT" country="MY">A12345678</xb:ForeignId>`, ""},
		{"fail/C2-passport", mykad, mykad + `<xb:ForeignId scheme="PASSPORT" country="MY">a1234</xb:ForeignId>`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[2]"},
		{"ok/C2-sg-nric", mykad, mykad + `<xb:ForeignId scheme="SG_NRIC" country="SG">S1234567D</xb:ForeignId>`, ""},
		{"fail/C2-sg-nric", mykad, mykad + `<xb:ForeignId scheme="SG_NRIC" country="SG">S1234567A</xb:ForeignId>`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[2]"},
		{"ok/C2-sg-fin", mykad, mykad + `<xb:ForeignId scheme="SG_FIN" country="SG">G5123456T</xb:ForeignId>`, ""},
		{"fail/C2-sg-fin", mykad, mykad + `<xb:ForeignId scheme="SG_FIN" country="SG">G5123456X</xb:ForeignId>`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[2]"},
		{"ok/C2-bn-ic", mykad, mykad + `<xb:ForeignId scheme="BN_IC" country="BN">01-234567</xb:ForeignId>`, ""},
		{"fail/C2-bn-ic", mykad, mykad + `<xb:ForeignId scheme="BN_IC" country="BN">01234567</xb:ForeignId>`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[2]"},
		{"fail/C2-sg-nric-country", mykad, mykad + `<xb:ForeignId scheme="SG_NRIC" country="MY">S1234567D</xb:ForeignId>`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[2]"},
		{"fail/C3-scheme-twice", mykad, mykad + `<xb:ForeignId scheme="MY_NRIC" country="MY">910716025347</xb:ForeignId>`, "/xb:NotifyInjury/xb:Notification/xb:Person"},
		{"fail/C3-no-mykad-or-passport", `<xb:ForeignId scheme="MY_NRIC" country="MY">910716025347</xb:ForeignId>`, "", "/xb:NotifyInjury/xb:Notification/xb:Person"},
		{"fail/C1-leap-year-BE", `<xb:Date cal="BE">2569-03-02</xb:Date>`, `<xb:Date cal="BE">2568-02-29</xb:Date>`, "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Date"},
		{"fail/C4-age", `<xb:BirthDate cal="BE">2534-07-16</xb:BirthDate>`, `<xb:BirthDate cal="BE">2558-07-16</xb:BirthDate>`, "/xb:NotifyInjury/xb:Notification/xb:Person/xb:ForeignId[1]"},
		{"fail/C5-zone", "<xb:Zone>Asia/Bangkok</xb:Zone>", "<xb:Zone>Asia/Nowhere</xb:Zone>", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Zone"},
		{"fail/C6-future", "<xb:Time>08:40</xb:Time>", "<xb:Time>23:40</xb:Time>", ""},
		{"fail/C5-time-the-clocks-skip", "<xb:Date cal=\"BE\">2569-03-02</xb:Date>\n          <xb:Time>08:40</xb:Time>\n          <xb:Zone>Asia/Bangkok</xb:Zone>",
			"<xb:Date cal=\"BE\">2568-03-09</xb:Date>\n          <xb:Time>02:30</xb:Time>\n          <xb:Zone>America/New_York</xb:Zone>", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Time"},
		// C6 reads Time when given: not with a Time the clocks skip, though the date is after SentAt's.
		{"fail/C6-not-after-a-time-the-clocks-skip", "<xb:Date cal=\"BE\">2569-03-02</xb:Date>\n          <xb:Time>08:40</xb:Time>\n          <xb:Zone>Asia/Bangkok</xb:Zone>",
			"<xb:Date cal=\"BE\">2569-03-08</xb:Date>\n          <xb:Time>02:30</xb:Time>\n          <xb:Zone>America/New_York</xb:Zone>", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Time"},
		{"fail/C7-commuting-without-leg", "<xb:Category>WORK</xb:Category>", "<xb:Category>COMMUTING</xb:Category>", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Category"},
		{"fail/C7-leg-without-commuting", "<xb:Narrative lang=\"th\">", "<xb:CommutingLeg><xb:Direction>TO_WORK</xb:Direction><xb:Segment>WORK_SIDE</xb:Segment><xb:Mode>MOTORCYCLE</xb:Mode></xb:CommutingLeg><xb:Narrative lang=\"th\">", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:CommutingLeg"},
		{"ok/C7-leg-with-commuting", "<xb:Narrative lang=\"th\">", "<xb:CommutingLeg><xb:Direction>TO_WORK</xb:Direction><xb:Segment>WORK_SIDE</xb:Segment><xb:Mode>MOTORCYCLE</xb:Mode></xb:CommutingLeg><xb:Narrative lang=\"th\">", ""},
		{"fail/C5-nationality-unassigned", "<xb:Nationality>MY</xb:Nationality>", "<xb:Nationality>XK</xb:Nationality>", "/xb:NotifyInjury/xb:Notification/xb:Person/xb:Nationality"},
		{"fail/C5-employer-country-unassigned", "<xb:Country>TH</xb:Country>\n        </xb:Employer>", "<xb:Country>QQ</xb:Country>\n        </xb:Employer>", "/xb:NotifyInjury/xb:Notification/xb:Employer/xb:Country"},
		{"fail/C5-accident-country-unassigned", "<xb:Country>TH</xb:Country>\n          <xb:Place>", "<xb:Country>AA</xb:Country>\n          <xb:Place>", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Country"},
		{"fail/C8-code", `<xb:Nature list="TH_SSO">203</xb:Nature>`, `<xb:Nature list="TH_SSO">142</xb:Nature>`, "/xb:NotifyInjury/xb:Notification/xb:Injury[1]/xb:Nature"},
		{"fail/C9-fatal-without-date", "<xb:Fatal>false</xb:Fatal>", "<xb:Fatal>true</xb:Fatal>", "/xb:NotifyInjury/xb:Notification/xb:Outcome/xb:Fatal"},
		// C9's "date of SentAt" is in the accident's Zone, as C6's: sent at
		// 03:00 Bangkok time on 4 March (20:00 UTC on the 3rd), a death on
		// the 4th is not after it, one on the 5th is.
		{"ok/C9-death-on-the-day-of-SentAt-in-its-zone", "<xb:Fatal>false</xb:Fatal>", `<xb:Fatal>true</xb:Fatal><xb:DateOfDeath cal="CE">2026-03-04</xb:DateOfDeath>`, ""},
		{"fail/C9-death-after-the-day-of-SentAt-in-its-zone", "<xb:Fatal>false</xb:Fatal>", `<xb:Fatal>true</xb:Fatal><xb:DateOfDeath cal="CE">2026-03-05</xb:DateOfDeath>`,
			"/xb:NotifyInjury/xb:Notification/xb:Outcome/xb:DateOfDeath"},
		{"fail/C10-before-accident", `<xb:From cal="BE">2569-03-02</xb:From>`, `<xb:From cal="BE">2569-03-01</xb:From>`, "/xb:NotifyInjury/xb:Notification/xb:Outcome/xb:SickLeave[1]"},
		{"fail/C11-employer", ">9000123456<", ">900012345<", "/xb:NotifyInjury/xb:Notification/xb:Employer/xb:RegistrationId"},
		{"fail/C12-status-date", `<xb:StatusDate cal="BE">2569-03-03</xb:StatusDate>`, `<xb:StatusDate cal="BE">2569-03-01</xb:StatusDate>`, "/xb:NotifyInjury/xb:Notification/xb:LocalClaim/xb:StatusDate"},
		{"fail/H1-case-id", "<xb:Sender>TH:SSO</xb:Sender>", "<xb:CaseId>MY:PERKESO:X-1</xb:CaseId><xb:Sender>TH:SSO</xb:Sender>", "/xb:NotifyInjury/xb:Header/xb:CaseId"},
		{"fail/first-in-document-order", "<xb:Zone>Asia/Bangkok</xb:Zone>", "<xb:Zone>Asia/Nowhere</xb:Zone>", "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := ex
			if tc.old != "" {
				if !strings.Contains(x, tc.old) {
					t.Fatalf("example has no %q", tc.old)
				}
				x = strings.Replace(x, tc.old, tc.new, 1)
			}
			if tc.name == "fail/first-in-document-order" {
				x = strings.Replace(x, "6900100123458", "6900100123457", 1) // an earlier element breaks C2 too
				tc.loc = "/xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId"
			}
			if strings.Contains(tc.name, "/C9-death-") {
				x = strings.Replace(x, "<xb:SentAt>2026-03-04T02:40:11Z</xb:SentAt>", "<xb:SentAt>2026-03-03T20:00:00Z</xb:SentAt>", 1)
			}
			if tc.name == "ok/C7-leg-with-commuting" {
				x = strings.Replace(x, "<xb:Category>WORK</xb:Category>", "<xb:Category>COMMUTING</xb:Category>", 1)
			}
			if tc.name == "fail/C6-future" {
				x = strings.Replace(x, "2569-03-02</xb:Date>", "2569-03-04</xb:Date>", 1)
				tc.loc = "/xb:NotifyInjury/xb:Notification/xb:Accident/xb:Date"
			}
			p := ReadNotifyInjury(body(t, x)).First()
			if tc.loc == "" {
				if p != nil {
					t.Fatalf("problem %+v", p)
				}
				return
			}
			if p == nil || p.Location != tc.loc || p.Code != CodeContent {
				t.Fatalf("problem %+v, want %s", p, tc.loc)
			}
		})
	}
}

// FuzzReadNotifyInjury feeds arbitrary NotifyInjury bodies through what the
// SOAP endpoint does with a verified one: the agency schema's check (on any
// XML), then, for a body the schema passes, the content rules. Neither may
// panic, and a notification without a problem must map to a record that
// passes the canonical schema (the endpoint would otherwise answer
// server.internal to an agency that sent nothing wrong).
func FuzzReadNotifyInjury(f *testing.F) {
	ex := example(f)
	for _, edit := range [][2]string{{}, {"<xb:Category>WORK</xb:Category>", "<xb:Category>COMMUTING</xb:Category>"},
		{"<xb:Fatal>false</xb:Fatal>", "<xb:Fatal>true</xb:Fatal>"}, {"6900100123458", "6900100123457"}} {
		c := body(f, strings.Replace(ex, edit[0], edit[1], 1)).Copy()
		c.CreateAttr("xmlns:xb", NS) // declared on the envelope it was cut from
		d := etree.NewDocument()
		d.SetRoot(c)
		s, _ := d.WriteToString()
		f.Add(s)
	}
	xs, err := schema.AgencySOAP()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, x string) {
		d := etree.NewDocument()
		d.ReadSettings.Permissive = false
		if d.ReadFromString(x) != nil || d.Root() == nil {
			return
		}
		if xs.Validate(d.Root(), "xb") != nil {
			return
		}
		n := ReadNotifyInjury(d.Root())
		if n.First() != nil {
			return
		}
		rec, err := n.Canonical(source.ReceivedAt, "MY:PERKESO:XB-2026-000731", source.Rates)
		if err != nil {
			t.Fatalf("a notification without a problem does not map: %v", err)
		}
		adaptertest.CheckRecord(t, rec, source)
	})
}

// TestSickLeave: the record's MC days are the sum of the SickLeave periods,
// each counted with both its ends; a notification that gives none maps to a
// record without MC days (not to 0 days, which would say a certificate
// granted none).
func TestSickLeave(t *testing.T) {
	const period = "<xb:SickLeave>\n            <xb:From cal=\"BE\">2569-03-02</xb:From>\n            <xb:To cal=\"BE\">2569-03-22</xb:To>\n          </xb:SickLeave>"
	for _, tc := range []struct {
		name, new string
		days      string
		periods   int
	}{
		{"ok/one-period", period, "21", 1},
		{"ok/two-periods", period + `<xb:SickLeave><xb:From cal="BE">2569-03-25</xb:From><xb:To cal="BE">2569-03-26</xb:To></xb:SickLeave>`, "23", 2},
		{"ok/none", "", "none", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := example(t)
			if !strings.Contains(x, period) {
				t.Fatal("the example's SickLeave is not as this test expects")
			}
			n := ReadNotifyInjury(body(t, strings.Replace(x, period, tc.new, 1)))
			if p := n.First(); p != nil {
				t.Fatalf("problem: %+v", p)
			}
			rec, err := n.Canonical(source.ReceivedAt, "MY:PERKESO:XB-2026-000731", source.Rates)
			if err != nil {
				t.Fatal(err)
			}
			o, days := rec.Outcome, "none"
			if o.MCDays != nil {
				days = strconv.Itoa(*o.MCDays)
			}
			if days != tc.days || len(o.MCPeriods) != tc.periods {
				t.Fatalf("mcDays %s, %d periods; want %s, %d", days, len(o.MCPeriods), tc.days, tc.periods)
			}
		})
	}
}
