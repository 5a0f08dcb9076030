package outbound

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestClip: a text is cut to at most n bytes, and only where a character
// starts, so what is stored and published stays UTF-8.
func TestClip(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"ok/shorter", "abc", 5, "abc"},
		{"ok/exactly", "abcde", 5, "abcde"},
		{"ok/cut", "abcdef", 5, "abcde"},
		{"ok/before-a-two-byte-character", "abcdé", 5, "abcd"}, // é is two bytes: 4 and 5
		{"ok/after-a-two-byte-character", "abcéf", 5, "abcé"},
		{"ok/inside-a-four-byte-character", "ab😀cd", 4, "ab"},
		{"ok/nothing-left", "😀", 3, ""},
		{"ok/zero", "abc", 0, ""},
		{"ok/not-utf8", "\x80\x80abc", 1, ""}, // a partner's bytes: no character starts before 1
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := clip(tc.s, tc.n)
			if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
				t.Fatalf("clip(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
}

// TestErrorText: a failed attempt's text is kept whole up to maxErrorText
// bytes, and beyond that cut with a note of its full length.
func TestErrorText(t *testing.T) {
	whole := strings.Repeat("a", maxErrorText)
	if got := errorText(whole); got != whole {
		t.Fatalf("a text of exactly %d bytes was changed: %d bytes", maxErrorText, len(got))
	}
	long := whole + "b"
	if got, want := errorText(long), whole+"… (cut: 1025 bytes in all)"; got != want {
		t.Fatalf("errorText of %d bytes = %.40q…, want the first %d and a note", len(long), got, maxErrorText)
	}
}
