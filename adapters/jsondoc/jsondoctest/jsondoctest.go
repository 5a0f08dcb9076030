// Package jsondoctest changes a jsondoc tree one place at a time, for the
// tests that hold two judges of a document to the same verdict on every
// variant (the schema's quick form and its library; the gateway and ajv).
package jsondoctest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// Replacement is a value to put in place of another, with a word on it for
// the test's messages.
type Replacement struct {
	Value jsondoc.Value
	What  string
}

// EachChange calls check once for each variant of the tree at v, restoring
// v after each: every value replaced by each of replace(value); every member
// of an object removed, and a member "zz" added; every array emptied,
// shortened by its first item and lengthened by it. path is v's JSON
// Pointer; check gets the variant's place and change.
func EachChange(v *jsondoc.Value, path string, replace func(orig *jsondoc.Value) []Replacement, check func(where string)) {
	orig := *v
	for _, r := range replace(&orig) {
		*v = r.Value
		check(path + " " + r.What)
	}
	*v = orig
	switch v.Kind {
	case jsondoc.Object:
		for i, m := range orig.Members {
			v.Members = append(append([]jsondoc.Member{}, orig.Members[:i]...), orig.Members[i+1:]...)
			check(path + " without " + m.Name)
		}
		v.Members = append(append([]jsondoc.Member{}, orig.Members...), jsondoc.Member{Name: "zz", Value: &jsondoc.Value{Kind: jsondoc.Number, Str: "1"}})
		check(path + " with zz")
		v.Members = orig.Members
		for _, m := range orig.Members {
			EachChange(m.Value, jsondoc.Pointer(path, m.Name), replace, check)
		}
	case jsondoc.Array:
		if len(orig.Items) > 0 {
			for _, items := range [][]*jsondoc.Value{nil, orig.Items[1:], append(append([]*jsondoc.Value{}, orig.Items...), orig.Items[0])} {
				v.Items = items
				check(path + " resized")
			}
		}
		v.Items = orig.Items
		for i, it := range orig.Items {
			EachChange(it, jsondoc.Index(path, i), replace, check)
		}
	}
}

// Example is one document of an example file; a file holding an array (a
// batch's records) gives one for each item.
type Example struct {
	File string // the file's base name
	Doc  *jsondoc.Value
}

// Examples reads the example files the pattern matches (filepath.Glob),
// failing t when there are none or one is not JSON.
func Examples(t testing.TB, pattern string) []Example {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples %s: %v", pattern, err)
	}
	var out []Example
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsondoc.Parse(b, jsondoc.DefaultMaxDepth)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		docs := []*jsondoc.Value{v}
		if v.Kind == jsondoc.Array {
			docs = v.Items
		}
		for _, d := range docs {
			out = append(out, Example{File: filepath.Base(f), Doc: d})
		}
	}
	return out
}
