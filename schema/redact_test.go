package schema

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestErrorRedacted: a schema failure names the place and the keyword, and
// never the value, which may be an identity number or a name.
func TestErrorRedacted(t *testing.T) {
	doc := exampleNotice(t)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"fail/pattern", `"idNo": "G5123456T"`, `"idNo": "G5123456T-SECRET"`, "/worker/idNo (pattern)"},
		{"fail/type", `"name": "Muhammad Hafiz bin Abdullah"`, `"name": ["Muhammad Hafiz bin Abdullah SECRET"]`, "/worker/name (type)"},
		{"fail/unknown-member", `"idNo": "G5123456T"`, `"idNo": "G5123456T", "SECRET": "G5123456T-SECRET"`, "/worker (additionalProperties)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Replace(doc, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(bad, doc) {
				t.Fatalf("example has no %s", tc.old)
			}
			err := ValidateJSON(SGEmployerNoticeSchemaFile, bad)
			var se *Error
			if !errors.As(err, &se) || len(se.Failures) == 0 {
				t.Fatalf("err %v (%T), want an *Error", err, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "SECRET") || strings.Contains(msg, "G5123456T") {
				t.Fatalf("%q: want %q and no value", msg, tc.want)
			}
		})
	}
	if err := ValidateJSON(SGEmployerNoticeSchemaFile, doc); err != nil {
		t.Fatalf("ok/example: %v", err)
	}
}

// TestErrorOrder: the library reports failures in map order; an Error lists
// them by place (array indexes as numbers), the same at every run, and
// keeps the first maxFailures (here of 14: the array's length, its 12
// items' sides, the worker's name).
func TestErrorOrder(t *testing.T) {
	var injuries []string
	for range 12 {
		injuries = append(injuries, `{"bodyPart": "HAND", "side": "UP", "nature": "FRACTURE"}`)
	}
	doc := exampleNotice(t)
	i, j := bytes.Index(doc, []byte(`"injuries": [`)), bytes.Index(doc, []byte(`]
  },`))
	if i < 0 || j < i {
		t.Fatal("example A has no injuries array where expected")
	}
	bad := slices.Concat(doc[:i], []byte(`"injuries": [`+strings.Join(injuries, ",")), doc[j:])
	bad = bytes.Replace(bad, []byte(`"name": "Muhammad Hafiz bin Abdullah"`), []byte(`"name": 7`), 1)

	want := []Failure{{"/incident/injuries", "maxItems"}} // the array's own failure first
	for i := range maxFailures - 1 {
		want = append(want, Failure{Pointer: "/incident/injuries/" + strconv.Itoa(i) + "/side", Keyword: "enum"})
	}
	for run := range 30 {
		var se *Error
		if err := ValidateJSON(SGEmployerNoticeSchemaFile, bad); !errors.As(err, &se) {
			t.Fatalf("run %d: err %v, want an *Error", run, err)
		}
		if !slices.Equal(se.Failures, want) {
			t.Fatalf("run %d: failures %v\nwant %v", run, se.Failures, want)
		}
	}

	// Fewer than the bound: all of them, the worker's after the incident's.
	bad = bytes.Replace(doc, []byte(`"side": "LEFT"`), []byte(`"side": "UP"`), 1)
	bad = bytes.Replace(bad, []byte(`"name": "Muhammad Hafiz bin Abdullah"`), []byte(`"name": 7`), 1)
	want = []Failure{{"/incident/injuries/0/side", "enum"}, {"/worker/name", "type"}}
	for run := range 30 {
		var se *Error
		if err := ValidateJSON(SGEmployerNoticeSchemaFile, bad); !errors.As(err, &se) || !slices.Equal(se.Failures, want) {
			t.Fatalf("run %d: err %v, want failures %v", run, err, want)
		}
	}
	const text = "fails the JSON Schema at /incident/injuries/0/side (enum), /worker/name (type)"
	if err := ValidateJSON(SGEmployerNoticeSchemaFile, bad); err == nil || err.Error() != text {
		t.Fatalf("err %v, want %q", err, text)
	}
}

func TestCompareFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Failure
		want int
	}{
		{"ok/index-as-number", Failure{"/a/2", "enum"}, Failure{"/a/10", "enum"}, -1},
		{"ok/name-as-text", Failure{"/a/b", "enum"}, Failure{"/a/c", "enum"}, -1},
		{"ok/parent-first", Failure{"/a", "required"}, Failure{"/a/b", "enum"}, -1},
		{"ok/root-first", Failure{"", "required"}, Failure{"/a", "enum"}, -1},
		{"ok/keyword-breaks-ties", Failure{"/a", "enum"}, Failure{"/a", "type"}, -1},
		{"ok/same", Failure{"/a/0", "enum"}, Failure{"/a/0", "enum"}, 0},
		{"ok/number-before-name", Failure{"/a/10", "enum"}, Failure{"/a/9a", "enum"}, -1},
		{"ok/number-before-name-below-it", Failure{"/a/9", "enum"}, Failure{"/a/10a", "enum"}, -1},
		{"ok/equal-numbers-as-text", Failure{"/a/01", "enum"}, Failure{"/a/1", "enum"}, -1},
		{"ok/past-uint64-as-text", Failure{"/a/18446744073709551616", "enum"}, Failure{"/a/x", "enum"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := compareFailures(tc.a, tc.b); got != tc.want {
				t.Fatalf("compare(%v, %v) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := compareFailures(tc.b, tc.a); got != -tc.want {
				t.Fatalf("compare(%v, %v) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}

// TestCompareFailuresTotal: failures sort to one order whatever order they
// come in, numbers, names and the tokens that are both or neither mixed.
func TestCompareFailuresTotal(t *testing.T) {
	var fs []Failure
	for _, a := range []string{"", "0", "1", "01", "2", "9", "10", "9a", "10a", "x", "18446744073709551616", "~1"} {
		for _, b := range []string{"", "3", "30", "3x"} {
			for _, k := range []string{"enum", "type"} {
				fs = append(fs, Failure{"/" + a + "/" + b, k})
			}
		}
	}
	want := slices.SortedFunc(slices.Values(fs), compareFailures)
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		if got := slices.SortedFunc(slices.Values(fs), compareFailures); !slices.Equal(got, want) {
			t.Fatalf("sorted differently from another order:\n%v\n%v", got, want)
		}
	}
}
