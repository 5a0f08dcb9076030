package insurerclaim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

var (
	receivedAt = time.Date(2026, 3, 10, 10, 2, 31, 0, time.UTC)
	source     = adaptertest.Source{Format: Format, ReceivedAt: receivedAt, Rates: mapping.ExampleRates}
)

func example(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "example-batch.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func read(t testing.TB, payload []byte) *Batch {
	t.Helper()
	b, err := Read(payload)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

// TestExample: the batch of §8 has no problems; claim 0 maps to exactly the
// record of §8.2, and the three records are in the golden file.
func TestExample(t *testing.T) {
	b := read(t, example(t))
	if len(b.Problems) != 0 {
		t.Fatalf("batch problems %+v", b.Problems)
	}
	var recs []*schema.Record
	for _, cl := range b.Claims {
		if len(cl.Problems) != 0 {
			t.Fatalf("claim %d problems %+v", cl.Index, cl.Problems)
		}
		r, err := b.Canonical(cl, receivedAt, mapping.ExampleRates)
		if err != nil {
			t.Fatal(err)
		}
		adaptertest.CheckRecord(t, r, source)
		recs = append(recs, r)
	}
	got, _ := json.MarshalIndent(recs[0], "", "  ")
	adaptertest.MatchSpec(t, filepath.Join("testdata", "example-claim0.expect.json"), got, true)
	ids := []string{"20d6ffb6-2415-5925-8ac3-1df538e887c7", "7938a770-f4d2-5ccf-b1a8-3cf7d240804c", "60c452ba-a5f0-56c6-b0a1-d87cf950abec"}
	for i, r := range recs {
		if r.RecordID != ids[i] {
			t.Errorf("claim %d recordId %s, want %s (§1)", i, r.RecordID, ids[i])
		}
	}
	if recs[1].Accident.OccurredAt != "" || recs[1].Person.PrimaryID.Scheme != "PASSPORT" || len(recs[1].Provenance.Unmapped) != 1 ||
		recs[1].Injuries[0].NatureESAW != "000" || recs[1].OtherCover[0].MedicalExpenses.MYRAmount != "860.00" {
		t.Errorf("claim 1: %+v", recs[1])
	}
	if recs[2].Accident.OccurredAt != "2026-03-02T14:15:00Z" || recs[2].Person.Sex != "M" || recs[2].OtherCover[0].Status != "DENIED" {
		t.Errorf("claim 2: %+v", recs[2])
	}
	all, _ := json.MarshalIndent(recs, "", "  ")
	adaptertest.Golden(t, filepath.Join("testdata", "example-batch.golden.json"), append(all, '\n'))
}

func edit(t testing.TB, f func(m map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal(example(t), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, _ := json.Marshal(m)
	return b
}

func claim(m map[string]any, i int) map[string]any { return m["claims"].([]any)[i].(map[string]any) }

func TestProblems(t *testing.T) {
	type P = adapters.Problem
	tests := []struct {
		name  string
		in    []byte
		batch []P
		claim int
		probs []P
	}{
		{"fail/batch-insurer-code", edit(t, func(m map[string]any) { m["insurerCode"] = "wic" }), []P{{Pointer: "/insurerCode", Code: "FORMAT"}}, -1, nil},
		{"fail/batch-tz", edit(t, func(m map[string]any) { m["tz"] = "Asia/Johor" }), []P{{Pointer: "/tz", Code: "CODE"}}, -1, nil},
		{"fail/batch-R1", edit(t, func(m map[string]any) { claim(m, 2)["claimNo"] = "WC2600123" }), []P{{Pointer: "/claims/2/claimNo", Code: "CONSISTENCY"}}, -1, nil},
		{"fail/batch-unknown", edit(t, func(m map[string]any) { m["extra"] = 1 }), []P{{Pointer: "/extra", Code: "UNKNOWN_MEMBER"}}, -1, nil},
		{"fail/claim-checksum", edit(t, func(m map[string]any) {
			claim(m, 1)["claimant"].(map[string]any)["altIds"].([]any)[0].(map[string]any)["idNo"] = "F7654321A"
		}),
			nil, 1, []P{{Pointer: "/claims/1/claimant/altIds/0/idNo", Code: "CHECKSUM"}}},
		{"fail/claim-R6-missing-country", edit(t, func(m map[string]any) { delete(claim(m, 1)["claimant"].(map[string]any), "idCountry") }),
			nil, 1, []P{{Pointer: "/claims/1/claimant/idCountry", Code: "MISSING"}}},
		{"fail/claim-R8-both", edit(t, func(m map[string]any) { claim(m, 0)["employer"].(map[string]any)["registrationId"] = "X1" }),
			nil, 0, []P{{Pointer: "/claims/0/employer/registrationId", Code: "CONSISTENCY"}}},
		{"fail/claim-R9-only-external", edit(t, func(m map[string]any) { claim(m, 1)["icd10"] = []string{"Y96"} }),
			nil, 1, []P{{Pointer: "/claims/1/icd10", Code: "CONSISTENCY"}}},
		{"fail/claim-R3", edit(t, func(m map[string]any) { claim(m, 2)["statusDate"] = "20260311" }),
			nil, 2, []P{{Pointer: "/claims/2/statusDate", Code: "CONSISTENCY"}}},
		{"fail/claim-mykad-dob", edit(t, func(m map[string]any) { claim(m, 0)["claimant"].(map[string]any)["dob"] = "19900216" }),
			nil, 0, []P{{Pointer: "/claims/0/claimant/altIds/0/idNo", Code: "CONSISTENCY"}}},
		{"fail/claim-integer", edit(t, func(m map[string]any) { claim(m, 0)["revision"] = "2" }),
			nil, 0, []P{{Pointer: "/claims/0/revision", Code: "TYPE"}}},
		{"fail/claim-not-object", edit(t, func(m map[string]any) { m["claims"].([]any)[1] = 7 }),
			nil, 1, []P{{Pointer: "/claims/1", Code: "TYPE"}}},
		{"fail/claim-loss-time-the-clocks-skip", edit(t, func(m map[string]any) {
			m["tz"] = "America/New_York" // 02:00 to 03:00 on 2026-03-08 is not shown there
			claim(m, 0)["lossDate"], claim(m, 0)["lossTime"] = "20260308", "0230"
		}),
			nil, 0, []P{{Pointer: "/claims/0/lossTime", Code: "DATE"}}},
		// R2 and R3 both read lossDate; a loss after generatedAt's date breaks R3 at statusDate
		// either way, and R2 at lossDate only when lossTime, if given, passed its own checks.
		{"fail/claim-R2-not-evaluated-after-a-bad-lossTime", edit(t, func(m map[string]any) {
			claim(m, 0)["lossDate"], claim(m, 0)["statusDate"], claim(m, 0)["lossTime"] = "20260311", "20260311", "2500"
		}),
			nil, 0, []P{{Pointer: "/claims/0/lossTime", Code: "DATE"}, {Pointer: "/claims/0/statusDate", Code: "CONSISTENCY"}}},
		{"fail/claim-R2-without-lossTime", edit(t, func(m map[string]any) {
			claim(m, 0)["lossDate"], claim(m, 0)["statusDate"] = "20260311", "20260311"
			delete(claim(m, 0), "lossTime")
		}),
			nil, 0, []P{{Pointer: "/claims/0/lossDate", Code: "CONSISTENCY"}, {Pointer: "/claims/0/statusDate", Code: "CONSISTENCY"}}},
		// Each bound and rule at its edge.
		{"ok/batch-id-64", edit(t, func(m map[string]any) { m["batchId"] = strings.Repeat("B", 64) }), nil, -1, nil},
		{"ok/batch-id-one", edit(t, func(m map[string]any) { m["batchId"] = "B" }), nil, -1, nil},
		{"fail/batch-id-65", edit(t, func(m map[string]any) { m["batchId"] = strings.Repeat("B", 65) }), []P{{Pointer: "/batchId", Code: "RANGE"}}, -1, nil},
		{"fail/batch-id-empty", edit(t, func(m map[string]any) { m["batchId"] = "" }), []P{{Pointer: "/batchId", Code: "RANGE"}}, -1, nil},
		{"ok/claim-no-30", edit(t, func(m map[string]any) { claim(m, 0)["claimNo"] = strings.Repeat("C", 30) }), nil, -1, nil},
		{"ok/claim-no-one", edit(t, func(m map[string]any) { claim(m, 0)["claimNo"] = "C" }), nil, -1, nil},
		{"fail/claim-no-31", edit(t, func(m map[string]any) { claim(m, 0)["claimNo"] = strings.Repeat("C", 31) }),
			nil, 0, []P{{Pointer: "/claims/0/claimNo", Code: "RANGE"}}},
		{"ok/claim-loss-time-2359", edit(t, func(m map[string]any) { claim(m, 0)["lossTime"] = "2359" }), nil, -1, nil},
		{"fail/claim-loss-time-2400", edit(t, func(m map[string]any) { claim(m, 0)["lossTime"] = "2400" }),
			nil, 0, []P{{Pointer: "/claims/0/lossTime", Code: "DATE"}}},
		{"fail/claim-loss-time-1260", edit(t, func(m map[string]any) { claim(m, 0)["lossTime"] = "1260" }),
			nil, 0, []P{{Pointer: "/claims/0/lossTime", Code: "DATE"}}},
		{"fail/claim-money-not-an-object", edit(t, func(m map[string]any) { claim(m, 0)["medicalExpenses"] = 1284050 }),
			nil, 0, []P{{Pointer: "/claims/0/medicalExpenses", Code: "TYPE"}}},
		{"ok/claim-amount-largest", edit(t, func(m map[string]any) { claim(m, 0)["medicalExpenses"].(map[string]any)["amountMinor"] = 999999999999 }), nil, -1, nil},
		{"fail/claim-amount-over", edit(t, func(m map[string]any) { claim(m, 0)["medicalExpenses"].(map[string]any)["amountMinor"] = 1000000000000 }),
			nil, 0, []P{{Pointer: "/claims/0/medicalExpenses/amountMinor", Code: "RANGE"}}},
		{"fail/claim-currency", edit(t, func(m map[string]any) { claim(m, 0)["wageLoss"].(map[string]any)["currency"] = "USD" }),
			nil, 0, []P{{Pointer: "/claims/0/wageLoss/currency", Code: "CODE"}}},
		{"fail/claim-R5-no-primary", edit(t, func(m map[string]any) { delete(claim(m, 0)["claimant"].(map[string]any), "altIds") }),
			nil, 0, []P{{Pointer: "/claims/0/claimant", Code: "MISSING"}}},
		{"ok/claim-R5-my-nric-as-the-main-id", edit(t, func(m map[string]any) {
			cl := claim(m, 0)["claimant"].(map[string]any)
			cl["idType"], cl["idNo"] = "MY_NRIC", "900215015573"
			cl["altIds"] = []any{map[string]any{"idType": "SG_FIN", "idNo": "G5123456T"}}
		}), nil, -1, nil},
		{"fail/claim-R7-type-twice", edit(t, func(m map[string]any) {
			cl := claim(m, 0)["claimant"].(map[string]any)
			cl["altIds"] = append(cl["altIds"].([]any), map[string]any{"idType": "MY_NRIC", "idNo": "900215015573"})
		}),
			nil, 0, []P{{Pointer: "/claims/0/claimant/altIds/1/idType", Code: "CONSISTENCY"}}},
		{"fail/claim-unknown-type-twice-is-not-R7", edit(t, func(m map[string]any) {
			cl := claim(m, 0)["claimant"].(map[string]any)
			cl["altIds"] = append(cl["altIds"].([]any), map[string]any{"idType": "XX_ID", "idNo": "1"}, map[string]any{"idType": "XX_ID", "idNo": "2"})
		}),
			nil, 0, []P{{Pointer: "/claims/0/claimant/altIds/1/idType", Code: "CODE"}, {Pointer: "/claims/0/claimant/altIds/2/idType", Code: "CODE"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := read(t, tc.in)
			strip := func(ps []P) []P {
				out := []P{}
				for _, p := range ps {
					out = append(out, P{Pointer: p.Pointer, Code: p.Code})
				}
				return out
			}
			if tc.batch != nil {
				if !reflect.DeepEqual(strip(b.Problems), tc.batch) {
					t.Fatalf("batch problems %+v, want %+v", b.Problems, tc.batch)
				}
				return
			}
			if len(b.Problems) != 0 {
				t.Fatalf("batch problems %+v", b.Problems)
			}
			for _, cl := range b.Claims {
				want := []P{}
				if cl.Index == tc.claim {
					want = tc.probs
				}
				if !reflect.DeepEqual(strip(cl.Problems), want) {
					t.Fatalf("claim %d problems %+v, want %+v", cl.Index, cl.Problems, want)
				}
				// Only a valid claim is compared with earlier versions.
				if (cl.Hash == "") != (len(want) > 0) {
					t.Fatalf("claim %d with %d problems has hash %q", cl.Index, len(want), cl.Hash)
				}
			}
		})
	}
}

// TestLossTimeShownTwice: a lossTime the zone shows twice (its clocks went
// back) is the first of the two instants, whatever the zone.
func TestLossTimeShownTwice(t *testing.T) {
	for _, tc := range []struct{ zone, date, time, want string }{
		{"America/New_York", "20251102", "0130", "2025-11-02T05:30:00Z"},
		{"Europe/London", "20251026", "0130", "2025-10-26T00:30:00Z"}, // time.Date gave the second, 01:30Z
		{"Australia/Sydney", "20250406", "0230", "2025-04-05T15:30:00Z"},
	} {
		b := read(t, edit(t, func(m map[string]any) {
			m["tz"] = tc.zone
			claim(m, 0)["lossDate"], claim(m, 0)["lossTime"] = tc.date, tc.time
		}))
		cl := b.Claims[0]
		if len(b.Problems)+len(cl.Problems) != 0 {
			t.Fatalf("%s: problems %+v %+v", tc.zone, b.Problems, cl.Problems)
		}
		r, err := b.Canonical(cl, receivedAt, mapping.ExampleRates)
		if err != nil || r.Accident.OccurredAt != tc.want {
			t.Errorf("%s %s %s: occurredAt %s (%v), want %s", tc.zone, tc.date, tc.time, r.Accident.OccurredAt, err, tc.want)
		}
	}
}

// Large builds a batch of n distinct claims from claim 0 (for the server
// tests and benchmarks); bad lists indexes given a wrong check letter.
func Large(t testing.TB, n int, bad ...int) []byte {
	var m map[string]any
	if err := json.Unmarshal(example(t), &m); err != nil {
		t.Fatal(err)
	}
	c0 := claim(m, 0)
	var claims []any
	for i := 0; i < n; i++ {
		var c map[string]any
		b, _ := json.Marshal(c0)
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		c["claimNo"] = fmt.Sprintf("WC%07d", i)
		for _, k := range bad {
			if k == i {
				c["claimant"].(map[string]any)["idNo"] = "G5123456X"
			}
		}
		claims = append(claims, c)
	}
	m["claims"] = claims
	b, _ := json.Marshal(m)
	return b
}

func TestLarge(t *testing.T) {
	b := read(t, Large(t, 500, 3, 250, 499))
	rejected := 0
	for _, cl := range b.Claims {
		if len(cl.Problems) > 0 {
			rejected++
			if !strings.HasSuffix(cl.Problems[0].Pointer, "/claimant/idNo") {
				t.Fatalf("pointer %s", cl.Problems[0].Pointer)
			}
		}
	}
	if len(b.Problems) != 0 || rejected != 3 {
		t.Fatalf("%d batch problems, %d rejected claims", len(b.Problems), rejected)
	}
}

func FuzzRead(f *testing.F) {
	f.Add(example(f))
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, err := Read(payload)
		if err != nil {
			return
		}
		if len(b.Problems) > 0 {
			return
		}
		for _, cl := range b.Claims {
			if len(cl.Problems) > 0 {
				continue
			}
			r, err := b.Canonical(cl, receivedAt, mapping.ExampleRates)
			if err != nil {
				t.Fatalf("valid claim does not map: %v", err)
			}
			adaptertest.CheckRecord(t, r, source)
		}
	})
}

// TestReadValueBound: a batch of more than MaxValues JSON values is refused
// before it is checked (RANGE at ""); 500 full claims stay far below it.
func TestReadValueBound(t *testing.T) {
	over := edit(t, func(m map[string]any) {
		c := claim(m, 1)
		for i := range MaxValues {
			c[fmt.Sprintf("u%d", i)] = 0
		}
	})
	_, err := Read(over)
	var ie *adapters.InvalidError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Pointer != "" || ie.Problems[0].Code != adapters.CodeRange {
		t.Fatalf("over the bound: %v", err)
	}
	if _, err := Read(Large(t, 500)); err != nil {
		t.Fatalf("500 claims: %v", err)
	}
}

// TestPayloadLimit: a payload of MaxPayloadBytes is read, one byte more is
// RANGE at "".
func TestPayloadLimit(t *testing.T) {
	at := append(example(t), bytes.Repeat([]byte(" "), MaxPayloadBytes-len(example(t)))...)
	if b := read(t, at); len(b.Problems) != 0 {
		t.Fatalf("at the limit: %+v", b.Problems)
	}
	_, err := Read(append(at, ' '))
	var ie *adapters.InvalidError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Pointer != "" || ie.Problems[0].Code != adapters.CodeRange {
		t.Fatalf("one byte over: %v, want RANGE at \"\"", err)
	}
}
