package jsondoc_test

import (
	"fmt"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// A document is read into a tree that keeps its members in order and its
// numbers as written, so an adapter can tell "5" from "5.0" and report
// where a rule is broken.
func ExampleParse() {
	v, err := jsondoc.Parse([]byte(`{"noticeId": "TPE-2026-0042", "days": 5.0, "fatal": false}`), jsondoc.DefaultMaxDepth)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range v.Members {
		if m.Value.Kind == jsondoc.Bool {
			fmt.Println(jsondoc.Pointer("", m.Name), m.Value.Kind, m.Value.Bool)
			continue
		}
		fmt.Println(jsondoc.Pointer("", m.Name), m.Value.Kind, m.Value.Str)
	}
	days, _ := v.Get("days")
	fmt.Printf("days as written: %q\n", days.Str)
	// Output:
	// /noticeId string TPE-2026-0042
	// /days number 5.0
	// /fatal boolean false
	// days as written: "5.0"
}

// What encoding/json would let through, a partner's document may not hold:
// a repeated member name is refused, as are anything after the document
// and nesting past the caller's bound.
func ExampleParse_refused() {
	for _, doc := range []string{
		`{"noticeId": "A", "noticeId": "B"}`,
		`{"noticeId": "A"} {}`,
		`[[[[1]]]]`,
	} {
		_, err := jsondoc.Parse([]byte(doc), 3)
		fmt.Println(jsondoc.Reason(err))
	}
	// Output:
	// duplicate member name "noticeId"
	// data after the document
	// nesting deeper than 3 levels
}

// A member's name goes into a JSON Pointer escaped as RFC 6901 says.
func ExamplePointer() {
	fmt.Println(jsondoc.Pointer("/incident", "a/b~c"))
	fmt.Println(jsondoc.Index("/injuries", 0))
	// Output:
	// /incident/a~1b~0c
	// /injuries/0
}
