package jsonrules

import (
	"fmt"
	"testing"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// TestMaxProblems: a Checker lists at most MaxProblems problems and then one
// RANGE problem at its Root; members checked after the cut are still marked
// as failed, for the cross-member rules.
func TestMaxProblems(t *testing.T) {
	for _, tc := range []struct {
		name    string
		unknown int
		root    string
		listed  int
		alone   bool // no problem follows the unknown members
	}{
		{"ok/under-the-bound", MaxProblems - 2, "", MaxProblems - 1, false},
		{"ok/at-the-bound", MaxProblems - 1, "", MaxProblems, false},
		{"fail/over-the-bound", MaxProblems, "", MaxProblems + 1, false},
		{"fail/far-over-the-bound-in-a-claim", 30 * MaxProblems, "/claims/7", MaxProblems + 1, false},
		{"fail/over-the-bound-by-unknown-members-alone", MaxProblems + 1, "", MaxProblems + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := []byte("{")
			for i := range tc.unknown {
				if i > 0 {
					doc = append(doc, ',')
				}
				doc = fmt.Appendf(doc, `"u%d":0`, i)
			}
			doc = append(doc, '}')
			v, err := jsondoc.Parse(doc, jsondoc.DefaultMaxDepth)
			if err != nil {
				t.Fatal(err)
			}
			c := &Checker{Format: "test/v1", Root: tc.root}
			c.Unknown(c.Object(v, tc.root), tc.root)
			known := jsondoc.Pointer(tc.root, "known")
			if !tc.alone {
				c.Add(known, adapters.CodeType, "checked last")
			}
			if len(c.Problems) != tc.listed {
				t.Fatalf("%d problems, want %d", len(c.Problems), tc.listed)
			}
			last := c.Problems[len(c.Problems)-1]
			if cut := tc.listed > MaxProblems; cut != (last.Code == adapters.CodeRange) || (cut && last.Pointer != tc.root) {
				t.Fatalf("last problem %+v (cut: %v)", last, cut)
			}
			if !tc.alone && !c.Failed(known) {
				t.Fatalf("%s not marked as failed", known)
			}
		})
	}
}
