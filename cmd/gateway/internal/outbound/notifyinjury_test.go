package outbound

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// TestNotifyInjuryRoundTrip maps the canonical record of agency-soap/v1
// §10.3 to an outgoing NotifyInjury, which must be schema-valid, break no
// content rule, and read back to the same person, accident, injuries and wage.
func TestNotifyInjuryRoundTrip(t *testing.T) {
	rec := exampleRecord(t)
	payload, _ := json.Marshal(NotifyInjuryPayload{Record: rec, SenderCaseRef: "PERKESO-JB-2026-0042"})
	s := &SOAPSender{Institution: "MY:PERKESO", Receiver: "TH:SSO"}
	doc, op, action, err := s.envelope(&store.Delivery{Key: "ni-1", MessageType: "NotifyInjury", Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if action != "urn:xb-injury:exchange:v1#NotifyInjury" {
		t.Fatal(action)
	}
	if body := doc.FindElement("//Body").ChildElements()[0]; body != op {
		t.Fatalf("envelope returned %s, not the Body's child %s", op.Tag, body.Tag)
	}
	n := agencysoap.ReadNotifyInjury(op)
	if p := n.First(); p != nil {
		t.Fatalf("the outgoing message breaks %s at %s: %s", p.Code, p.Location, p.Reason)
	}
	back, err := n.Canonical(time.Now(), "TH:SSO:CASE-1", mapping.ExampleRates)
	if err != nil {
		t.Fatal(err)
	}
	if back.Person.PrimaryID != rec.Person.PrimaryID || back.Person.DateOfBirth != rec.Person.DateOfBirth || back.Accident.OccurredAt != rec.Accident.OccurredAt ||
		back.Injuries[0].NatureESAW != rec.Injuries[0].NatureESAW || back.Injuries[0].BodyPartESAW != rec.Injuries[0].BodyPartESAW ||
		back.Wages[0].MYRAmount != rec.Wages[0].MYRAmount || *back.Outcome.MCDays != *rec.Outcome.MCDays {
		t.Fatalf("round trip differs:\n%+v\n%+v", back, rec)
	}
	// A record holding more than a Notification carries is refused, not cut.
	hours := 10000
	for _, tc := range []struct {
		name string
		edit func(r *schema.Record)
		want string
	}{
		{"fail/eleven-injuries", func(r *schema.Record) {
			for len(r.Injuries) < 11 {
				r.Injuries = append(r.Injuries, r.Injuries[0])
			}
		}, "11 injuries"},
		{"fail/six-identifiers", func(r *schema.Record) {
			r.Person.OtherIDs = nil
			for _, s := range []string{"TH_PID", "SG_NRIC", "SG_FIN", "BN_IC", "PASSPORT"} {
				r.Person.OtherIDs = append(r.Person.OtherIDs, schema.ID{Scheme: s, Value: "X1234567", Country: "TH"})
			}
		}, "6 identifiers"},
		{"fail/eleven-periods", func(r *schema.Record) {
			for len(r.Outcome.MCPeriods) < 11 {
				r.Outcome.MCPeriods = append(r.Outcome.MCPeriods, r.Outcome.MCPeriods[0])
			}
		}, "11 medical-leave periods"},
		{"fail/hours", func(r *schema.Record) { r.Outcome.HospitalisedHours = &hours }, "10000 hours"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exampleRecord(t)
			tc.edit(&r)
			p, _ := json.Marshal(NotifyInjuryPayload{Record: r})
			if _, _, _, err := s.envelope(&store.Delivery{Key: "ni-" + tc.name, MessageType: "NotifyInjury", Payload: p}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("envelope: %v, want a refusal naming %q", err, tc.want)
			}
		})
	}
	t.Run("fail/record-without-wage", func(t *testing.T) {
		r := rec
		r.Wages = nil
		p, _ := json.Marshal(NotifyInjuryPayload{Record: r})
		if _, _, _, err := s.envelope(&store.Delivery{Key: "ni-2", MessageType: "NotifyInjury", Payload: p}); err == nil || !strings.Contains(err.Error(), "lacks what NotifyInjury requires") {
			t.Fatalf("a record without a wage: %v", err)
		}
	})
}

// TestEnvelopeContentRules: a message the agency would refuse for its
// content (§7) is not sent; the error names the rule's element.
func TestEnvelopeContentRules(t *testing.T) {
	early := exampleRecord(t)
	early.Outcome.MCPeriods[0].From = "2026-03-01" // the day before the accident (C10)
	notify, _ := json.Marshal(NotifyInjuryPayload{Record: early, SenderCaseRef: "PERKESO-JB-2026-0042"})
	decision := func(date string) []byte {
		return []byte(`{"subject":"CASH_BENEFITS","outcome":"ACCEPTED","decisionDate":"` + date + `","legalBasis":"SOCSO Act 1969, s. 15"}`)
	}
	s := &SOAPSender{Institution: "MY:PERKESO", Receiver: "TH:SSO"}
	for _, tc := range []struct {
		name, typ string
		payload   []byte
		want      string // "" when it is sent
	}{
		{"ok/decision", "NotifyDecision", decision("2026-03-20"), ""},
		{"fail/decision-date-not-a-date", "NotifyDecision", decision("2026-02-30"), "client.content.invalid at /xb:NotifyDecision/xb:Decision/xb:DecisionDate"},
		{"fail/pct-on-other-subject", "NotifyDecision", []byte(`{"subject":"CASH_BENEFITS","outcome":"ACCEPTED","decisionDate":"2026-03-20","legalBasis":"s. 15","permanentIncapacityPct":30}`),
			"client.content.invalid at /xb:NotifyDecision/xb:Decision/xb:PermanentIncapacityPct"},
		{"fail/reply-by-not-a-date", "RequestInformation", []byte(`{"items":[{"code":"WAGES_6M"}],"replyBy":"2025-02-29"}`),
			"client.content.invalid at /xb:RequestInformation/xb:Request/xb:ReplyBy"},
		{"fail/sick-leave-before-the-accident", "NotifyInjury", notify, "client.content.invalid at /xb:NotifyInjury/xb:Notification/xb:Outcome/xb:SickLeave[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := s.envelope(&store.Delivery{Key: "d-1", MessageType: tc.typ, CaseID: "TH:SSO:CASE-1", Payload: tc.payload})
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// exampleRecord is the canonical record of agency-soap/v1 §10.3.
func exampleRecord(t *testing.T) schema.Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "agencysoap", "testdata", "example-10.3.expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec schema.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestNotifyInjuryFromEmployerNotices: the records of sg-employer-notice
// §8's three examples (a MyKad and a FIN; a commuting accident; a fatal one
// with a passport) go to an agency as NotifyInjury messages the agency
// accepts, which read back to the same person, employer, accident,
// injuries, outcome and wage, except what the Notification has no place
// for, as the README says: the postal code, light-duty days, medical leave
// given as a count rather than periods, and the source's own codes (SSOC,
// Singapore's injury words), for which ISCO-08 and ESAW go.
func TestNotifyInjuryFromEmployerNotices(t *testing.T) {
	for _, ex := range []string{"example-a", "example-b", "example-c"} {
		t.Run("ok/"+ex, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", ex+".in.json"))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := sgemployer.Adapter{}.Read(b)
			if err != nil || len(doc.Problems()) > 0 {
				t.Fatalf("%v %v", err, doc.Problems())
			}
			rec, err := doc.Canonical(adapters.Meta{ReceivedAt: time.Now(), Rates: mapping.ExampleRates})
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := json.Marshal(NotifyInjuryPayload{Record: *rec, SenderCaseRef: "PERKESO-JB-2026-0042"})
			s := &SOAPSender{Institution: "MY:PERKESO", Receiver: "TH:SSO"}
			_, op, _, err := s.envelope(&store.Delivery{Key: "ni-" + ex, MessageType: "NotifyInjury", Payload: payload, CreatedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			n := agencysoap.ReadNotifyInjury(op)
			if p := n.First(); p != nil {
				t.Fatalf("the agency would refuse it: %s at %s: %s", p.Code, p.Location, p.Reason)
			}
			back, err := n.Canonical(time.Now(), "TH:SSO:CASE-1", mapping.ExampleRates)
			if err != nil {
				t.Fatal(err)
			}
			// What the Notification has no place for.
			want := *rec
			want.Person.Occupation = &schema.Occupation{ISCO08: rec.Person.Occupation.ISCO08, SourceScheme: "ISCO08",
				SourceCode: rec.Person.Occupation.ISCO08, Text: rec.Person.Occupation.Text}
			want.Accident.SourceCategory = rec.Accident.Category
			want.Accident.Location.PostalCode = ""
			want.Outcome.MCDays, want.Outcome.LightDutyDays = nil, nil
			want.Injuries = nil
			for _, inj := range rec.Injuries {
				inj.Source = schema.InjurySource{Scheme: "ESAW", Nature: inj.NatureESAW, BodyPart: inj.BodyPartESAW}
				want.Injuries = append(want.Injuries, inj)
			}
			for _, part := range []struct {
				name      string
				got, want any
			}{
				{"person", back.Person, want.Person}, {"employer", back.Employer, want.Employer}, {"accident", back.Accident, want.Accident},
				{"injuries", back.Injuries, want.Injuries}, {"outcome", back.Outcome, want.Outcome}, {"wages", back.Wages, want.Wages},
			} {
				g, _ := json.Marshal(part.got)
				w, _ := json.Marshal(part.want)
				if string(g) != string(w) {
					t.Errorf("%s back from the agency:\n%s\nwant\n%s", part.name, g, w)
				}
			}
		})
	}
}
