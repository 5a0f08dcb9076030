package sqldialect_test

import (
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// TestRedacted: a target in a log line never shows a password, wherever
// the DSN holds it.
func TestRedacted(t *testing.T) {
	for _, tc := range []struct{ name, target, want string }{
		{"ok/sqlite-path", "/var/lib/jambatan/backoffice.db", "/var/lib/jambatan/backoffice.db"},
		{"ok/dsn-without-password", "postgres://backoffice@db.internal/bo?sslmode=verify-full", "postgres://backoffice@db.internal/bo?sslmode=verify-full"},
		{"ok/password-in-user-part", "postgres://backoffice:s3cret@db.internal/bo", "postgres://backoffice:xxxxx@db.internal/bo"},
		{"ok/password-parameter", "postgresql://db.internal/bo?user=backoffice&password=s3cret", "postgresql://db.internal/bo?password=xxxxx&user=backoffice"},
		{"fail/does-not-parse", "postgres://backoffice:s3cret@db.internal:port/bo", "postgres://(a DSN that does not parse)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sqldialect.Redacted(tc.target)
			if got != tc.want || strings.Contains(got, "s3cret") {
				t.Fatalf("Redacted(%q) = %q, want %q", tc.target, got, tc.want)
			}
		})
	}
}
