package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
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
		{"ok/thirty-two-deep", strings.Repeat("[", 32) + strings.Repeat("]", 32), nil, ""},
		{"ok/empty-containers", `{"a":{},"b":[]}`, map[string]any{"a": map[string]any{}, "b": []any{}}, ""},
		{"ok/empty-object", `{}`, map[string]any{}, ""},
		{"ok/number-digit-edges", `[0,9,-9,0.9,9e9,0E+0,90,-0.0e-09]`, []any{jsonNumber("0"), jsonNumber("9"), jsonNumber("-9"), jsonNumber("0.9"),
			jsonNumber("9e9"), jsonNumber("0E+0"), jsonNumber("90"), jsonNumber("-0.0e-09")}, ""},
		{"ok/hex-digit-edges", `"\u0009\u00AF\u00af\u0F0f\u9fAF"`, "\t\u00af\u00af\u0f0f\u9faf", ""},
		{"ok/last-surrogate-pair", `"\udbff\udfff"`, "\U0010FFFF", ""},
		{"ok/high-surrogate-then-another-escape", `"\ud83d\u0041"`, "\uFFFDA", ""},
		{"ok/high-surrogate-at-the-end", `"\ud83d"`, "\uFFFD", ""},
		{"ok/duplicate-name-of-forty", `{"` + strings.Repeat("é", 40) + `":1}`, nil, ""},
		{"fail/duplicate-name-of-forty", `{"` + strings.Repeat("é", 40) + `":1,"` + strings.Repeat("é", 40) + `":2}`, nil,
			"duplicate member name \"" + strings.Repeat("é", 40) + "\""},
		{"fail/duplicate-name-of-forty-one", `{"` + strings.Repeat("é", 41) + `":1,"` + strings.Repeat("é", 41) + `":2}`, nil,
			"duplicate member name \"" + strings.Repeat("é", 40) + "…\""},
		// The refusal names the first character that is not a hex digit,
		// after the edge digits before it.
		{"fail/hex-digit-before-zero", `"\u0/00"`, nil, "invalid character '/'"},
		{"fail/hex-digit-after-nine", `"\u9:00"`, nil, "invalid character ':'"},
		{"fail/hex-digit-before-upper-a", `"\uA@00"`, nil, "invalid character '@'"},
		{"fail/hex-digit-after-upper-f", `"\uFG00"`, nil, "invalid character 'G'"},
		{"fail/hex-digit-before-lower-a", "\"\\ua`00\"", nil, "invalid character '`'"},
		{"fail/hex-digit-after-lower-f", `"\ufg00"`, nil, "invalid character 'g'"},
		{"fail/unicode-escape-cut", `"\u12`, nil, "unexpected end"},
		{"fail/unicode-escape-cut-before-quote", `"\u123"`, nil, "invalid character '\"'"},
		{"fail/escape-at-the-end", `"abc\`, nil, "unexpected end"},
		{"fail/escaped-string-cut", `"a\nb`, nil, "unexpected end"},
		{"fail/array-open", `[`, nil, "unexpected end"},
		{"fail/array-after-item", `[1`, nil, "unexpected end"},
		{"fail/array-after-comma", `[1,`, nil, "unexpected end"},
		{"fail/object-open", `{`, nil, "unexpected end"},
		{"fail/object-after-name", `{"a"`, nil, "unexpected end"},
		{"fail/object-after-member", `{"a":1`, nil, "unexpected end"},
		{"fail/minus-alone", `-`, nil, "unexpected end"},
		{"fail/exponent-without-digits", `1e+`, nil, "unexpected end"},
		{"fail/exponent-cut", `1e`, nil, "unexpected end"},
		{"fail/too-deep-objects", strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33), nil, "nesting deeper than 32"},
		{"fail/literal-cut", `tru`, nil, "unexpected end"},
		{"fail/literal-wrong", `[fals3]`, nil, "invalid character '3'"},
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
	var sc Scratch // reused from one input to the next, as a pool's are
	f.Fuzz(func(t *testing.T, in []byte) {
		differential(t, in, 8)
		reused(t, &sc, in, 8)
	})
}

// reused checks Scratch.Parse against Parse: the same verdict and tree,
// whatever sc read before.
func reused(t *testing.T, sc *Scratch, in []byte, depth int) {
	t.Helper()
	want, werr := Parse(in, depth)
	got, gerr := sc.Parse(in, depth)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("Scratch.Parse(%q): error %v, Parse %v", in, gerr, werr)
	}
	if gerr == nil && !same(got, want) {
		t.Fatalf("Scratch.Parse(%q): trees differ:\n got %#v\nwant %#v", in, got.Any(), want.Any())
	}
}

