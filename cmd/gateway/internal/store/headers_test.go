package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeHeaders: decodeHeaders reads back what outboxArgs writes with
// encoding/json, and refuses anything else.
func TestDecodeHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Header
	}{
		{"ok/none", `null`, nil},
		{"ok/empty", `[]`, []Header{}},
		{"ok/escapes", "", []Header{{"ce_id", "a\"b\\c"}, {"ce_source", "é/<>&\u2028"}, {"", ""}}},
		{"fail/object", `{"k":"a","v":"b"}`, nil},
		{"fail/missing-value", `[{"k":"a"}]`, nil},
		{"fail/extra-member", `[{"k":"a","v":"b","x":"c"}]`, nil},
		{"fail/number-value", `[{"k":"a","v":1}]`, nil},
		{"fail/syntax", `[{"k":"a","v":"b"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in == "" {
				b, err := json.Marshal(tc.want)
				if err != nil {
					t.Fatal(err)
				}
				in = string(b)
			}
			got, err := decodeHeaders([]byte(in))
			if strings.HasPrefix(tc.name, "fail/") {
				if err == nil {
					t.Fatalf("decoded %q as %v", in, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}
