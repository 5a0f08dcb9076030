package adaptertest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Golden compares got with the golden file at path, or with -update writes it.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("differs from %s (run go test -update after review):\n%s", path, got)
	}
}

// MatchSpec compares a record (as JSON) with what the specification's example
// gives for it (the JSON file at path): the whole record when whole is set,
// otherwise every member the example lists, whatever else the record holds.
func MatchSpec(t testing.TB, path string, got []byte, whole bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want, have any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.Unmarshal(got, &have); err != nil {
		t.Fatal(err)
	}
	if whole {
		if !reflect.DeepEqual(want, have) {
			t.Fatalf("differs from the specification (%s):\n%s", path, got)
		}
		return
	}
	if at, ok := covers(have, want, ""); !ok {
		t.Fatalf("differs from the specification (%s) at %s:\n%s", path, at, got)
	}
}

// covers reports whether every member of want is in got, with its value.
func covers(got, want any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, wv := range w {
			if p, ok := covers(g[k], wv, path+"/"+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := covers(g[i], w[i], path+"/"+strconv.Itoa(i)); !ok {
				return p, false
			}
		}
		return "", true
	default:
		return path, reflect.DeepEqual(got, want)
	}
}
