package sqldialect_test

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
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

// TestCreateSQLite: a new file is its owner's alone, whatever the umask; a
// file already there keeps its mode and content; a missing directory is an
// error.
func TestCreateSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		existing os.FileMode // 0: none
		path     string
		want     os.FileMode
		fail     error // nil: none
	}{
		{"ok/new", 0, "new.db", 0o600, nil},
		{"ok/existing-keeps-its-mode", 0o640, "old.db", 0o640, nil},
		{"fail/no-directory", 0, "missing/x.db", 0, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.path)
			if tc.existing != 0 {
				if err := os.WriteFile(path, []byte("data"), tc.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			err := sqldialect.CreateSQLite(path)
			if tc.fail != nil || err != nil {
				if !errors.Is(err, tc.fail) {
					t.Fatalf("CreateSQLite: %v, want %v", err, tc.fail)
				}
				return
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.want {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), tc.want)
			}
			if tc.existing != 0 && fi.Size() != 4 {
				t.Fatalf("an existing file was truncated to %d bytes", fi.Size())
			}
		})
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ok/ascii", "abc", "abc"},
		{"ok/utf8", "Pulau Pinang – 檳城 – ปีนัง", "Pulau Pinang – 檳城 – ปีนัง"},
		{"ok/empty", "", ""},
		{"fail/nul", "a\x00b", "a\uFFFDb"},
		{"fail/not-utf8", "a\xffb", "a\uFFFDb"},
		{"fail/cut-rune", "a\xe6\xaa", "a\uFFFD"},
		{"fail/both", "\x00\xfe", "\uFFFD\uFFFD"},
		{"fail/nul-first", "\x00ab", "\uFFFDab"},
		{"fail/nul-last", "ab\x00", "ab\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sqldialect.Text(tc.in); got != tc.want {
				t.Fatalf("Text(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestAddColumns: a column a table lacks is added, one it has is left, and
// two openers adding the same column at once both succeed (one of them
// finds it added by the other), on both databases.
func TestAddColumns(t *testing.T) {
	for name, target := range pgtest.Targets(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			dsn, driver := target(t), "sqlite"
			if sqldialect.IsPostgres(dsn) {
				driver = "pgx"
			} else if err := sqldialect.CreateSQLite(dsn); err != nil {
				t.Fatal(err)
			} else {
				dsn = "file:" + dsn + "?_pragma=busy_timeout(10000)" // as the stores open it
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE TABLE t (a TEXT)`); err != nil {
				t.Fatal(err)
			}
			cols := []sqldialect.Column{{Table: "t", Name: "a", Def: "TEXT"}, {Table: "t", Name: "b", Def: "TEXT NOT NULL DEFAULT ''"}}
			errs := make(chan error, 4)
			for range 4 {
				go func() { errs <- sqldialect.AddColumns(db, cols) }()
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Exec(`SELECT a, b FROM t`); err != nil {
				t.Fatal(err)
			}
			// A definition the database refuses is an error naming the
			// column, not passed over as a column another process added.
			if err := sqldialect.AddColumns(db, []sqldialect.Column{{Table: "t", Name: "c", Def: "TEXT DEFAULT ("}}); err == nil || !strings.HasPrefix(err.Error(), "adding t.c: ") {
				t.Fatalf("a refused definition: %v", err)
			}
		})
	}
}
