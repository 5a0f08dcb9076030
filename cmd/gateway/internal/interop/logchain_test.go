package interop

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestPythonVerifiesLogChain: an auditor's verifier written in Python from
// the README's description of the message log alone (logchain.py) agrees
// with the gateway's `log verify` on a real store: the chain intact, then,
// one edit at a time (each undone after), the same first broken entry.
func TestPythonVerifiesLogChain(t *testing.T) {
	python, script := pythonScript(t, "logchain.py")
	dbFile := filepath.Join(t.TempDir(), "gateway.db")
	env := gatewaytest.Start(t, gatewaytest.Options{Store: dbFile})
	a := env.Partners["employer-a"]
	client := env.Client(&a.TLS)
	post := func(doc []byte) {
		t.Helper()
		jws, err := partnerkit.Sign(doc, a.SigningKey, partnerkit.Compact)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Post(env.Server.URL+"/v1/injury-notices", "application/jose", bytes.NewReader([]byte(jws)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	notice := readExample(t, "sgemployer", "example-a.in.json")
	post(notice)                                                              // 1: accepted
	post(notice)                                                              // 2: duplicate
	post(readExample(t, "sgemployer", "example-b.in.json"))                   // 3: accepted
	post(withoutMember(t, notice, "reporter"))                                // 4: refused
	resp, err := client.Get(env.Server.URL + "/v1/injury-notices/not-a-uuid") // not logged: a read
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET: %v %v", err, resp)
	}
	resp.Body.Close()
	post(readExample(t, "sgemployer", "example-c.in.json")) // 5: accepted

	ctx := context.Background()
	type verdict struct {
		Entries, Broken int64
		Reason          string
	}
	both := func(name string, wantBroken int64) {
		t.Helper()
		out, err := exec.Command(python, script, dbFile).Output()
		if err != nil {
			t.Fatalf("%s: python3 logchain.py: %v", name, err)
		}
		var py verdict
		if err := json.Unmarshal(out, &py); err != nil {
			t.Fatalf("%s: %v: %s", name, err, out)
		}
		rep, err := env.Store.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if py.Broken != wantBroken || rep.BrokenSeq != wantBroken {
			t.Errorf("%s: Python says broken at %d (%s), log verify at %d (%s); want %d", name, py.Broken, py.Reason, rep.BrokenSeq, rep.Reason, wantBroken)
		}
	}
	both("ok/intact", 0)
	if out, _ := exec.Command(python, script, dbFile).Output(); !bytes.Contains(out, []byte(`"entries": 5`)) {
		t.Fatalf("the log holds %s, want 5 entries", out)
	}

	// Each edit, verified by both, then undone on the same connection.
	conn, err := env.Store.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec1 := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var at string
	if err := conn.QueryRowContext(ctx, `SELECT received_at FROM message_log WHERE seq = 2`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	inSingapore := func() string {
		ts, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			t.Fatal(err)
		}
		return ts.In(time.FixedZone("+08", 8*3600)).Format(time.RFC3339Nano) // the same instant, written otherwise
	}()
	// An online backup (VACUUM INTO) is a sound SQLite database, by Python's
	// sqlite3, whose chain the Python verifier finds intact.
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := env.Store.Backup(ctx, backup, nil); err != nil {
		t.Fatal(err)
	}
	integrity, err := exec.Command(python, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])", backup).Output()
	if err != nil || strings.TrimSpace(string(integrity)) != "ok" {
		t.Fatalf("integrity of the backup: %v %s", err, integrity)
	}
	if out, _ := exec.Command(python, script, backup).Output(); !bytes.Contains(out, []byte(`{"entries": 5, "broken": 0}`)) {
		t.Fatalf("the backup's chain: %s", out)
	}

	for _, tc := range []struct {
		name       string
		edit, undo string
		args       []any
		broken     int64
	}{
		{"fail/body-edited", `UPDATE message_log SET body = body || x'20' WHERE seq = 3`, `UPDATE message_log SET body = substr(body, 1, length(body) - 1) WHERE seq = 3`, nil, 3},
		{"fail/status-edited", `UPDATE message_log SET status = 200 WHERE seq = 1`, `UPDATE message_log SET status = 202 WHERE seq = 1`, nil, 1},
		{"fail/received-at-rewritten", `UPDATE message_log SET received_at = ? WHERE seq = 2`, `UPDATE message_log SET received_at = '` + at + `' WHERE seq = 2`, []any{inSingapore}, 2},
		{"fail/hash-replaced", `UPDATE message_log SET hash = 'x' || substr(hash, 2) WHERE seq = 5`, `UPDATE message_log SET hash = '` + hashOf(t, conn, 5) + `' WHERE seq = 5`, nil, 5},
		{"fail/entry-deleted", `CREATE TEMP TABLE saved AS SELECT * FROM message_log WHERE seq = 4; DELETE FROM message_log WHERE seq = 4`, `INSERT INTO message_log SELECT * FROM saved; DROP TABLE saved`, nil, 4},
	} {
		exec1(tc.edit, tc.args...)
		both(tc.name, tc.broken)
		exec1(tc.undo)
		both(tc.name+" undone", 0)
	}
}

// hashOf reads an entry's stored hash.
func hashOf(t *testing.T, conn interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, seq int) string {
	t.Helper()
	var h string
	if err := conn.QueryRowContext(context.Background(), `SELECT hash FROM message_log WHERE seq = ?`, seq).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}