// TestScratch: one Scratch reads documents of every size and shape in turn
// (larger, smaller, failing, with more values than its blocks hold) into
// the trees Parse gives; what an earlier document left in its blocks never
// shows in a later tree.
func TestScratch(t *testing.T) {
	example := exampleA(t)
	long := "[" + strings.Repeat(`{"a":1,"b":[true,"x"]},`, 400) + `{"c":null}]`
	docs := []struct {
		name string
		doc  string
	}{
		{"ok/notice", string(example)},
		{"ok/header", `{"alg":"ES256","kid":"k1"}`},
		{"ok/past-the-blocks", long},
		{"ok/scalars-after-containers", `[1,"two",false,null,{}]`},
		{"fail/duplicate", `{"a":{"b":1,"b":2}}`},
		{"ok/escapes", `{"\u00e9":"a\nb","n":-0.5e+3}`},
		{"fail/truncated", `{"a":[1,2`},
		{"ok/notice-again", string(example)},
		{"ok/empty", `{}`},
	}
	var sc Scratch
	for _, order := range []string{"forward", "backward"} {
		for i := range docs {
			d := docs[i]
			if order == "backward" {
				d = docs[len(docs)-1-i]
			}
			t.Run(order+"/"+d.name, func(t *testing.T) {
				_, err := Parse([]byte(d.doc), DefaultMaxDepth)
				if (err == nil) != strings.HasPrefix(d.name, "ok/") {
					t.Fatalf("Parse: %v", err)
				}
				reused(t, &sc, []byte(d.doc), DefaultMaxDepth)
			})
		}
	}
}

// TestScratchAllocations: once its blocks have grown to a document, a
// Scratch reads the next like it with the document's string alone.
func TestScratchAllocations(t *testing.T) {
	doc := exampleA(t)
	var sc Scratch
	if _, err := sc.Parse(doc, DefaultMaxDepth); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { sc.Parse(doc, DefaultMaxDepth) }); n > 1 {
		t.Errorf("%v allocations, want 1 (the document as a string)", n)
	}
}

