// Package sqldialect holds the little that differs between the two SQL
// databases the gateway writes to: how a target names PostgreSQL, and the
// placeholder syntax.
package sqldialect

import (
	"net/url"
	"strconv"
	"strings"
)

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
