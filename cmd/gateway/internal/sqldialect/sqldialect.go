// Package sqldialect holds the little that differs between the two SQL
// databases the gateway writes to: how a target names PostgreSQL, how a
// SQLite file is created, and the placeholder syntax.
package sqldialect

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CreateSQLite creates an empty SQLite file at path that only its owner may
// read, unless a file is there already (it keeps its mode). SQLite creates
// a database readable by everyone (0644, less the umask), and its -wal and
// -shm files with the database's mode; the gateway's store and the back
// office's hold names, identity numbers and medical text.
func CreateSQLite(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Column is a column added to a table after the table was first released.
type Column struct{ Table, Name, Def string }

// AddColumns adds each column its table lacks: a database made by an
// earlier build gets them when it is opened (a column's presence is asked
// with a query of it, which both databases answer the same way). Another
// process opening the database at the same time may add a column first:
// its addition stands.
func AddColumns(db *sql.DB, cols []Column) error {
	has := func(c Column) bool {
		_, err := db.Exec(`SELECT ` + c.Name + ` FROM ` + c.Table + ` LIMIT 0`)
		return err == nil
	}
	for _, c := range cols {
		if has(c) {
			continue
		}
		if _, err := db.Exec(`ALTER TABLE ` + c.Table + ` ADD COLUMN ` + c.Name + ` ` + c.Def); err != nil && !has(c) {
			return fmt.Errorf("adding %s.%s: %w", c.Table, c.Name, err)
		}
	}
	return nil
}

// Text is s as every TEXT column of both databases takes it: PostgreSQL's
// refuses bytes that are not UTF-8 and NUL, which foreign input can hold
// (a header's bytes, a JSON string's \u0000). Each such byte becomes
// U+FFFD; text that has none is s itself, without a copy.
func Text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// IsPostgres reports whether a target is a PostgreSQL DSN (else a SQLite path).
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// Redacted is a target fit for a log line: a PostgreSQL DSN without its
// password (in the user part or the password parameter), a SQLite path as
// it is. A DSN that does not parse is not shown at all.
func Redacted(target string) string {
	if !IsPostgres(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		return "postgres://(a DSN that does not parse)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Rebind turns ? placeholders into $1, $2, ... for PostgreSQL.
func Rebind(query string, postgres bool) string {
	if !postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
