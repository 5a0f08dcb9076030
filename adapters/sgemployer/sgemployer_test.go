package sgemployer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

var (
	receivedAt = time.Date(2026, 3, 3, 8, 20, 7, 0, time.UTC)
	source     = adaptertest.Source{Format: Format, ReceivedAt: receivedAt, Rates: mapping.ExampleRates}
)

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func canonical(t testing.TB, payload []byte) *schema.Record {
	t.Helper()
	doc, err := Adapter{}.Read(payload)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if p := doc.Problems(); len(p) > 0 {
		t.Fatalf("unexpected problems: %+v", p)
	}
	rec, err := doc.Canonical(adapters.Meta{ReceivedAt: receivedAt, Rates: mapping.ExampleRates})
	if err != nil {
		t.Fatalf("Canonical: %v", err)
	}
	adaptertest.CheckRecord(t, rec, source)
	return rec
}

// TestExamples maps every example of the specification (§8), checks the
// record against the canonical record's rules and against the values the
// specification states (example A in full), then against its golden file.
func TestExamples(t *testing.T) {
	for _, ex := range []string{"example-a", "example-b", "example-c"} {
		t.Run("ok/"+ex, func(t *testing.T) {
			rec := canonical(t, readExample(t, ex+".in.json"))
			got, _ := json.MarshalIndent(rec, "", "  ")
			got = append(got, '\n')
			adaptertest.MatchSpec(t, filepath.Join("testdata", ex+".expect.json"), got, ex == "example-a")
			adaptertest.Golden(t, filepath.Join("testdata", ex+".golden.json"), got)
		})
	}
}

// edit applies changes to example A: a JSON Pointer to a raw JSON value, or to
// "-" to delete the member.
func edit(t testing.TB, changes map[string]string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readExample(t, "example-a.in.json"), &doc); err != nil {
		t.Fatal(err)
	}
	for ptr, raw := range changes {
		parts := strings.Split(ptr[1:], "/")
		var cur any = doc
		for _, p := range parts[:len(parts)-1] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[p]
			case []any:
				i, _ := strconv.Atoi(p)
				cur = c[i]
			}
		}
		last := parts[len(parts)-1]
		var v any
		if raw != "-" {
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
		}
		switch c := cur.(type) {
		case map[string]any:
			if raw == "-" {
				delete(c, last)
			} else {
				c[last] = v
			}
		case []any:
			i, _ := strconv.Atoi(last)
			c[i] = v
		}
	}
	b, _ := json.Marshal(doc)
	return b
}

