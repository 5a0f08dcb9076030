package interop

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// TestNodeAgreesWithJsondoc: the gateway's JSON reader (jsondoc) accepts
// no document that Node (a strict UTF-8 decoder, then JSON.parse) refuses,
// reads each it accepts as the same value, and refuses one Node accepts
// only for a rule of its own: a duplicate member name, nesting past its
// bound. The corpus is written here: every byte alone, inside a string,
// before and after a value; every escape; numbers from the grammar's
// parts, right and wrong; literals and their near misses; whitespace of
// every kind; invalid UTF-8 of every kind; structures cut short or with
// a comma too many.
func TestNodeAgreesWithJsondoc(t *testing.T) {
	need(t, "node")
	docs := jsonCorpus()
	enc := make([]string, len(docs))
	for i, d := range docs {
		enc[i] = base64.StdEncoding.EncodeToString(d)
	}
	casesFile := filepath.Join(t.TempDir(), "cases.json")
	b, _ := json.Marshal(enc)
	if err := os.WriteFile(casesFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := runNode(t, filepath.Join("testdata", "node"), []string{"CASES=" + casesFile}, "json-verdicts.mjs")
	var node []struct {
		OK    bool
		Canon string
		Err   string
	}
	if err := json.Unmarshal(out, &node); err != nil || len(node) != len(docs) {
		t.Fatalf("node's verdicts: %v (%d for %d documents)", err, len(node), len(docs))
	}
	both, ownRule, refusedByBoth := 0, 0, 0
	for i, d := range docs {
		v, err := jsondoc.Parse(d, 8)
		switch {
		case err == nil && !node[i].OK:
			t.Errorf("%q: jsondoc accepts, Node refuses (%s)", d, node[i].Err)
		case err == nil:
			both++
			if got := canonJSON(v); got != node[i].Canon {
				t.Errorf("%q: jsondoc reads %s, Node %s", d, got, node[i].Canon)
			}
		case node[i].OK:
			if msg := err.Error(); !strings.Contains(msg, "duplicate member") && !strings.Contains(msg, "nesting deeper") {
				t.Errorf("%q: Node accepts, jsondoc refuses: %v", d, err)
			}
			ownRule++
		default:
			refusedByBoth++
		}
	}
	if both < 500 || refusedByBoth < 500 || ownRule == 0 {
		t.Fatalf("%d documents: %d accepted by both, %d refused by both, %d by jsondoc's own rules: not the corpus intended", len(docs), both, refusedByBoth, ownRule)
	}
	t.Logf("%d documents: %d accepted by both (same values), %d refused by both, %d refused by jsondoc alone (duplicate names, depth)", len(docs), both, refusedByBoth, ownRule)
}

// canonJSON writes v as json-verdicts.mjs writes Node's value.
func canonJSON(v *jsondoc.Value) string {
	switch v.Kind {
	case jsondoc.Null:
		return "null"
	case jsondoc.Bool:
		return strconv.FormatBool(v.Bool)
	case jsondoc.Number:
		f, err := strconv.ParseFloat(v.Str, 64)
		if ne := (*strconv.NumError)(nil); err != nil && !(errors.As(err, &ne) && ne.Err == strconv.ErrRange) {
			return "bad number " + v.Str
		}
		return fmt.Sprintf("n:%016x", math.Float64bits(f))
	case jsondoc.String:
		return "s:" + hex.EncodeToString([]byte(v.Str))
	case jsondoc.Array:
		items := make([]string, len(v.Items))
		for i, it := range v.Items {
			items[i] = canonJSON(it)
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	members := slices.Clone(v.Members)
	slices.SortFunc(members, func(a, b jsondoc.Member) int { return strings.Compare(a.Name, b.Name) })
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = "s:" + hex.EncodeToString([]byte(m.Name)) + ":" + canonJSON(m.Value)
	}
	return "{" + strings.Join(out, ",") + "}"
}

// jsonCorpus is the documents TestNodeAgreesWithJsondoc reads.
func jsonCorpus() [][]byte {
	var docs [][]byte
	add := func(s string) { docs = append(docs, []byte(s)) }
	for c := range 256 {
		b := string([]byte{byte(c)})
		add(b)
		add(`"` + b + `"`)
		add(`["a` + b + `"]`)
		add(b + `{}`)
		add(`{}` + b)
		add(`[1` + b + `2]`)
		add(`{"a"` + b + `:1}`)
		add(`"\` + b + `"`)
		add(`"\u00` + b + `0"`)
	}
	for _, u := range []string{"0000", "001f", "0020", "007f", "00e9", "FFFF", "fffe", "d800", "DBFF", "dc00", "dfff", "d83d\\ude00",
		"d83d\\u0041", "d83d\\ud83d", "dc00\\ud800", "d83d\\n", "12", "12345", "g000", "000G", "+123", "-123", " 123", "1_23"} {
		add(`"\u` + u + `"`)
		add(`{"\u` + u + `":0}`)
	}
	signs, ints := []string{"", "-", "+", "--"}, []string{"", "0", "00", "01", "1", "12", "9007199254740993", strings.Repeat("9", 400)}
	fracs := []string{"", ".", ".0", ".01", "..1", ".e1"}
	exps := []string{"", "e", "E", "e+", "e-", "e1", "E+1", "e-01", "e01", "e+-1", "e400", "e-400", "e-324", "e308", "e309", "E99999999999999999999"}
	for _, s := range signs {
		for _, i := range ints {
			for _, f := range fracs {
				for _, e := range exps {
					n := s + i + f + e
					add(n)
					add(`[` + n + `]`)
				}
			}
		}
	}
	for _, n := range []string{"2.2250738585072011e-308", "4.9e-324", "2.4703282292062328e-324", "1.7976931348623157e308", "1.7976931348623158e308",
		"1.7976931348623159e308", "0.1", "1e23", "8.41e21", "5e-324", "-0", "-0.0", "-0e0", "0x10", "Infinity", "-Infinity", "NaN", ".5", "5.", "1.0e+",
		"123456789012345678901234567890", "0.000000000000000000000000000001e30"} {
		add(n)
		add(`{"n":` + n + `}`)
	}
	for _, l := range []string{"true", "false", "null", "True", "FALSE", "nul", "nulll", "tru", "truee", "t", "undefined", "'a'", `"a`, `a"`, `""`, `"""`} {
		add(l)
		add(`[` + l + `]`)
		add(`{"a":` + l + `}`)
	}
	for _, w := range []string{" ", "\t", "\n", "\r", "\r\n", "\f", "\v", "\u00a0", "\u2028", "\u2029", "\u3000", "\ufeff", "\u0085", "\x00", "/**/", "//\n", "#\n"} {
		add(w + `{"a":1}`)
		add(`{"a":1}` + w)
		add(`{` + w + `"a"` + w + `:` + w + `1` + w + `}`)
		add(`[` + w + `]`)
		add(`"` + w + `"`)
	}
	for _, bad := range []string{"\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x80\xaf", "\xe0\xa0", "\xed\xa0\x80", "\xed\xbf\xbf",
		"\xef\xbf\xbe", "\xef\xbf\xbf", "\xf0\x80\x80\xaf", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
		"\xef\xbb\xbf", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"} {
		add(`"` + bad + `"`)
		add(`{"` + bad + `":1}`)
		add(bad + `[]`)
		add(`[]` + bad)
	}
	for _, s := range []string{`{}`, `[]`, `{"a":1,}`, `[1,]`, `[,1]`, `{,"a":1}`, `{"a":1,,"b":2}`, `[1,,2]`, `{"a"}`, `{"a":}`, `{:1}`, `{"a" 1}`,
		`{"a":1 "b":2}`, `[1 2]`, `{"a":1}}`, `[[]]]`, `[`, `{`, `]`, `}`, `{"a":[}`, `["a":1]`, `{1:1}`, `{a:1}`, `{'a':1}`, `{"a":1,"a":1}`,
		`{"a":1,"b":{"a":2}}`, `{"a":{"b":1,"b":2}}`, `[{"a":1},{"a":1}]`, `{"\u0061":1,"a":2}`, `{"a":1,"A":2}`, `{"é":1,"e\u0301":2}`,
		`{"\ud800":1,"\udc00":2}`, `{"":1,"":2}`, ``, ` `, `{"a":1}{"a":1}`, `1 2`, `"a" "b"`, `[1][2]`, `{"__proto__":1}`,
		`{"constructor":1,"toString":2}`, `{"b":1,"1":2,"a":3,"0":4}`, strings.Repeat("[", 8) + strings.Repeat("]", 8),
		strings.Repeat("[", 9) + strings.Repeat("]", 9), strings.Repeat(`{"a":`, 8) + "1" + strings.Repeat("}", 8),
		strings.Repeat(`{"a":`, 9) + "1" + strings.Repeat("}", 9), `[` + strings.Repeat(`1,`, 1000) + `1]`} {
		add(s)
	}
	return docs
}
