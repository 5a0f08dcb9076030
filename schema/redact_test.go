package schema

import (
	"bytes"
	"errors"
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
