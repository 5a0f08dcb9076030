// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the server named by JAMBATAN_TEST_POSTGRES (which .ci/run starts
// on loopback), dropped when the test ends.
package pgtest

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

var seq atomic.Int64

// DSN returns a DSN whose search_path is a new, empty schema. Without
// JAMBATAN_TEST_POSTGRES the test is skipped, or fails when
// JAMBATAN_REQUIRE_INTEROP is set (as in CI).
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("JAMBATAN_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("JAMBATAN_REQUIRE_INTEROP") != "" {
			t.Fatal("JAMBATAN_TEST_POSTGRES is required (JAMBATAN_REQUIRE_INTEROP is set)")
		}
		t.Skip("JAMBATAN_TEST_POSTGRES not set")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("t_%d_%d", time.Now().UnixNano(), seq.Add(1))
	if _, err := db.Exec(`CREATE SCHEMA ` + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = db.Exec(`DROP SCHEMA ` + name + ` CASCADE`)
			db.Close()
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name
}

// Targets returns a store target per backend: a SQLite file and a
// PostgreSQL DSN (the latter only when PostgreSQL is available).
func Targets(t *testing.T) map[string]func(t testing.TB) string {
	return map[string]func(t testing.TB) string{
		"sqlite":   func(t testing.TB) string { return filepath.Join(t.TempDir(), "gateway.db") },
		"postgres": DSN,
	}
}
