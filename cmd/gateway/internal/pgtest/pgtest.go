// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the server named by JAMBATAN_TEST_POSTGRES (which .ci/run starts
// on loopback), dropped when the test ends.
package pgtest

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// commitAnswer is the server's CommandComplete for COMMIT in PostgreSQL's
// wire protocol: 'C', its length (11), "COMMIT" and a NUL.
var commitAnswer = []byte("C\x00\x00\x00\x0bCOMMIT\x00")

// CutCommits puts a TCP proxy in front of dsn's server and returns a DSN
// through it, and arm. The proxy passes everything both ways; arm(n) has
// it close the connection that carries the server's n-th answer to a
// COMMIT from then on instead of passing that answer on (with whatever
// came in the same read): the transaction committed and its client never
// hears so, as when the database restarts or the network fails at that
// moment. The DSN must name the server with a host:port (no TLS).
func CutCommits(t testing.TB, dsn string) (proxied string, arm func(n int)) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("pgtest: a DSN with a host is needed to cut it: %v", err)
	}
	server := u.Host
	if u.Port() == "" {
		server = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Int32 // the COMMIT answers still to pass before the one cut, plus one
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				cutCommit(client, server, &armed)
			}()
		}
	}()
	u.Host = ln.Addr().String()
	return u.String(), func(n int) { armed.Store(int32(n)) }
}

// cutCommit proxies one client connection to server (see CutCommits).
func cutCommit(client net.Conn, server string, armed *atomic.Int32) {
	defer client.Close()
	up, err := net.Dial("tcp", server)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		_, _ = io.Copy(up, client)
		up.Close()
	}()
	buf := make([]byte, 64<<10)
	var tail []byte // the last bytes passed on, for an answer split across reads
	for {
		n, err := up.Read(buf)
		if n > 0 {
			seen := append(tail, buf[:n]...)
			if bytes.Contains(seen, commitAnswer) && armed.Load() > 0 && armed.Add(-1) == 0 {
				return // the deferred closes cut both sides
			}
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
			tail = append(tail[:0], seen[max(0, len(seen)-len(commitAnswer)+1):]...)
		}
		if err != nil {
			return
		}
	}
}
