// Package sqldialect holds the little that differs between the two SQL
// databases the gateway writes to: how a target names PostgreSQL, and the
// placeholder syntax.
package sqldialect

import (
	"strconv"
	"strings"
)

// IsPostgres reports whether a target is a PostgreSQL DSN (else a SQLite path).
func IsPostgres(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
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
