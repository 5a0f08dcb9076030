package jsondoc

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// same reports whether two trees are equal, member order included.
func same(a, b *Value) bool {
	if a.Kind != b.Kind || a.Bool != b.Bool || a.Str != b.Str || len(a.Items) != len(b.Items) || len(a.Members) != len(b.Members) {
		return false
	}
	if (a.Kind == Array) && (a.Items == nil) != (b.Items == nil) {
		return false
	}
	for i := range a.Items {
		if !same(a.Items[i], b.Items[i]) {
			return false
		}
	}
	for i := range a.Members {
		if a.Members[i].Name != b.Members[i].Name || !same(a.Members[i].Value, b.Members[i].Value) {
			return false
		}
	}
	return true
}

// differential checks Parse against the reference: the same verdict, the
// same tree, and for the refusals both parsers name the same reason where
// it is one of ours (encoding/json words its syntax errors its own way).
func differential(t *testing.T, in []byte, depth int) {
	t.Helper()
	got, gerr := Parse(in, depth)
	want, werr := referenceParse(in, depth)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("Parse(%q): error %v, reference %v", in, gerr, werr)
	}
	if gerr != nil {
		var se *SyntaxError
		if !errors.As(gerr, &se) {
			t.Fatalf("Parse(%q): %T is not a *SyntaxError", in, gerr)
		}
		for _, own := range []string{"byte-order mark", "not valid UTF-8", "duplicate member", "nesting deeper"} {
			if strings.HasPrefix(werr.Error(), "jsondoc: "+own) && !strings.HasPrefix(gerr.Error(), "jsondoc: "+own) {
				t.Fatalf("Parse(%q): %v, reference %v", in, gerr, werr)
			}
		}
		return
	}
	if !same(got, want) {
		t.Fatalf("Parse(%q): trees differ:\n got %#v\nwant %#v", in, got.Any(), want.Any())
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     any    // the tree as Any(), for ok cases
		err      string // start of the reason, for fail cases
	}{
		{"ok/object", `{"a":1,"b":[true,false,null],"c":"x"}`, map[string]any{"a": jsonNumber("1"), "b": []any{true, false, nil}, "c": "x"}, ""},
		{"ok/number-as-written", `[5.0,-0,1e10,2E-3]`, []any{jsonNumber("5.0"), jsonNumber("-0"), jsonNumber("1e10"), jsonNumber("2E-3")}, ""},
		{"ok/escapes", `"a\"\\\/\b\f\n\r\tb\u00e9\ud83d\ude00"`, "a\"\\/\b\f\n\r\tbé😀", ""},
		{"ok/lone-surrogate-is-replacement", `"\ud800x\udc00"`, "\uFFFDx\uFFFD", ""},
		{"ok/whitespace", " \t\r\n{ \"a\" : [ ] } \n", map[string]any{"a": []any{}}, ""},
		{"ok/twenty-members", `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"b8":8,"b9":9}`, nil, ""},
		{"fail/bom", "\xEF\xBB\xBF{}", nil, "byte-order mark"},
		{"fail/invalid-utf8", "\"\xff\"", nil, "not valid UTF-8"},
		{"fail/duplicate", `{"a":1,"a":2}`, nil, "duplicate member name \"a\""},
		{"fail/duplicate-after-sixteen", `{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"a3":7}`, nil, "duplicate member name \"a3\""},
		{"fail/too-deep", strings.Repeat("[", 33) + strings.Repeat("]", 33), nil, "nesting deeper than 32"},
		{"fail/trailing", `{} {}`, nil, "data after the document"},
		{"fail/empty", ``, nil, "unexpected end"},
		{"fail/unterminated", `{"a":"b`, nil, "unexpected end"},
		{"fail/leading-zero", `[01]`, nil, "invalid character '1' at byte 3"},
		{"fail/trailing-comma", `[1,]`, nil, "invalid character ']'"},
		{"fail/control-in-string", "\"a\tb\"", nil, "invalid character '\\t'"},
		{"fail/bad-escape", `"\x"`, nil, "invalid character 'x'"},
		{"fail/bad-unicode-escape", `"\u12G4"`, nil, "invalid character 'G'"},
		{"fail/single-quotes", `{'a':1}`, nil, "invalid character '\\''"},
		{"fail/bare-word", `nul`, nil, "unexpected end"},
		{"fail/name-not-string", `{1:2}`, nil, "invalid character '1'"},
		{"fail/missing-colon", `{"a" 1}`, nil, "invalid character '1'"},
		{"fail/dot-without-digits", `1.`, nil, "unexpected end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			differential(t, []byte(tc.in), 32)
			v, err := Parse([]byte(tc.in), 32)
			if strings.HasPrefix(tc.name, "fail/") {
				if err == nil || !strings.HasPrefix(err.Error(), "jsondoc: "+tc.err) {
					t.Fatalf("error %v, want %q...", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(v.Any(), tc.want) {
				t.Fatalf("got %#v, want %#v", v.Any(), tc.want)
			}
		})
	}
}

// The partner examples parse to the reference's trees.
func TestParseExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "*", "testdata", "*.json"))
	if len(files) < 5 {
		t.Fatalf("only %d example files found", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		differential(t, b, DefaultMaxDepth)
	}
}

// FuzzParse holds Parse to encoding/json's verdicts and trees.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "*", "testdata", "*.json"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{`{"a":[1,2.5e-3,"\u00e9\ud83d\ude00",true,null]}`, `"\ud800\u0041"`, `[[[[]]]]`, `{"a":1,"a":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		differential(t, in, 8)
	})
}

func BenchmarkParse(b *testing.B) {
	in, err := os.ReadFile(filepath.Join("..", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct {
		name  string
		parse func([]byte, int) (*Value, error)
	}{{"scanner", Parse}, {"decoder-token", referenceParse}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := p.parse(in, DefaultMaxDepth); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type jsonNumber = json.Number

// TestParseBounded: the values bound counts every value (objects, arrays,
// strings, numbers, literals; not member names) and refuses the first past it.
func TestParseBounded(t *testing.T) {
	doc := []byte(`{"a":[1,"x",true,null],"b":{"c":2.5}}`) // 8 values
	for _, tc := range []struct {
		name string
		max  int
		ok   bool
	}{
		{"ok/unbounded", 0, true},
		{"ok/at-the-bound", 8, true},
		{"fail/one-over", 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseBounded(doc, DefaultMaxDepth, tc.max)
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrTooManyValues)) || (tc.ok && len(v.Members) != 2) {
				t.Fatalf("max %d: %v", tc.max, err)
			}
		})
	}
}
