package ecmaregexp

import "testing"

func TestCompile(t *testing.T) {
	const email = `^[^@\s]+@[^@\s]+\.[^@\s]+$`
	for _, tc := range []struct {
		name, pattern, s string
		match            bool
	}{
		{"ok/email", email, "a.b@example.sg", true},
		{"ok/email-non-ascii", email, "tan.meiling@例子.sg", true},
		{"fail/email-space", email, "a b@example.sg", false},
		{"fail/email-no-break-space", email, "a\u00a0b@example.sg", false},
		{"fail/email-ideographic-space", email, "a@example\u3000.sg", false},
		{"fail/email-line-separator", email, "a@example.sg\u2028", false},
		{"fail/email-byte-order-mark", email, "\ufeffa@example.sg", false},
		{"fail/email-vertical-tab", email, "a\vb@example.sg", false},
		{"ok/email-next-line", email, "a\u0085b@example.sg", true}, // not in ECMA-262's \s
		{"ok/email-zero-width-space", email, "a\u200bb@example.sg", true},
		{"ok/dot", `^SG:.+$`, "SG:x", true},
		{"fail/dot-carriage-return", `^SG:.+$`, "SG:\r", false},
		{"fail/dot-paragraph-separator", `^SG:.+$`, "SG:\u2029", false},
		{"ok/dot-in-class", `^[.]$`, ".", true},
		{"fail/dot-in-class", `^[.]$`, "x", false},
		{"ok/escaped-dot", `^a\.b$`, "a.b", true},
		{"fail/escaped-dot", `^a\.b$`, "axb", false},
		{"ok/not-space", `^\S+$`, "ab", true},
		{"fail/not-space", `^\S+$`, "a\u00a0b", false},
		{"ok/unicode-escape", `^\u00e9$`, "é", true},
		{"ok/escaped-backslash-then-s", `^\\s$`, `\s`, true},
		{"ok/class-with-bracket", `^[\]a]+$`, "]a", true},
		{"ok/unanchored", `[VWXY][0-9]{2}`, "xV01", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re, err := Compile(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := re.MatchString(tc.s); got != tc.match {
				t.Fatalf("%s on %q: %v, want %v (Go: %s)", tc.pattern, tc.s, got, tc.match, re)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct{ name, pattern string }{
		{"fail/not-space-in-class", `[\S]`},
		{"fail/empty-class", `a[]`},
		{"fail/empty-negated-class", `a[^]`},
		{"fail/lookahead", `a(?=b)`},
		{"fail/trailing-backslash", `a\`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if re, err := Compile(tc.pattern); err == nil {
				t.Fatalf("compiled %q as %s", tc.pattern, re)
			}
		})
	}
}
