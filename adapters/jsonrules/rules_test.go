package jsonrules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// doc is the object every case of TestRules reads from /claim.
const doc = `{"claim": {"text": "Pekerja", "spaces": " \u00a0\t", "accents": "éé", "n": 42, "neg": -7,
  "big": 99999999999999999999, "frac": 1.0, "exp": 1e2, "quoted": "5", "nul": null,
  "yes": true, "one": 1, "sg": "SG", "lower": "sg", "xx": "XX", "list": [1], "obj": {}}}`

// TestRules: each helper's verdict, and the one problem it lists for a
// member that fails (pointer, code, message), or none when it passes.
func TestRules(t *testing.T) {
	root, err := jsondoc.Parse([]byte(doc), jsondoc.DefaultMaxDepth)
	if err != nil {
		t.Fatal(err)
	}
	claim, _ := root.Get("claim")
	const p = "/claim"
	for _, tc := range []struct {
		name  string
		check func(c *Checker) bool
		want  string // "pointer CODE message", or "" for no problem
	}{
		{"ok/object", func(c *Checker) bool { return c.Object(claim, p) != nil }, ""},
		{"fail/object-array", func(c *Checker) bool { v, _ := claim.Get("list"); return c.Object(v, p+"/list") != nil },
			"/claim/list TYPE must be an object, not array"},
		{"ok/member", func(c *Checker) bool { _, _, ok := c.Member(claim, p, "n", true); return ok }, ""},
		{"fail/member-absent-required", func(c *Checker) bool { _, _, ok := c.Member(claim, p, "absent", true); return ok },
			"/claim/absent MISSING required member is absent"},
		{"fail/member-absent-optional", func(c *Checker) bool { _, _, ok := c.Member(claim, p, "absent", false); return ok }, ""},
		{"fail/member-null", func(c *Checker) bool { _, _, ok := c.Member(claim, p, "nul", false); return ok },
			"/claim/nul TYPE null is not allowed"},
		{"fail/member-of-nothing", func(c *Checker) bool { _, _, ok := c.Member(nil, p, "n", true); return ok }, ""},
		{"ok/str", func(c *Checker) bool { s, _, ok := c.Str(claim, p, "text", true); return ok && s == "Pekerja" }, ""},
		{"fail/str-number", func(c *Checker) bool { _, _, ok := c.Str(claim, p, "n", true); return ok },
			"/claim/n TYPE must be a string, not number"},
		{"ok/text-at-min", func(c *Checker) bool { return c.Text("Pekerja", p+"/text", 7, 10) }, ""},
		{"ok/text-at-max-in-code-points", func(c *Checker) bool { return c.Text("éé", p+"/accents", 1, 2) }, ""},
		{"fail/text-under-min", func(c *Checker) bool { return c.Text("Pekerja", p+"/text", 8, 10) },
			"/claim/text RANGE must be 8 to 10 characters, is 7"},
		{"fail/text-over-max", func(c *Checker) bool { return c.Text("éé", p+"/accents", 1, 1) },
			"/claim/accents RANGE must be 1 to 1 characters, is 2"},
		{"fail/text-blank", func(c *Checker) bool { return c.Text(" \u00a0\t", p+"/spaces", 1, 10) },
			"/claim/spaces RANGE must not be blank"},
		{"ok/one-of", func(c *Checker) bool { return c.OneOf("A", p+"/k", Set("A", "B")) }, ""},
		{"fail/one-of", func(c *Checker) bool { return c.OneOf("C", p+"/k", Set("A", "B")) },
			"/claim/k CODE is not a value of the closed list"},
		{"ok/country", func(c *Checker) bool { return c.Country("SG", p+"/sg") }, ""},
		{"fail/country-lower-case", func(c *Checker) bool { return c.Country("sg", p+"/lower") },
			"/claim/lower FORMAT must be two upper-case letters"},
		{"fail/country-unassigned", func(c *Checker) bool { return c.Country("XX", p+"/xx") },
			"/claim/xx CODE is not an assigned ISO 3166-1 alpha-2 code"},
		{"ok/integer", func(c *Checker) bool { n, _, ok := c.Integer(claim, p, "n", 0, 100); return ok && n == 42 }, ""},
		{"ok/integer-at-min", func(c *Checker) bool { n, _, ok := c.Integer(claim, p, "neg", -7, 0); return ok && n == -7 }, ""},
		{"ok/integer-at-max", func(c *Checker) bool { n, _, ok := c.Integer(claim, p, "n", 0, 42); return ok && n == 42 }, ""},
		{"fail/integer-under-min", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "neg", -6, 0); return ok },
			"/claim/neg RANGE must be between -6 and 0"},
		{"fail/integer-over-max", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "n", 0, 41); return ok },
			"/claim/n RANGE must be between 0 and 41"},
		{"fail/integer-past-int64", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "big", 0, 1<<62); return ok },
			fmt.Sprintf("/claim/big RANGE must be between 0 and %d", int64(1<<62))},
		{"fail/integer-fraction", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "frac", 0, 100); return ok },
			"/claim/frac TYPE must be an integer written without fraction or exponent"},
		{"fail/integer-exponent", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "exp", 0, 1000); return ok },
			"/claim/exp TYPE must be an integer written without fraction or exponent"},
		// 01 is not JSON, so the parser never gives Integer one; its own
		// refusal is held through a number built by hand.
		{"fail/integer-leading-zero", func(c *Checker) bool {
			obj := &jsondoc.Value{Kind: jsondoc.Object, Members: []jsondoc.Member{{Name: "lead", Value: &jsondoc.Value{Kind: jsondoc.Number, Str: "01"}}}}
			_, _, ok := c.Integer(obj, p, "lead", 0, 100)
			return ok
		}, "/claim/lead TYPE must be an integer written without fraction or exponent"},
		{"fail/integer-string", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "quoted", 0, 100); return ok },
			"/claim/quoted TYPE must be an integer written without fraction or exponent"},
		{"fail/integer-absent", func(c *Checker) bool { _, _, ok := c.Integer(claim, p, "absent", 0, 100); return ok },
			"/claim/absent MISSING required member is absent"},
		{"ok/boolean", func(c *Checker) bool { b, _, ok := c.Boolean(claim, p, "yes"); return ok && b }, ""},
		{"fail/boolean-number", func(c *Checker) bool { _, _, ok := c.Boolean(claim, p, "one"); return ok },
			"/claim/one TYPE must be a boolean, not number"},
		{"fail/boolean-absent", func(c *Checker) bool { _, _, ok := c.Boolean(claim, p, "absent"); return ok },
			"/claim/absent MISSING required member is absent"},
		// §2 item 10: a member's first failing check is its only problem.
		{"fail/second-check-on-a-member-not-listed", func(c *Checker) bool {
			c.Text("Pekerja", p+"/text", 8, 10)
			return c.OneOf("Pekerja", p+"/text", Set("A"))
		}, "/claim/text RANGE must be 8 to 10 characters, is 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Format: "test/v1"}
			ok := tc.check(c)
			if want := strings.HasPrefix(tc.name, "ok/"); ok != want {
				t.Fatalf("verdict %v, want %v (problems %+v)", ok, want, c.Problems)
			}
			var got string
			switch len(c.Problems) {
			case 0:
			case 1:
				pr := c.Problems[0]
				got = pr.Pointer + " " + pr.Code + " " + pr.Message
				if !c.Failed(pr.Pointer) {
					t.Errorf("%s not marked as failed", pr.Pointer)
				}
			default:
				t.Fatalf("%d problems, want at most 1: %+v", len(c.Problems), c.Problems)
			}
			if got != tc.want {
				t.Fatalf("problem %q, want %q", got, tc.want)
			}
		})
	}
}

