package adaptertest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

var source = adaptertest.Source{Format: sgemployer.Format, ReceivedAt: time.Date(2026, 3, 3, 8, 20, 7, 0, time.UTC), Rates: mapping.ExampleRates}

// example maps an example of sg-employer-notice §8: B is a commuting accident
// of a worker with a MyKad number, C a fatal accident with a WIC policy.
func example(t *testing.T, name string) *schema.Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "sgemployer", "testdata", "example-"+name+".in.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := sgemployer.Adapter{}.Read(b)
	if err != nil || len(doc.Problems()) > 0 {
		t.Fatalf("example %s: %v %v", name, err, doc.Problems())
	}
	rec, err := doc.Canonical(adapters.Meta{ReceivedAt: source.ReceivedAt, Rates: source.Rates})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func intp(i int) *int { return &i }

// TestViolations: a record as mapped breaks no rule; each change below breaks
// the rule named, which is reported, and only it.
func TestViolations(t *testing.T) {
	tests := []struct {
		name   string
		base   string // the example the record is mapped from
		edit   func(r *schema.Record, s *adaptertest.Source)
		report string // a part of the one violation expected; "" for none
	}{
		{"ok/example-c", "c", func(*schema.Record, *adaptertest.Source) {}, ""},
		{"ok/amended", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Supersedes = "b0867b30-be3c-5595-a939-c4d47c281950" }, ""},
		{"fail/schema", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Person.Name = ""; r.Schema = "v2" }, "JSON Schema"},
		{"fail/record-id", "b", func(r *schema.Record, _ *adaptertest.Source) { r.RecordID = schema.RecordID(r.SourceKey + "x") }, "UUIDv5"},
		{"fail/source-key-fields", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.SourceKey += "|1"
			r.RecordID = schema.RecordID(r.SourceKey)
		}, "sourceKey"},
		{"fail/supersedes-itself", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Supersedes = r.RecordID }, "supersedes itself"},
		{"fail/exchange", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Exchange = &schema.Exchange{Institution: "TH:SSO", SenderCaseRef: "x", CaseID: "y"}
		}, "exchange"},
		{"fail/received-at", "b", func(_ *schema.Record, s *adaptertest.Source) { s.ReceivedAt = s.ReceivedAt.Add(time.Second) }, "receivedAt"},
		{"fail/format", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Provenance.Format = "insurer-claim/v1" }, "provenance.format"},
		{"fail/crosswalk", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Provenance.CrosswalkVersion = "2025.1" }, "crosswalkVersion"},
		{"fail/sender", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Provenance.Sender = "SG-UEN:199801234D" }, "provenance.sender"},
		{"fail/source-message-id", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Provenance.SourceMessageID += "x" }, "sourceMessageId"},
		{"fail/id-country", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Person.OtherIDs[0].Country = "MY" }, "country"},
		{"fail/scheme-twice", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Person.OtherIDs = append(r.Person.OtherIDs, r.Person.OtherIDs[0])
		}, "twice"},
		{"fail/passport-primary", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Person.PrimaryID, r.Person.OtherIDs[0] = schema.ID{Scheme: "PASSPORT", Value: "A12345678", Country: "MY"}, r.Person.PrimaryID
		}, "primary id"},
		{"fail/age", "c", func(r *schema.Record, _ *adaptertest.Source) { r.Person.DateOfBirth = "2012-01-01" }, "age"},
		{"fail/mykad-birth-date", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Person.DateOfBirth = "1985-01-01" }, "birth date"},
		{"fail/mykad-sex", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Person.Sex = map[string]string{"M": "F", "F": "M"}[r.Person.Sex]
		}, "person.sex"},
		{"fail/mykad-sex-absent", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Person.Sex = "" }, "person.sex"},
		{"fail/zone", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Accident.Zone = "Local" }, "zone"},
		{"fail/occurred-date", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Accident.OccurredAt = "2026-03-01T16:05:00Z" }, "occurredAt"},
		{"fail/commuting-leg", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Accident.Category = "WORK" }, "commutingLeg"},
		{"fail/external-cause", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Accident.ExternalCauseICD10 = []string{"S62.3"} }, "chapter XX"},
		{"fail/esaw", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Injuries[0].NatureESAW = "013" }, "ESAW"},
		{"fail/injury-external-cause", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Injuries[0].ICD10 = "W24.6" }, "external cause"},
		{"fail/date-of-death", "c", func(r *schema.Record, _ *adaptertest.Source) { r.Outcome.DateOfDeath = "" }, "dateOfDeath"},
		{"fail/death-before-accident", "c", func(r *schema.Record, _ *adaptertest.Source) { r.Outcome.DateOfDeath = "2026-02-01" }, "before the accident"},
		{"fail/mc-days", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Outcome.MCPeriods = []schema.MCPeriod{{From: "2026-03-02", To: "2026-03-04"}, {From: "2026-03-10", To: "2026-03-10"}}
			r.Outcome.MCDays = intp(3)
		}, "mcDays"},
		{"ok/mc-days", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Outcome.MCPeriods = []schema.MCPeriod{{From: "2026-03-02", To: "2026-03-04"}, {From: "2026-03-10", To: "2026-03-10"}}
			r.Outcome.MCDays = intp(4)
		}, ""},
		{"fail/myr-rounding", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Wages[0].MYRAmount = bump(r.Wages[0].MYRAmount) }, "MYR"},
		{"fail/rate", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Wages[0].MYRRate = "3.26150" }, "rate"},
		{"fail/decimals", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Wages[0].Amount += "0" }, "decimals"},
		{"fail/cover-money", "c", func(r *schema.Record, _ *adaptertest.Source) {
			r.OtherCover[0].WageLoss = &schema.Money{Amount: "2030.00", Currency: "SGD", MYRAmount: "6620.84", MYRRate: "3.2615"}
		}, "6620.85"},
		{"fail/fx-missing", "b", func(r *schema.Record, _ *adaptertest.Source) { r.FX = nil }, "without fx"},
		{"fail/fx-without-money", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Wages = []schema.Wage{} }, "fx without money"},
		{"fail/fx-date", "b", func(r *schema.Record, _ *adaptertest.Source) { r.FX.Date = "2026-03-04" }, "fx"},
		{"fail/claim-limit", "b", func(r *schema.Record, _ *adaptertest.Source) { r.Deadlines[0].DueDate = "2027-03-04" }, "PERKESO_CLAIM_LIMIT"},
		{"fail/fatal-report", "c", func(r *schema.Record, _ *adaptertest.Source) { r.Deadlines = r.Deadlines[:1] }, "SG_WICA_FATAL_REPORT"},
		{"fail/deadline-order", "c", func(r *schema.Record, _ *adaptertest.Source) {
			r.Deadlines = append(r.Deadlines, r.Deadlines[1])
		}, "out of order"},
		{"fail/decision-requested", "b", func(r *schema.Record, _ *adaptertest.Source) {
			r.Deadlines = append(r.Deadlines, schema.Deadline{Code: "DECISION_REQUESTED_BY", DueDate: "2026-04-01"})
		}, "DECISION_REQUESTED_BY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, src := example(t, tt.base), source
			tt.edit(rec, &src)
			got := adaptertest.Violations(rec, src)
			// The JSON Schema may refuse the change too (a crosswalk
			// version, a pattern); the rule named must be the only other.
			var rules []string
			for _, v := range got {
				if !strings.HasPrefix(v, "the canonical JSON Schema") || tt.report == "JSON Schema" {
					rules = append(rules, v)
				}
			}
			switch {
			case tt.report == "" && len(got) > 0:
				t.Fatalf("violations %q", got)
			case tt.report != "" && (len(rules) != 1 || !strings.Contains(rules[0], tt.report)):
				t.Fatalf("violations %q, want one naming %q", got, tt.report)
			}
		})
	}
}

// bump adds a hundredth to a decimal amount with two decimals.
func bump(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '.' {
			continue
		}
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

// TestClaimLimitClamped: 29 February's limit is the last day of February
// (canonical §5), checked on a record moved to a leap day.
func TestClaimLimitClamped(t *testing.T) {
	rec := example(t, "c")
	rec.Accident.OccurredDate, rec.Accident.OccurredAt, rec.FX.Date = "2024-02-29", "2024-02-29T10:00:00Z", "2024-02-29"
	rec.Outcome.DateOfDeath = "2024-03-01"
	rec.Deadlines[1].DueDate = "2024-03-10"
	rec.Person.DateOfBirth = ""
	for _, due := range []string{"2025-02-28", "2025-03-01"} {
		rec.Deadlines[0].DueDate = due
		got := adaptertest.Violations(rec, source)
		if ok := len(got) == 0; ok != (due == "2025-02-28") {
			t.Errorf("due %s: violations %q", due, got)
		}
	}
}
