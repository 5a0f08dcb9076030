package interop

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/adapters/jsondoc/jsondoctest"
	"github.com/perkeso/jambatan/adapters/sgemployer"
)

// TestJsonPointerResolvesProblems: every problem the JSON adapters report
// is located by a JSON Pointer that npm jsonpointer, an independent RFC 6901
// implementation, resolves in the document as sent: to a value, or, for a
// required member that is absent, to its place in an object that lacks it.
// The documents are the examples changed one place at a time (as for ajv,
// TestAjvAgreesWithSchema), and with members whose names need escaping
// ("a/b", "~1", "~", "") added at each level.
func TestJsonPointerResolvesProblems(t *testing.T) {
	dir := nodeModules(t)
	type doc struct {
		Doc      string   `json:"doc"`
		Pointers []string `json:"pointers"`
		problems []adapters.Problem
		where    string
	}
	var docs []doc
	add := func(read func([]byte) []adapters.Problem, v *jsondoc.Value, where string) {
		b, err := json.Marshal(v.Any())
		if err != nil {
			t.Fatal(err)
		}
		ps := read(b)
		d := doc{Doc: string(b), problems: ps, where: where, Pointers: []string{}}
		for _, p := range ps {
			d.Pointers = append(d.Pointers, p.Pointer)
		}
		docs = append(docs, d)
	}
	readers := map[string]func([]byte) []adapters.Problem{
		"sgemployer/testdata/*.in.json": func(b []byte) []adapters.Problem {
			d, err := sgemployer.Adapter{}.Read(b)
			return problemsOf(t, err, func() []adapters.Problem { return d.Problems() })
		},
		"insurerclaim/testdata/*.in.json": func(b []byte) []adapters.Problem {
			batch, err := insurerclaim.Read(b)
			return problemsOf(t, err, func() []adapters.Problem {
				ps := batch.Problems
				for _, c := range batch.Claims {
					ps = append(ps, c.Problems...)
				}
				return ps
			})
		},
	}
	for pattern, read := range readers {
		for _, ex := range jsondoctest.Examples(t, repoPath(t, "adapters", pattern)) {
			jsondoctest.EachChange(ex.Doc, "", edges, func(where string) { add(read, ex.Doc, ex.File+" "+where) })
			escapingNames(ex.Doc, "", func(where string) { add(read, ex.Doc, ex.File+" "+where) })
		}
	}

	lines := strings.Split(strings.TrimSpace(string(runNode(t, dir, nil, "pointer-resolve.mjs", ndjsonFile(t, docs)))), "\n")
	if len(lines) != len(docs) {
		t.Fatalf("%d answers for %d documents", len(lines), len(docs))
	}
	counts := map[string]int{}
	for i, d := range docs {
		verdicts := strings.Fields(lines[i])
		if len(d.problems) == 0 {
			continue
		}
		for j, p := range d.problems {
			v := verdicts[j]
			counts[v]++
			if v == "value" || v == "absent" && p.Code == adapters.CodeMissing {
				continue
			}
			t.Errorf("%s: problem %s at %q: jsonpointer finds it %s", d.where, p.Code, p.Pointer, v)
		}
	}
	if counts["value"] < 1000 || counts["absent"] < 100 {
		t.Fatalf("pointers: %v: not the corpus intended", counts)
	}
	t.Logf("%d documents; their problems' pointers: %d name a value, %d an absent required member", len(docs), counts["value"], counts["absent"])
}

// problemsOf is the problems of a read: the InvalidError's, or the
// document's.
func problemsOf(t *testing.T, err error, doc func() []adapters.Problem) []adapters.Problem {
	var ie *adapters.InvalidError
	if errors.As(err, &ie) {
		return ie.Problems
	}
	if err != nil {
		t.Fatal(err)
	}
	return doc()
}

// escapingNames adds, to each object of the tree at v in turn, members whose
// names a JSON Pointer must escape, calling check with each variant.
func escapingNames(v *jsondoc.Value, path string, check func(where string)) {
	switch v.Kind {
	case jsondoc.Object:
		orig := v.Members
		for _, name := range []string{"a/b", "~1", "~", "", "~01/"} {
			v.Members = append(append([]jsondoc.Member{}, orig...), jsondoc.Member{Name: name, Value: &jsondoc.Value{Kind: jsondoc.Number, Str: "1"}})
			check(path + " with " + name)
		}
		v.Members = orig
		for _, m := range orig {
			escapingNames(m.Value, jsondoc.Pointer(path, m.Name), check)
		}
	case jsondoc.Array:
		for i, it := range v.Items {
			escapingNames(it, jsondoc.Index(path, i), check)
		}
	}
}
