package interop

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/adapters/jsondoc/jsondoctest"
	"github.com/perkeso/jambatan/schema"
)

// TestAjvAgreesWithSchema compares the gateway's JSON Schema verdicts
// (schema.ValidateJSON: its quick validator, else the library) with ajv's
// (jsonschema-verdicts.mjs) on the example notices and canonical records,
// each changed in one place: every string value given Unicode spaces and line
// ends (which ECMA-262's \s and . see and Go's do not), cut, lengthened in
// astral characters, replaced by dates and instants at the edges of their
// formats; every number replaced by integers and decimals in each notation;
// every member removed; a member added; every array resized. JSON Schema's regular expressions are
// ECMA-262's, the dialect a partner validating with ajv gets.
func TestAjvAgreesWithSchema(t *testing.T) {
	dir := nodeModules(t)
	type variant struct {
		Schema string `json:"schema"`
		Doc    string `json:"doc"`
		where  string
		valid  bool
	}
	var variants []variant
	add := func(name string, doc *jsondoc.Value, where string) {
		b, err := json.Marshal(doc.Any())
		if err != nil {
			t.Fatal(err)
		}
		variants = append(variants, variant{Schema: name, Doc: string(b), where: where, valid: schema.ValidateJSON(name, b) == nil})
	}
	for name, pattern := range map[string]string{
		schema.SGEmployerNoticeSchemaFile: "sgemployer/testdata/*.in.json",
		schema.CanonicalSchemaFile:        "*/testdata/*.golden.json",
	} {
		for _, ex := range jsondoctest.Examples(t, repoPath(t, "adapters", pattern)) {
			add(name, ex.Doc, ex.File+" as is")
			jsondoctest.EachChange(ex.Doc, "", edges, func(where string) { add(name, ex.Doc, ex.File+" "+where) })
		}
	}

	file := ndjsonFile(t, variants)
	schemaDir := repoPath(t, "schema")
	verdicts := strings.Fields(string(runNode(t, dir, nil, "jsonschema-verdicts.mjs", schemaDir, file)))
	if len(verdicts) != len(variants) {
		t.Fatalf("ajv gave %d verdicts for %d documents", len(verdicts), len(variants))
	}
	valid, differ := 0, 0
	for i, v := range variants {
		ajv := verdicts[i] == "true"
		if ajv != v.valid {
			differ++
			if differ <= 20 {
				t.Errorf("%s, %s: the gateway says valid=%v, ajv %v", v.Schema, v.where, v.valid, ajv)
			}
		}
		if v.valid {
			valid++
		}
	}
	t.Logf("%d documents (%d valid), %d verdicts differ", len(variants), valid, differ)
	if valid < 100 || len(variants)-valid < 1000 {
		t.Errorf("too few variants (%d valid of %d) to mean anything", valid, len(variants))
	}
}

// Unicode spaces and line ends: ECMA-262's \s holds all of them but U+0085
// (which Unicode's White_Space holds), Go's \s only the ASCII ones; ECMA's .
// matches none of the line ends, Go's all but \n.
var spaces = []string{"\t", "\n", "\v", "\f", "\r", " ", "\u0085", "\u00a0", "\u1680", "\u2000", "\u200a",
	"\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff", "\u200b"}

// stringEdges replace a string value: dates and instants at the edges of
// their formats and patterns, and other scripts' digits.
var stringEdges = []string{"", "2026-02-28", "2024-02-29", "2026-02-29", "2026-2-28", "2026-02-28T10:00:00Z",
	"2026-02-28T10:00:00.5Z", "2026-02-28T10:00:00+08:00", "2026-02-28t10:00:00z", "2026-02-28 10:00:00Z",
	"2026-02-28T24:00:00Z", "2026-12-31T23:59:60Z", "2026-02-28T23:59:60Z", "2026-02-28T10:00:00",
	"03/03/2026", "03/03/2026 16:20", "٠٣/٠٣/٢٠٢٦", "２０１９１２３４５Ｋ", "201912345K", "b0867b30-be3c-5595-a939-c4d47c281950",
	"B0867B30-BE3C-5595-A939-C4D47C281950", "12.50", "0.00", "-0.00", "1e2", "SG", "sg", "MYR"}

// numberEdges replace a number value (none past what a JavaScript number
// holds exactly, where ajv cannot judge).
var numberEdges = []string{"0", "-0", "1", "1.0", "1e2", "1E+2", "1e-2", "0.5", "-1", "100", "101", "2147483648", "9007199254740991"}

// edges are the replacements of a value: for a string, itself with each
// space before, after and inside, the stringEdges, astral strings of many
// lengths, itself cut, lengthened and in lower case; for a number, the
// numberEdges and itself as a string; for any value, null.
func edges(orig *jsondoc.Value) []jsondoctest.Replacement {
	var out []jsondoctest.Replacement
	add := func(kind jsondoc.Kind, s, what string) {
		out = append(out, jsondoctest.Replacement{Value: jsondoc.Value{Kind: kind, Str: s}, What: what})
	}
	switch s := orig.Str; orig.Kind {
	case jsondoc.String:
		for _, sp := range spaces {
			add(jsondoc.String, s+sp, "+ space")
			add(jsondoc.String, sp+s, "space +")
			if n := len(s) / 2; n > 0 {
				add(jsondoc.String, s[:n]+sp+s[n:], "with a space inside")
			}
		}
		for _, e := range stringEdges {
			add(jsondoc.String, e, "= "+e)
		}
		for _, n := range []int{1, 2, 3, 5, 12, 33, 101, 121, 255, 4001} {
			add(jsondoc.String, strings.Repeat("𝔸", n), "= astral × n")
		}
		if s != "" {
			add(jsondoc.String, s[:len(s)-1], "cut")
			add(jsondoc.String, s+s[len(s)-1:], "lengthened")
			add(jsondoc.String, strings.ToLower(s), "lower case")
		}
	case jsondoc.Number:
		for _, e := range numberEdges {
			add(jsondoc.Number, e, "= "+e)
		}
		add(jsondoc.String, s, "as a string")
	}
	return append(out, jsondoctest.Replacement{Value: jsondoc.Value{Kind: jsondoc.Null}, What: "= null"})
}