// exampleA is the employer format's example A, a notice as partners send it.
func exampleA(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkParse(b *testing.B) {
	in := exampleA(b)
	for _, p := range []struct {
		name  string
		parse func([]byte, int) (*Value, error)
	}{{"scanner", Parse}, {"scratch", new(Scratch).Parse}, {"decoder-token", referenceParse}} {
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

// TestParseDefaultDepth: a depth of 0 or less is DefaultMaxDepth (32), not
// no nesting at all.
func TestParseDefaultDepth(t *testing.T) {
	for _, depth := range []int{0, -1} {
		if _, err := Parse([]byte(strings.Repeat("[", 32)+strings.Repeat("]", 32)), depth); err != nil {
			t.Fatalf("depth %d: 32 levels refused: %v", depth, err)
		}
		if _, err := Parse([]byte(strings.Repeat("[", 33)+strings.Repeat("]", 33)), depth); err == nil || !strings.Contains(err.Error(), "nesting deeper than 32") {
			t.Fatalf("depth %d: 33 levels: %v, want nesting deeper than 32", depth, err)
		}
	}
}

// TestReason: a refusal's reason comes without the package's prefix, for
// each kind of refusal and through a caller's wrapping.
func TestReason(t *testing.T) {
	_, syntax := Parse([]byte(`{"a":1,"a":2}`), 0)
	_, bound := ParseBounded([]byte(`[1,2]`), 0, 1)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"ok/syntax", syntax, `duplicate member name "a"`},
		{"ok/wrapped", fmt.Errorf("config: %w", syntax), `duplicate member name "a"`},
		{"ok/too-many-values", bound, "more values than the document may hold"},
		{"ok/another-error", errors.New("read: EOF"), "read: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reason(tc.err); got != tc.want {
				t.Fatalf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// TestParseAllocations: a document's tree comes in a few allocations sized
// to it, and what is counted to size them (commas, colons, brackets, which
// may be inside strings) never makes Parse allocate more than a bounded
// block for them.
func TestParseAllocations(t *testing.T) {
	example := exampleA(t)
	for _, tc := range []struct {
		name      string
		doc       []byte
		maxAllocs float64
		maxBytes  int
	}{
		{"ok/jws-header", []byte(`{"alg":"ES256","kid":"sg-employer-2026"}`), 6, 1 << 10},
		{"ok/notice", example, 12, 6 * len(example)},
		{"ok/commas-in-a-string", []byte(`"` + strings.Repeat(",:[{", 1<<16) + `"`), 8, 2*4<<16 + 48<<10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.doc, DefaultMaxDepth); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(20, func() { Parse(tc.doc, DefaultMaxDepth) }); n > tc.maxAllocs {
				t.Errorf("%v allocations, want at most %v", n, tc.maxAllocs)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			Parse(tc.doc, DefaultMaxDepth)
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > uint64(tc.maxBytes) {
				t.Errorf("%d bytes allocated for a %d-byte document, want at most %d", n, len(tc.doc), tc.maxBytes)
			}
		})
	}
}

// TestCountUpTo: preallocate's counts are exact below their bound, across
// the chunks they are counted in, and stop within a chunk of reaching it.
func TestCountUpTo(t *testing.T) {
	commas := func(n, gap int) []byte { return []byte(strings.Repeat(","+strings.Repeat(" ", gap), n)) }
	for _, tc := range []struct {
		name     string
		b        []byte
		n        int
		min, max int
	}{
		{"ok/empty", nil, 256, 0, 0},
		{"ok/few", []byte(`{"a":1,"b":[2,3]}`), 256, 2, 2},
		{"ok/across-chunks", commas(200, 100), 256, 200, 200}, // 20 KB, five chunks
		{"ok/exactly-the-bound", commas(256, 30), 256, 256, 256},
		{"ok/stops-past-the-bound", commas(1<<20, 0), 256, 256, 4 << 10}, // 1 MB of commas: one chunk counted
		{"ok/sparse-past-the-bound", commas(10_000, 99), 256, 256, 256 + 41},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := countUpTo(tc.b, ',', tc.n)
			if got < tc.min || got > tc.max {
				t.Fatalf("countUpTo = %d, want %d–%d", got, tc.min, tc.max)
			}
			if all := bytes.Count(tc.b, []byte{','}); all < tc.n && got != all {
				t.Fatalf("countUpTo = %d below the bound, bytes.Count %d", got, all)
			}
		})
	}
}

// BenchmarkParseLarge reads a 1.2 MB array of small objects, the shape of
// an insurer's batch.
func BenchmarkParseLarge(b *testing.B) {
	in := []byte("[" + strings.Repeat(`{"claimId":"C-1","amount":12.5,"codes":["S62.5","W23"]},`, 20_000) + `{}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(in, DefaultMaxDepth); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseThen: use gets the tree Parse gives; a document Parse refuses
// never reaches use, and use's own error is ParseThen's.
func TestParseThen(t *testing.T) {
	errUse := errors.New("use refused")
	for _, tc := range []struct {
		name, doc string
		useErr    error
		want      error // nil, errUse, or any syntax error
	}{
		{"ok/example", string(exampleA(t)), nil, nil},
		{"ok/small-after-large", `[1,{"a":"b"}]`, nil, nil},
		{"fail/syntax", `{"a":`, nil, &SyntaxError{}},
		{"fail/use", `{"a":1}`, errUse, errUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, _ := Parse([]byte(tc.doc), DefaultMaxDepth)
			called := false
			err := ParseThen([]byte(tc.doc), DefaultMaxDepth, func(v *Value) error {
				called = true
				if !same(v, want) {
					t.Errorf("tree differs from Parse's")
				}
				return tc.useErr
			})
			var se *SyntaxError
			switch {
			case tc.want == nil && err != nil, tc.want == errUse && !errors.Is(err, errUse):
				t.Fatalf("err %v, want %v", err, tc.want)
			case tc.want != nil && tc.want != errUse && (!errors.As(err, &se) || called):
				t.Fatalf("err %v (use called: %v), want a syntax error and no use", err, called)
			}
		})
	}
}

// TestSyntaxErrorOffset: a refusal found at one place says where (a
// configuration file's error gives it as a line and column); one of the
// whole document says nowhere.
func TestSyntaxErrorOffset(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		offset    int
	}{
		{"fail/invalid-character", `{"a" 1}`, 6},
		{"fail/duplicate-member", `{"a":1, "b":2, "a":3}`, 16},
		{"fail/duplicate-member-of-many", `{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"a":1}`, 104},
		{"fail/end-of-document", `{"a":`, 0},
		{"fail/data-after", `{} {}`, 0},
		{"fail/too-deep", `[[[[`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), 3)
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset != tc.offset {
				t.Fatalf("%v: offset %+v, want %d", err, se, tc.offset)
			}
		})
	}
}