// TestUnknown: the members not named, in the document's order, each at its
// pointer; none for a missing object.
func TestUnknown(t *testing.T) {
	v, err := jsondoc.Parse([]byte(`{"a": 1, "x": 2, "b": 3, "y~/": 4}`), jsondoc.DefaultMaxDepth)
	if err != nil {
		t.Fatal(err)
	}
	c := &Checker{Format: "test/v1"}
	c.Unknown(v, "/top", "a", "b")
	c.Unknown(nil, "/none", "a")
	var got []string
	for _, p := range c.Problems {
		got = append(got, p.Pointer+" "+p.Code+" "+p.Message)
	}
	want := []string{"/top/x UNKNOWN_MEMBER member not defined by test/v1", "/top/y~0~1 UNKNOWN_MEMBER member not defined by test/v1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestIsBlank: only Unicode White_Space is blank (the no-break space is; a
// zero-width space, outside White_Space, is not).
func TestIsBlank(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		want bool
	}{
		{"ok/empty", "", true},
		{"ok/spaces-tabs-newlines", " \t\r\n", true},
		{"ok/no-break-and-ideographic-spaces", "\u00a0\u3000", true},
		{"fail/a-letter-among-spaces", "  x  ", false},
		{"fail/zero-width-space", "\u200b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsBlank(tc.s); got != tc.want {
				t.Fatalf("IsBlank(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}
