package schema

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/adapters/jsondoc/jsondoctest"
)

// TestQuickTakesOurSchemas: both embedded schemas have a quick form, or
// every notice would pay for the library's validator again.
func TestQuickTakesOurSchemas(t *testing.T) {
	for _, name := range []string{CanonicalSchemaFile, SGEmployerNoticeSchemaFile} {
		s, err := Validator(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := compileQuick(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if quicks[name] == nil {
			t.Errorf("%s: no quick form in use", name)
		}
	}
}

// compileText compiles one schema document with the library, as compileAll
// does.
func compileText(t testing.TB, text string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestQuick: each keyword quick implements, on values either side of it;
// quick and the library must both give the expected verdict.
func TestQuick(t *testing.T) {
	for _, tc := range []struct {
		name, schema, doc string
	}{
		{"ok/integer-with-zero-fraction", `{"type":"integer"}`, `1.0`},
		{"fail/integer-with-fraction", `{"type":"integer"}`, `1.5`},
		{"ok/integer-with-exponent", `{"type":"integer"}`, `-1E2`},
		{"fail/integer-with-negative-exponent", `{"type":"integer"}`, `1e-1`},
		{"fail/null-for-integer", `{"type":"integer"}`, `null`},
		{"ok/integer-or-null", `{"type":["integer","null"]}`, `null`},
		{"fail/integer-or-null", `{"type":["integer","null"]}`, `0.5`},
		{"ok/integer-or-number", `{"type":["integer","number"]}`, `0.5`},
		{"ok/number-or-null", `{"type":["number","null"]}`, `null`},
		{"fail/string-for-number", `{"type":"number"}`, `"1"`},
		{"ok/const-number-by-value", `{"const":10}`, `1e1`},
		{"fail/const-string-for-number", `{"const":1}`, `"1"`},
		{"ok/enum-null", `{"enum":["A",null,true]}`, `null`},
		{"fail/enum", `{"enum":["A","B"]}`, `"C"`},
		{"fail/enum-of-strings", `{"enum":["1"]}`, `1`},
		{"ok/enum-mixed", `{"enum":["A",1]}`, `1.0`},
		{"ok/min-length-counts-characters", `{"minLength":2,"maxLength":2}`, `"ÄÄ"`},
		{"fail/max-length", `{"maxLength":1}`, `"ÄÄ"`},
		{"ok/pattern-not-anchored", `{"pattern":"[0-9]{2}"}`, `"a12b"`},
		{"fail/pattern", `{"pattern":"^[A-Z]{2}$"}`, `"MYS"`},
		{"ok/pattern-ignores-numbers", `{"pattern":"^x$"}`, `12`},
		{"ok/format-date", `{"format":"date"}`, `"2028-02-29"`},
		{"fail/format-date", `{"format":"date"}`, `"2026-02-29"`},
		{"fail/format-date-time", `{"format":"date-time"}`, `"2026-02-28T24:00:00Z"`},
		{"fail/format-email", `{"format":"email"}`, `"a@"`},
		{"ok/minimum", `{"minimum":0,"maximum":100}`, `100`},
		{"fail/maximum", `{"minimum":0,"maximum":100}`, `100.5`},
		{"fail/minimum", `{"minimum":0}`, `-1e-9`},
		{"fail/exclusive-minimum", `{"exclusiveMinimum":0}`, `0`},
		{"fail/exclusive-maximum", `{"exclusiveMaximum":1}`, `1.0`},
		{"ok/minimum-fraction", `{"minimum":0.5}`, `1`},
		{"fail/maximum-beyond-int64", `{"maximum":100}`, `123456789012345678901234567890`},
		{"ok/minimum-beyond-int64", `{"minimum":-1}`, `123456789012345678901234567890`},
		{"ok/required", `{"required":["a"]}`, `{"a":null}`},
		{"fail/required", `{"required":["a"]}`, `{"b":1}`},
		{"ok/required-ignores-arrays", `{"required":["a"]}`, `[]`},
		{"fail/additional-false", `{"properties":{"a":true},"additionalProperties":false}`, `{"a":1,"b":1}`},
		{"fail/additional-schema", `{"additionalProperties":{"type":"string"}}`, `{"b":1}`},
		{"ok/additional-schema", `{"additionalProperties":{"type":"string"}}`, `{"b":"1"}`},
		{"fail/property", `{"properties":{"a":{"type":"string"}}}`, `{"a":1}`},
		{"fail/min-properties", `{"minProperties":1}`, `{}`},
		{"fail/max-properties", `{"maxProperties":1}`, `{"a":1,"b":2}`},
		{"ok/items", `{"items":{"type":"string"},"minItems":1,"maxItems":2}`, `["a","b"]`},
		{"fail/items", `{"items":{"type":"string"}}`, `["a",1]`},
		{"fail/min-items", `{"minItems":1}`, `[]`},
		{"fail/max-items", `{"maxItems":1}`, `[1,2]`},
		{"ok/ref", `{"$ref":"#/$defs/d","$defs":{"d":{"type":"string"}}}`, `"a"`},
		{"fail/ref-with-sibling", `{"$ref":"#/$defs/d","minLength":2,"$defs":{"d":{"type":"string"}}}`, `"a"`},
		{"fail/not", `{"not":{"required":["a"]}}`, `{"a":1}`},
		{"ok/all-of", `{"allOf":[{"type":"string"},{"minLength":1}]}`, `"a"`},
		{"fail/all-of", `{"allOf":[{"type":"string"},{"minLength":2}]}`, `"a"`},
		{"ok/any-of", `{"anyOf":[{"type":"string"},{"type":"null"}]}`, `null`},
		{"fail/any-of", `{"anyOf":[{"type":"string"},{"type":"null"}]}`, `1`},
		{"ok/one-of", `{"oneOf":[{"type":"string"},{"minLength":3}]}`, `"ab"`},
		{"fail/one-of-both", `{"oneOf":[{"type":"string"},{"minLength":1}]}`, `"ab"`},
		{"ok/if-then", `{"if":{"required":["a"]},"then":{"required":["b"]}}`, `{"a":1,"b":1}`},
		{"fail/if-then", `{"if":{"required":["a"]},"then":{"required":["b"]}}`, `{"a":1}`},
		{"fail/if-else", `{"if":{"required":["a"]},"else":{"required":["b"]}}`, `{"c":1}`},
		{"ok/if-alone", `{"if":{"required":["a"]}}`, `{"c":1}`},
		{"fail/false-schema", `{"properties":{"a":false}}`, `{"a":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compileText(t, tc.schema)
			q, err := compileQuick(s)
			if err != nil {
				t.Fatal(err)
			}
			v, err := jsondoc.Parse([]byte(tc.doc), jsondoc.DefaultMaxDepth)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.HasPrefix(tc.name, "ok/")
			if got := s.Validate(v.Any()) == nil; got != want {
				t.Fatalf("the library says valid=%v; the case is wrong", got)
			}
			if got := q.valid(v); got != want {
				t.Errorf("quick says valid=%v", got)
			}
		})
	}
}

// TestQuickRefuses: a schema with a keyword quick does not implement, or
// one referring to itself, is left to the library.
func TestQuickRefuses(t *testing.T) {
	for _, tc := range []struct{ name, schema string }{
		{"fail/unevaluated", `{"properties":{"a":true},"unevaluatedProperties":false}`},
		{"fail/pattern-properties", `{"patternProperties":{"^a":true}}`},
		{"fail/unique-items", `{"uniqueItems":true}`},
		{"fail/prefix-items", `{"prefixItems":[true]}`},
		{"fail/multiple-of", `{"multipleOf":2}`},
		{"fail/dependent-required", `{"dependentRequired":{"a":["b"]}}`},
		{"fail/enum-of-objects", `{"enum":[{"a":1}]}`},
		{"fail/recursive", `{"properties":{"next":{"$ref":"#"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if q, err := compileQuick(compileText(t, tc.schema)); err == nil {
				t.Fatalf("compiled: %+v", q)
			}
		})
	}
}

// examples are the documents TestQuickAgrees and FuzzQuick mutate: the
// adapters' example notices and the canonical records made from them.
func examples(t testing.TB) map[string][]*jsondoc.Value {
	t.Helper()
	docs := map[string][]*jsondoc.Value{}
	for name, pattern := range map[string]string{CanonicalSchemaFile: "*/testdata/*.golden.json", SGEmployerNoticeSchemaFile: "sgemployer/testdata/*.in.json"} {
		for _, ex := range jsondoctest.Examples(t, filepath.Join("..", "adapters", pattern)) {
			docs[name] = append(docs[name], ex.Doc)
		}
	}
	return docs
}

// TestQuickAgrees compares quick with the library on every example and on
// every mutation of it: each value replaced by values of every type, by
// every string the schema names where it holds one of them, each member
// removed, a member added, each array emptied, shortened and lengthened.
func TestQuickAgrees(t *testing.T) {
	for name, docs := range examples(t) {
		s, err := Validator(name)
		if err != nil {
			t.Fatal(err)
		}
		q := quicks[name]
		consts := schemaStrings(t, name)
		var valid, invalid int
		for i, doc := range docs {
			agree := func(path string) {
				got, want := q.valid(doc), s.Validate(doc.Any()) == nil
				if got != want {
					b, _ := json.Marshal(doc.Any())
					t.Fatalf("%s example %d, %s: quick says valid=%v, the library %v\n%s", name, i, path, got, want, b)
				}
				if want {
					valid++
				} else {
					invalid++
				}
			}
			agree("as is")
			jsondoctest.EachChange(doc, "", mutations(consts), agree)
		}
		t.Logf("%s: %d valid and %d invalid variants agree", name, valid, invalid)
		if valid < 10 || invalid < 1000 {
			t.Errorf("%s: too few variants (%d valid, %d invalid) to mean anything", name, valid, invalid)
		}
	}
}

// replacements stand in for any value: one or more of every type.
var replacements = []string{`null`, `true`, `false`, `0`, `1`, `1.0`, `-1`, `1.5`, `101`, `""`, `"x"`, `"ÄÄ"`,
	`"MY"`, `"MYR"`, `"2026-02-28"`, `"2026-02-30"`, `"2026-02-28T10:00:00Z"`, `"2026-02-28T10:00:00+08:00"`,
	`"b0867b30-be3c-5595-a939-c4d47c281950"`, `"12.50"`, `{}`, `[]`, `[1]`}

// mutations replace a value by values of every type (replacements) and, for
// a string the schema names, by every string it names.
func mutations(consts map[string]bool) func(orig *jsondoc.Value) []jsondoctest.Replacement {
	var vals []jsondoctest.Replacement
	for _, r := range replacements {
		rv, err := jsondoc.Parse([]byte(r), 4)
		if err != nil {
			panic(err)
		}
		vals = append(vals, jsondoctest.Replacement{Value: *rv, What: "= " + r})
	}
	return func(orig *jsondoc.Value) []jsondoctest.Replacement {
		if orig.Kind != jsondoc.String || !consts[orig.Str] {
			return vals
		}
		out := append([]jsondoctest.Replacement{}, vals...)
		for c := range consts {
			out = append(out, jsondoctest.Replacement{Value: jsondoc.Value{Kind: jsondoc.String, Str: c}, What: "= " + c})
		}
		return out
	}
}

// schemaStrings collects every string value of a schema document's enum and
// const keywords.
func schemaStrings(t testing.TB, name string) map[string]bool {
	t.Helper()
	b, err := files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if k == "enum" || k == "const" {
					for _, s := range append([]any{v}, asSlice(v)...) {
						if s, ok := s.(string); ok {
							out[s] = true
						}
					}
				}
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	walk(doc)
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// FuzzQuick: on any document jsondoc reads, quick and the library agree,
// for both schemas, and ValidateTree gives the same verdict, a refusal as
// an *Error.
func FuzzQuick(f *testing.F) {
	for _, docs := range examples(f) {
		for _, d := range docs {
			b, err := json.Marshal(d.Any())
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := jsondoc.Parse(b, jsondoc.DefaultMaxDepth)
		if err != nil {
			return
		}
		for _, name := range []string{CanonicalSchemaFile, SGEmployerNoticeSchemaFile} {
			s, _ := Validator(name)
			got, want := quicks[name].valid(v), s.Validate(v.Any()) == nil
			if got != want {
				t.Fatalf("%s: quick says valid=%v, the library %v", name, got, want)
			}
			// What callers get: the verdict, and a refusal told as places and keywords.
			err := ValidateTree(name, v)
			var se *Error
			if (err == nil) != want || (err != nil && (!errors.As(err, &se) || len(se.Failures) == 0)) {
				t.Fatalf("%s: ValidateTree = %v (%T), valid %v", name, err, err, want)
			}
			// ... at most maxFailures of them, by place, each once, the same again.
			if se != nil {
				if len(se.Failures) > maxFailures || !slices.IsSortedFunc(se.Failures, compareFailures) ||
					len(slices.Compact(slices.Clone(se.Failures))) != len(se.Failures) {
					t.Fatalf("%s: failures %v: over %d, out of order or repeated", name, se.Failures, maxFailures)
				}
				if again := ValidateTree(name, v); again.Error() != err.Error() {
					t.Fatalf("%s: %q, then %q", name, err, again)
				}
			}
		}
	})
}

// BenchmarkValidate: an example of each schema through ValidateTree (its
// quick form) and through the library alone.
func BenchmarkValidate(b *testing.B) {
	docs := examples(b)
	for _, name := range []string{CanonicalSchemaFile, SGEmployerNoticeSchemaFile} {
		doc := docs[name][0]
		s, err := Validator(name)
		if err != nil {
			b.Fatal(err)
		}
		short := strings.SplitN(name, "-", 2)[0]
		b.Run(short+"/quick", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ValidateTree(name, doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(short+"/library", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Validate(doc.Any()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