// raw replaces text in example A, for what json.Marshal cannot write.
func raw(t testing.TB, old, new string) []byte {
	b := readExample(t, "example-a.in.json")
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("example A has no %q", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func TestProblems(t *testing.T) {
	type P = adapters.Problem
	tests := []struct {
		name    string
		payload []byte
		want    []P
	}{
		{"ok/example-a", edit(t, nil), nil},
		{"ok/knee-electric-shock", edit(t, map[string]string{"/incident/injuries/0": `{"bodyPart":"KNEE","nature":"ELECTRIC SHOCK"}`}), nil},
		{"ok/mykad-only-date", edit(t, map[string]string{"/worker/dateOfBirth": "-", "/worker/sex": "-"}), nil},
		{"fail/format", edit(t, map[string]string{"/format": `"sg-employer-notice/v2"`}), []P{{Pointer: "/format", Code: "CODE"}}},
		{"fail/noticeId-range", edit(t, map[string]string{"/noticeId": `""`}), []P{{Pointer: "/noticeId", Code: "RANGE"}}},
		{"fail/noticeId-format", edit(t, map[string]string{"/noticeId": `"A B"`}), []P{{Pointer: "/noticeId", Code: "FORMAT"}}},
		{"fail/amends-same", edit(t, map[string]string{"/amendsNoticeId": `"TPE-2026-0042"`}), []P{{Pointer: "/amendsNoticeId", Code: "CONSISTENCY"}}},
		{"fail/submittedAt-format", edit(t, map[string]string{"/submittedAt": `"2026-03-03T16:20"`}), []P{{Pointer: "/submittedAt", Code: "FORMAT"}}},
		{"fail/submittedAt-date", edit(t, map[string]string{"/submittedAt": `"31/02/2026 16:20"`}), []P{{Pointer: "/submittedAt", Code: "DATE"}}},
		{"fail/submittedAt-24h", edit(t, map[string]string{"/submittedAt": `"03/03/2026 24:00"`}), []P{{Pointer: "/submittedAt", Code: "DATE"}}},
		{"fail/null", edit(t, map[string]string{"/reporter/email": `null`}), []P{{Pointer: "/reporter/email", Code: "TYPE"}}},
		{"fail/email-no-break-space", edit(t, map[string]string{"/reporter/email": `"mei\u00a0ling@tuasprecision.example.sg"`}), []P{{Pointer: "/reporter/email", Code: "FORMAT"}}},
		{"fail/unknown-member", edit(t, map[string]string{"/employer/extra": `1`}), []P{{Pointer: "/employer/extra", Code: "UNKNOWN_MEMBER"}}},
		{"fail/missing", edit(t, map[string]string{"/employer/name": `-`}), []P{{Pointer: "/employer/name", Code: "MISSING"}}},
		{"fail/blank-name", edit(t, map[string]string{"/employer/name": `"\u00a0 \u3000"`}), []P{{Pointer: "/employer/name", Code: "RANGE"}}},
		{"fail/uen", edit(t, map[string]string{"/employer/uen": `"2019123456"`}), []P{{Pointer: "/employer/uen", Code: "FORMAT"}}},
		{"fail/phone", edit(t, map[string]string{"/reporter/phone": `"62345678"`}), []P{{Pointer: "/reporter/phone", Code: "FORMAT"}}},
		{"fail/idNo-checksum", edit(t, map[string]string{"/worker/idNo": `"G5123456X"`}), []P{{Pointer: "/worker/idNo", Code: "CHECKSUM"}}},
		{"fail/idNo-NRIC-pattern-for-FIN", edit(t, map[string]string{"/worker/idNo": `"S8012345J"`}), []P{{Pointer: "/worker/idNo", Code: "FORMAT"}}},
		{"fail/idType", edit(t, map[string]string{"/worker/idType": `"PASSPORT"`}), []P{{Pointer: "/worker/idType", Code: "CODE"}}},
		{"fail/mykad-format", edit(t, map[string]string{"/worker/myKadNo": `"900215-01-5573"`}), []P{{Pointer: "/worker/myKadNo", Code: "FORMAT"}}},
		{"fail/mykad-pb", edit(t, map[string]string{"/worker/myKadNo": `"900215175573"`}), []P{{Pointer: "/worker/myKadNo", Code: "CODE"}}},
		{"fail/mykad-date", edit(t, map[string]string{"/worker/myKadNo": `"901315015573"`}), []P{{Pointer: "/worker/myKadNo", Code: "DATE"}}},
		{"fail/mykad-age", edit(t, map[string]string{"/worker/myKadNo": `"120101015573"`, "/worker/dateOfBirth": "-"}), []P{{Pointer: "/worker/myKadNo", Code: "CONSISTENCY"}}},
		{"fail/mykad-dob-disagree", edit(t, map[string]string{"/worker/dateOfBirth": `"16/02/1990"`}), []P{{Pointer: "/worker/myKadNo", Code: "CONSISTENCY"}}},
		{"fail/dob-age", edit(t, map[string]string{"/worker/myKadNo": "-", "/worker/passport": `{"number":"A51234567","country":"MY"}`, "/worker/dateOfBirth": `"01/01/2015"`}), []P{{Pointer: "/worker/dateOfBirth", Code: "CONSISTENCY"}}},
		{"fail/sex", edit(t, map[string]string{"/worker/sex": `"F"`}), []P{{Pointer: "/worker/sex", Code: "CONSISTENCY"}}},
		{"fail/R2", edit(t, map[string]string{"/worker/myKadNo": "-"}), []P{{Pointer: "/worker/myKadNo", Code: "MISSING"}}},
		{"fail/nationality-code", edit(t, map[string]string{"/worker/nationality": `"XK"`}), []P{{Pointer: "/worker/nationality", Code: "CODE"}}},
		{"fail/R5", edit(t, map[string]string{"/incident/occurredAt": `"03/03/2026 16:21"`}), []P{{Pointer: "/incident/occurredAt", Code: "CONSISTENCY"}}},
		{"fail/R6-missing", edit(t, map[string]string{"/incident/type": `"COMMUTING_ACCIDENT"`}), []P{{Pointer: "/incident/commute", Code: "MISSING"}}},
		{"fail/R6-extra", edit(t, map[string]string{"/incident/commute": `{"direction":"TO_WORK","segment":"SINGAPORE","mode":"BUS"}`}), []P{{Pointer: "/incident/commute", Code: "CONSISTENCY"}}},
		{"fail/R7", edit(t, map[string]string{"/incident/type": `"COMMUTING_ACCIDENT"`, "/incident/commute": `{"direction":"TO_WORK","segment":"MALAYSIA","mode":"BUS"}`}), []P{{Pointer: "/incident/commute/segment", Code: "CONSISTENCY"}}},
		{"fail/R8-missing", edit(t, map[string]string{"/outcome/fatal": `true`}), []P{{Pointer: "/outcome/dateOfDeath", Code: "MISSING"}}},
		{"fail/R8-extra", edit(t, map[string]string{"/outcome/dateOfDeath": `"03/03/2026"`}), []P{{Pointer: "/outcome/dateOfDeath", Code: "CONSISTENCY"}}},
		{"fail/R9", edit(t, map[string]string{"/outcome/fatal": `true`, "/outcome/dateOfDeath": `"04/03/2026"`}), []P{{Pointer: "/outcome/dateOfDeath", Code: "CONSISTENCY"}}},
		{"fail/R10", edit(t, map[string]string{"/incident/location/country": `"TH"`}), []P{{Pointer: "/incident/location/postalCode", Code: "CONSISTENCY"}}},
		{"fail/postal-format", edit(t, map[string]string{"/incident/location/postalCode": `"12345"`}), []P{{Pointer: "/incident/location/postalCode", Code: "FORMAT"}}},
		{"fail/description-control", edit(t, map[string]string{"/incident/description": `"a\u0007b"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"fail/description-length", edit(t, map[string]string{"/incident/description": `"` + strings.Repeat("漢", 4001) + `"`}), []P{{Pointer: "/incident/description", Code: "RANGE"}}},
		{"ok/description-4000-code-points", edit(t, map[string]string{"/incident/description": `"` + strings.Repeat("漢", 4000) + `"`}), nil},
		{"fail/injuries-empty", edit(t, map[string]string{"/incident/injuries": `[]`}), []P{{Pointer: "/incident/injuries", Code: "RANGE"}}},
		{"fail/injury-word", edit(t, map[string]string{"/incident/injuries/1/bodyPart": `"LEFT HAND"`}), []P{{Pointer: "/incident/injuries/1/bodyPart", Code: "CODE"}}},
		{"fail/integer-fraction", raw(t, `"mcDays": 21`, `"mcDays": 21.0`), []P{{Pointer: "/outcome/mcDays", Code: "TYPE"}}},
		{"fail/integer-string", edit(t, map[string]string{"/outcome/mcDays": `"21"`}), []P{{Pointer: "/outcome/mcDays", Code: "TYPE"}}},
		{"fail/integer-range", edit(t, map[string]string{"/outcome/hospitalisedHours": `8785`}), []P{{Pointer: "/outcome/hospitalisedHours", Code: "RANGE"}}},
		{"fail/ame-format", edit(t, map[string]string{"/ame": `"2450"`}), []P{{Pointer: "/ame", Code: "FORMAT"}}},
		{"fail/ame-zero", edit(t, map[string]string{"/ame": `"0.00"`}), []P{{Pointer: "/ame", Code: "RANGE"}}},
		{"fail/insurer", edit(t, map[string]string{"/insurer/code": `"wic"`}), []P{{Pointer: "/insurer/code", Code: "FORMAT"}}},
		{"fail/many-in-order", edit(t, map[string]string{"/noticeId": `""`, "/ame": `"x"`, "/worker/sex": `"X"`, "/zz": `1`, "/incident/type": `"COMMUTING_ACCIDENT"`}),
			[]P{{Pointer: "/noticeId", Code: "RANGE"}, {Pointer: "/worker/sex", Code: "CODE"}, {Pointer: "/ame", Code: "FORMAT"}, {Pointer: "/zz", Code: "UNKNOWN_MEMBER"}, {Pointer: "/incident/commute", Code: "MISSING"}}},
		{"fail/integer-exponent", raw(t, `"mcDays": 21`, `"mcDays": 2.1e1`), []P{{Pointer: "/outcome/mcDays", Code: "TYPE"}}},
		{"fail/escaped-pointer", raw(t, `"ame":`, `"a~b/c": 1, "ame":`), []P{{Pointer: "/a~0b~1c", Code: "UNKNOWN_MEMBER"}}},
		// Each bound at its edge, both sides.
		{"ok/noticeId-one-character", edit(t, map[string]string{"/noticeId": `"T"`}), nil},
		{"ok/noticeId-32", edit(t, map[string]string{"/noticeId": `"` + strings.Repeat("T", 32) + `"`}), nil},
		{"fail/noticeId-33", edit(t, map[string]string{"/noticeId": `"` + strings.Repeat("T", 33) + `"`}), []P{{Pointer: "/noticeId", Code: "RANGE"}}},
		{"ok/email-254", edit(t, map[string]string{"/reporter/email": `"` + strings.Repeat("m", 254-len("@tuasprecision.example.sg")) + `@tuasprecision.example.sg"`}), nil},
		{"fail/email-255", edit(t, map[string]string{"/reporter/email": `"` + strings.Repeat("m", 255-len("@tuasprecision.example.sg")) + `@tuasprecision.example.sg"`}), []P{{Pointer: "/reporter/email", Code: "FORMAT"}}},
		{"ok/description-tab-lf-cr-space-c1", edit(t, map[string]string{"/incident/description": `"a\tb\nc\rd e\u0080f\u009fg"`}), nil},
		{"fail/description-backspace", edit(t, map[string]string{"/incident/description": `"a\u0008b"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"fail/description-vertical-tab", edit(t, map[string]string{"/incident/description": `"a\u000bb"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"fail/description-form-feed", edit(t, map[string]string{"/incident/description": `"a\u000cb"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"fail/description-shift-out", edit(t, map[string]string{"/incident/description": `"a\u000eb"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"fail/description-unit-separator", edit(t, map[string]string{"/incident/description": `"a\u001fb"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"fail/description-delete", edit(t, map[string]string{"/incident/description": `"a\u007fb"`}), []P{{Pointer: "/incident/description", Code: "FORMAT"}}},
		{"ok/injuries-10", edit(t, map[string]string{"/incident/injuries": "[" + strings.Repeat(`{"bodyPart":"HAND","nature":"CUT"},`, 9) + `{"bodyPart":"HAND","nature":"CUT"}]`}), nil},
		{"fail/injuries-11", edit(t, map[string]string{"/incident/injuries": "[" + strings.Repeat(`{"bodyPart":"HAND","nature":"CUT"},`, 10) + `{"bodyPart":"HAND","nature":"CUT"}]`}), []P{{Pointer: "/incident/injuries", Code: "RANGE"}}},
		{"fail/injuries-not-an-array", edit(t, map[string]string{"/incident/injuries": `{"bodyPart":"HAND","nature":"CUT"}`}), []P{{Pointer: "/incident/injuries", Code: "TYPE"}}},
		{"ok/R7-checkpoint-in-MY", edit(t, map[string]string{"/incident/type": `"COMMUTING_ACCIDENT"`, "/incident/location/country": `"MY"`, "/incident/location/postalCode": `"81100"`,
			"/incident/commute": `{"direction":"TO_WORK","segment":"CHECKPOINT","mode":"BUS"}`}), nil},
		{"ok/R7-checkpoint-in-SG", edit(t, map[string]string{"/incident/type": `"COMMUTING_ACCIDENT"`, "/incident/commute": `{"direction":"TO_WORK","segment":"CHECKPOINT","mode":"BUS"}`}), nil},
		{"fail/R7-checkpoint-in-TH", edit(t, map[string]string{"/incident/type": `"COMMUTING_ACCIDENT"`, "/incident/location/country": `"TH"`, "/incident/location/postalCode": "-",
			"/incident/commute": `{"direction":"TO_WORK","segment":"CHECKPOINT","mode":"BUS"}`}), []P{{Pointer: "/incident/commute/segment", Code: "CONSISTENCY"}}},
		{"fail/R7-singapore-in-MY", edit(t, map[string]string{"/incident/type": `"COMMUTING_ACCIDENT"`, "/incident/location/country": `"MY"`, "/incident/location/postalCode": `"81100"`,
			"/incident/commute": `{"direction":"TO_WORK","segment":"SINGAPORE","mode":"BUS"}`}), []P{{Pointer: "/incident/commute/segment", Code: "CONSISTENCY"}}},
		{"ok/payload-at-the-limit", padTo(edit(t, nil), MaxPayloadBytes), nil},
		{"fail/payload-over-the-limit", padTo(edit(t, nil), MaxPayloadBytes+1), []P{{Pointer: "", Code: "RANGE"}}},
		{"fail/syntax-duplicate", []byte(`{"format":"sg-employer-notice/v1","format":"sg-employer-notice/v1"}`), []P{{Pointer: "", Code: "SYNTAX"}}},
		{"fail/syntax-bom", append([]byte{0xEF, 0xBB, 0xBF}, edit(t, nil)...), []P{{Pointer: "", Code: "SYNTAX"}}},
		{"fail/syntax-trailing", append(edit(t, nil), []byte(` {}`)...), []P{{Pointer: "", Code: "SYNTAX"}}},
		{"fail/syntax-array", []byte(`[]`), []P{{Pointer: "", Code: "SYNTAX"}}},
		{"fail/syntax-deep", []byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000)), []P{{Pointer: "", Code: "SYNTAX"}}},
		{"fail/syntax-invalid-utf8", []byte("{\"format\":\"\xff\"}"), []P{{Pointer: "", Code: "SYNTAX"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []P
			doc, err := Adapter{}.Read(tc.payload)
			if err != nil {
				ie, ok := err.(*adapters.InvalidError)
				if !ok {
					t.Fatalf("Read: %v", err)
				}
				got = ie.Problems
			} else {
				got = doc.Problems()
			}
			for i := range got {
				got[i].Message = "" // messages are for people; codes and pointers are the contract
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("problems = %+v\nwant %+v", got, tc.want)
			}
			if len(tc.want) == 0 {
				canonical(t, tc.payload)
				// The structural schema must accept every document the adapter accepts.
				if err := schema.ValidateJSON(schema.SGEmployerNoticeSchemaFile, tc.payload); err != nil {
					t.Fatalf("adapter accepts a document the JSON Schema refuses: %v", err)
				}
			}
		})
	}
}

func TestWarningsAndUnmapped(t *testing.T) {
	rec := canonical(t, edit(t, map[string]string{
		"/incident/injuries/0":    `{"bodyPart":"KNEE","nature":"ELECTRIC SHOCK"}`,
		"/worker/occupation/ssoc": `"93100"`,
		"/amendsNoticeId":         `"TPE-2026-0041"`,
		"/worker/passport":        `{"number":"A12345678","country":"MY"}`,
	}))
	if len(rec.Provenance.Warnings) != 2 {
		t.Fatalf("warnings = %+v, want KNEE and ELECTRIC SHOCK", rec.Provenance.Warnings)
	}
	if len(rec.Provenance.Unmapped) != 1 || rec.Provenance.Unmapped[0].Value != "93100" {
		t.Fatalf("unmapped = %+v", rec.Provenance.Unmapped)
	}
	if rec.Person.Occupation.ISCO08 != "" {
		t.Fatalf("isco08 = %q for 93100", rec.Person.Occupation.ISCO08)
	}
	if rec.Supersedes != schema.RecordID("sg-employer-notice/v1|201912345K|TPE-2026-0041") {
		t.Fatalf("supersedes = %q", rec.Supersedes)
	}
	if len(rec.Person.OtherIDs) != 2 || rec.Person.OtherIDs[1].Scheme != "PASSPORT" {
		t.Fatalf("otherIds = %+v", rec.Person.OtherIDs)
	}
}

func TestRecordID(t *testing.T) {
	if got := schema.RecordID("sg-employer-notice/v1|201912345K|TPE-2026-0042"); got != "b0867b30-be3c-5595-a939-c4d47c281950" {
		t.Fatalf("RecordID = %s", got)
	}
}

func FuzzRead(f *testing.F) {
	for _, ex := range []string{"example-a.in.json", "example-b.in.json", "example-c.in.json"} {
		f.Add(readExample(f, ex))
	}
	f.Add([]byte(`{"a":[[[{}]]]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		doc, err := Adapter{}.Read(payload)
		if err != nil {
			if _, ok := err.(*adapters.InvalidError); !ok {
				t.Fatalf("Read returned %T", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range doc.Problems() {
			if seen[p.Pointer] {
				t.Fatalf("two problems at %q", p.Pointer)
			}
			seen[p.Pointer] = true
		}
		if len(doc.Problems()) > 0 {
			return
		}
		rec, err := doc.Canonical(adapters.Meta{ReceivedAt: receivedAt, Rates: mapping.ExampleRates})
		if err != nil {
			t.Fatalf("valid document does not map: %v", err)
		}
		adaptertest.CheckRecord(t, rec, source)
		if err := schema.ValidateJSON(schema.SGEmployerNoticeSchemaFile, payload); err != nil {
			t.Fatalf("adapter accepts a document the JSON Schema refuses: %v", err)
		}
	})
}

func BenchmarkReadAndMap(b *testing.B) {
	payload := readExample(b, "example-a.in.json")
	b.ReportAllocs()
	for b.Loop() {
		doc, err := Adapter{}.Read(payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := doc.Canonical(adapters.Meta{ReceivedAt: receivedAt}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSchemaOnTree: validating the parsed tree gives the JSON Schema's
// verdict on the bytes.
func TestSchemaOnTree(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  []byte
	}{
		{"ok/example-a", readExample(t, "example-a.in.json")},
		{"fail/unknown-member", edit(t, map[string]string{"/employer/extra": `1`})},
		{"fail/pattern", edit(t, map[string]string{"/ame": `"12"`})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Adapter{}.Read(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			onTree := schema.ValidateTree(schema.SGEmployerNoticeSchemaFile, d.(*notice).Tree())
			onBytes := schema.ValidateJSON(schema.SGEmployerNoticeSchemaFile, tc.doc)
			if (onTree == nil) != (onBytes == nil) || (onTree == nil) != strings.HasPrefix(tc.name, "ok/") {
				t.Fatalf("tree %v, bytes %v", onTree, onBytes)
			}
		})
	}
}

// padTo is payload with white space after the document, n bytes in all.
func padTo(payload []byte, n int) []byte {
	return append(payload, bytes.Repeat([]byte(" "), n-len(payload))...)
}

// TestRateTable: the wages are converted with the table the gateway gives
// (named in the record's fx), and with the specifications' example table
// when it gives none.
func TestRateTable(t *testing.T) {
	other := mapping.RateTable{ID: "XR-TEST", Rates: map[string]string{"MYR": "1", "SGD": "2"}, Minor: map[string]int{"MYR": 2, "SGD": 2}}
	for _, tc := range []struct {
		name  string
		given mapping.RateTable
		want  mapping.RateTable
	}{
		{"ok/given", other, other},
		{"ok/none-given", mapping.RateTable{}, mapping.ExampleRates},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Adapter{}.Read(readExample(t, "example-a.in.json"))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := doc.Canonical(adapters.Meta{ReceivedAt: receivedAt, Rates: tc.given})
			if err != nil {
				t.Fatal(err)
			}
			src := source
			src.Rates = tc.want
			adaptertest.CheckRecord(t, rec, src)
		})
	}
}
