package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"

	_ "modernc.org/sqlite" // database/sql driver "sqlite": a test edits a copy of the store
)

var gatewayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gateway-bin")
	if err != nil {
		panic(err)
	}
	gatewayBin = filepath.Join(dir, "gateway")
	if out, err := exec.Command("go", "build", "-o", gatewayBin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func example(name string) string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "adapters", "sgemployer", "testdata", name))
	return p
}

// devLayout makes a dev directory (PKI, configuration, kits) without
// starting the gateway, and returns its layout and path.
func devLayout(t *testing.T) (devmode.Layout, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dev")
	l, _, err := devmode.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l, dir
}

// startDev runs "gateway dev" and waits for dev.json.
func startDev(t *testing.T, dir string, extra ...string) (*exec.Cmd, *gatewaytest.SyncBuffer, *devmode.DevJSON) {
	t.Helper()
	cmd := exec.Command(gatewayBin, append([]string{"dev", "--dir", dir, "--addr", "127.0.0.1:0"}, extra...)...)
	out := &gatewaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	var d *devmode.DevJSON
	gatewaytest.Until(t, 30*time.Second, 50*time.Millisecond, func() (err error) {
		if d, err = devmode.ReadDevJSON(dir); err != nil {
			return fmt.Errorf("dev.json never appeared (%v):\n%s", err, out.String())
		}
		return nil
	})
	return cmd, out, d
}

// gateway runs the binary with args and returns its output. A command that
// does not end within two minutes is killed, so that a refusal that stops
// refusing ("dev" with a stray word, now serving) fails its test rather
// than hanging the package until go test's timeout, and leaving a gateway
// behind.
func gateway(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func stop(t *testing.T, cmd *exec.Cmd, out *gatewaytest.SyncBuffer) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway dev exited with %v:\n%s", err, out)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("gateway dev did not stop on SIGINT:\n%s", out)
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Fatalf("no clean stop:\n%s", out)
	}
}

// headOf is the "SEQ:HASH" that the output of an intact log verify ends
// with.
func headOf(verified string) string {
	return verified[strings.LastIndex(verified, "head ")+len("head ") : len(verified)-1]
}

// deleteFrom deletes the message log's entries from seq on in the SQLite
// store at path, as one who hides the newest entries would.
func deleteFrom(t *testing.T, path string, seq int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM message_log WHERE seq >= ?`, seq); err != nil {
		t.Fatal(err)
	}
}

// TestDevMode is the operator's path: one command, the spec's examples
// through "gateway submit" in each signature form, receipts verified (one
// from stdin), the log verified, a clean stop, and a restart that reuses
// everything.
func TestDevMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	if len(d.Partners) == 0 || d.Partners[0].Kind != "employer" || !filepath.IsAbs(d.CACert) || !strings.HasPrefix(d.GatewayURL, "https://127.0.0.1:") {
		t.Fatalf("dev.json: %+v", d)
	}
	for _, p := range []string{d.CACert, d.Partners[0].ClientCert, d.Partners[0].ClientKey, d.Partners[0].SigningJWK} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("dev.json names a missing file: %v", err)
		}
	}
	// The banner says what the dev gateway serves, where its files are and
	// what to try first, as dev.json does.
	gatewaytest.Until(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "Ctrl-C stops.") {
			return fmt.Errorf("no banner:\n%s", out.String())
		}
		return nil
	})
	for _, line := range []string{
		"Jambatan dev gateway (created " + dir + ")\n",
		"  gateway   " + d.GatewayURL + "\n",
		"  jwks      " + d.JWKSURL + "\n",
		"  ca cert   " + d.CACert + "\n",
		"  kafka     " + d.KafkaBootstrap + " (embedded; topics " + d.Topics.Verified + ", " + d.Topics.Rejected + ")\n",
		"  metrics   " + d.MetricsURL + "\n",
		"  partner   demo-employer (employer, sg-employer-notice/v1): kit in " + filepath.Join(dir, "partners", "demo-employer") + "\n",
		"  outbound  requests on " + d.Topics.Outbound + " are taken signed by the back office: gateway sign --jwk " + d.BackOfficeKey + " --detached REQUEST.json",
		"Try: go run ./cmd/gateway submit --dev " + dir + " --partner demo-employer NOTICE.json\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Fatalf("the banner lacks %q:\n%s", line, out.String())
		}
	}
	// Each form is sent as asked: the message log keeps the content type
	// and the detached signature, whose header says "b64": false when the
	// payload is unencoded.
	st, err := store.OpenSQLite(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	sentAs := func(recordID string) (contentType, form string) {
		var sig string
		if err := st.DB().QueryRow(`SELECT content_type, signature FROM message_log WHERE record_id = ?`, recordID).Scan(&contentType, &sig); err != nil {
			t.Fatal(err)
		}
		var h struct{ B64 *bool }
		b, _ := base64.RawURLEncoding.DecodeString(strings.Split(sig, ".")[0])
		switch {
		case sig == "":
			return contentType, "compact"
		case json.Unmarshal(b, &h) != nil:
			t.Fatalf("signature header %q", b)
		case h.B64 != nil && !*h.B64:
			return contentType, "unencoded"
		}
		return contentType, "detached"
	}
	var receipt string
	for i, tc := range []struct{ file, form, recordID, contentType string }{
		{"example-a.in.json", "compact", "b0867b30-be3c-5595-a939-c4d47c281950", "application/jose"},
		{"example-b.in.json", "detached", "49608558-04ae-5d7c-a934-d2dd79fe3682", "application/json"},
		{"example-c.in.json", "unencoded", "1dbebe23-7e2a-5f97-93b8-aa32c700f991", "application/json"},
	} {
		stdout, stderr, err := gateway(t, "submit", "--dev", dir, "--partner", "demo-employer", "--form", tc.form, example(tc.file))
		if err != nil || !strings.Contains(stderr, "HTTP 202") || !strings.Contains(stderr, "receipt verified") {
			t.Fatalf("submit %s: %v\n%s\n%s", tc.file, err, stdout, stderr)
		}
		var acc struct{ Status, RecordID, Receipt string }
		if err := json.Unmarshal([]byte(stdout), &acc); err != nil || acc.RecordID != tc.recordID {
			t.Fatalf("submit %s: %s", tc.file, stdout)
		}
		if ct, form := sentAs(tc.recordID); ct != tc.contentType || form != tc.form {
			t.Fatalf("submit --form %s sent %s as %s", tc.form, form, ct)
		}
		if i == 0 {
			receipt = acc.Receipt
		}
	}
	st.Close()
	// A refused submission exits non-zero and prints the problem.
	bad := filepath.Join(t.TempDir(), "bad.json")
	b, _ := os.ReadFile(example("example-a.in.json"))
	_ = os.WriteFile(bad, bytes.Replace(b, []byte(`"G5123456T"`), []byte(`"G5123456X"`), 1), 0o644)
	if stdout, _, err := gateway(t, "submit", "--dev", dir, bad); err == nil || !strings.Contains(stdout, `"code":"CHECKSUM"`) {
		t.Fatalf("bad notice: %v %s", err, stdout)
	}

	if stdout, stderr, err := gateway(t, "receipt", "verify", "--dev", dir, "--jwks", d.JWKSURL, receipt); err != nil || !strings.Contains(stdout, "b0867b30") {
		t.Fatalf("receipt verify: %v\n%s%s", err, stdout, stderr)
	}
	// The receipt from stdin ("-"), as a partner's script pipes it.
	verify := exec.Command(gatewayBin, "receipt", "verify", "--dev", dir, "--jwks", d.JWKSURL, "-")
	verify.Stdin = strings.NewReader(receipt)
	if stdout, err := verify.Output(); err != nil || !strings.Contains(string(stdout), "b0867b30") {
		t.Fatalf("receipt verify -: %v\n%s", err, stdout)
	}
	// An agency engineer's call: the spec's envelope, signed with the demo agency's kit.
	if o, e, err := gateway(t, "soap", "--dev", dir, filepath.Join("..", "..", "adapters", "agencysoap", "testdata", "example-10.1.request.xml")); err != nil ||
		!strings.Contains(o, "InjuryAcknowledgement") || !strings.Contains(e, "response signature verified") {
		t.Fatalf("soap: %v\n%s\n%s", err, o, e)
	}
	// Only an agency's kit calls the exchange; nothing is sent for another.
	for partner, want := range map[string]string{"demo-employer": "partner demo-employer is not an agency", "nobody": `dev.json has no partner "nobody"`} {
		if o, e, err := gateway(t, "soap", "--dev", dir, "--partner", partner, filepath.Join("..", "..", "adapters", "agencysoap", "testdata", "example-10.1.request.xml")); err == nil ||
			o != "" || !strings.Contains(e, want) {
			t.Fatalf("soap as %s: %v\n%s\n%s", partner, err, o, e)
		}
	}
	if stdout, _, err := gateway(t, "log", "verify", "--dev", dir); err != nil || !strings.Contains(stdout, "OK: 5 entries") {
		t.Fatalf("log verify: %v %s", err, stdout)
	}
	// The store a configuration names: how an operator names production's.
	l, err := devmode.LayoutOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if stdout, _, err := gateway(t, "log", "verify", "--config", l.Config); err != nil || !strings.Contains(stdout, "OK: 5 entries") {
		t.Fatalf("log verify --config: %v %s", err, stdout)
	}
	// A backup while the gateway runs, checked as it is made, and again.
	backup := filepath.Join(t.TempDir(), "backup.db")
	stdout, stderr, err := gateway(t, "store", "backup", "--dev", dir, "--to", backup)
	if err != nil || !strings.Contains(stdout, "5 entries, hash chain intact") {
		t.Fatalf("store backup: %v\n%s%s", err, stdout, stderr)
	}
	// Its progress on stderr ends with the whole store copied, the size the
	// summary gives the backup.
	size := regexp.MustCompile(`, ([0-9.]+ MB), copied in`).FindStringSubmatch(stdout)
	if size == nil || !strings.HasSuffix(stderr, "  "+size[1]+" of about "+size[1]+" copied\n") {
		t.Fatalf("store backup's progress:\n%s%s", stdout, stderr)
	}
	if stdout, _, err := gateway(t, "log", "verify", "--store", backup); err != nil || !strings.Contains(stdout, "OK: 5 entries") {
		t.Fatalf("log verify of the backup: %v %s", err, stdout)
	}
	if _, stderr, err := gateway(t, "store", "backup", "--dev", dir, "--to", backup); err == nil || !strings.Contains(stderr, "exists") {
		t.Fatalf("a backup over an existing file: %v %s", err, stderr)
	}
	// Anchors: the head a verify printed vouches for every entry up to it,
	// in the live log; in a copy cut after it, or with another hash, not.
	stdout, _, _ = gateway(t, "log", "verify", "--store", backup)
	anchor := headOf(stdout)
	if o, _, err := gateway(t, "log", "verify", "--dev", dir, "--anchor", anchor); err != nil || !strings.Contains(o, "anchor 5 found") {
		t.Fatalf("log verify --anchor %s: %v %s", anchor, err, o)
	}
	cut := filepath.Join(t.TempDir(), "cut.db")
	if _, _, err := gateway(t, "store", "backup", "--dev", dir, "--to", cut); err != nil {
		t.Fatal(err)
	}
	deleteFrom(t, cut, 4)
	for _, tc := range []struct{ name, store, anchor, want string }{
		{"fail/newest-entries-deleted", cut, anchor, "the log ends at entry 3, before the anchor 5: entries were deleted"},
		{"fail/rewritten", backup, "5:" + strings.Repeat("0", 64), "entry 5 has another hash than the anchor"},
	} {
		if o, _, err := gateway(t, "log", "verify", "--store", tc.store, "--anchor", tc.anchor); err == nil || !strings.Contains(o, tc.want) {
			t.Fatalf("%s: %v %s", tc.name, err, o)
		}
	}
	if o, _, err := gateway(t, "log", "verify", "--store", cut); err != nil || !strings.Contains(o, "OK: 3 entries") {
		t.Fatalf("the cut log, without its anchor, looks intact: %v %s", err, o)
	}
	// The first entry is an anchor too (a log's entries count from 1).
	deleteFrom(t, cut, 2)
	stdout, _, _ = gateway(t, "log", "verify", "--store", cut)
	first := headOf(stdout)
	if o, _, err := gateway(t, "log", "verify", "--dev", dir, "--anchor", first); !strings.HasPrefix(first, "1:") || err != nil || !strings.Contains(o, "anchor 1 found") {
		t.Fatalf("log verify --anchor %s: %v %s", first, err, o)
	}
	stop(t, cmd, out)
	if !regexp.MustCompile(`msg="message log head" correlation_id=[0-9a-f]{32} seq=5 anchor=` + anchor).MatchString(out.String()) {
		t.Fatalf("no head %s logged at stop:\n%s", anchor, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev.json")); !os.IsNotExist(err) {
		t.Fatalf("dev.json left behind after stop: %v", err)
	}

	// Second run: reuses the PKI and the store; the same notice is a duplicate.
	caBefore, _ := os.ReadFile(d.CACert)
	cmd, out, d2 := startDev(t, dir)
	caAfter, _ := os.ReadFile(d2.CACert)
	if !bytes.Equal(caBefore, caAfter) || !strings.Contains(out.String(), "reusing") {
		t.Fatalf("second run did not reuse the dev directory:\n%s", out)
	}
	if _, stderr, err := gateway(t, "submit", "--dev", dir, example("example-a.in.json")); err != nil || !strings.Contains(stderr, "HTTP 200") {
		t.Fatalf("resubmit: %v %s", err, stderr)
	}
	stop(t, cmd, out)

	// Tampering with the log is found and named.
	if _, _, err := gateway(t, "log", "verify", "--dev", dir); err != nil {
		t.Fatal(err)
	}
	sqlite3Tamper(t, filepath.Join(dir, "gateway.db"))
	if stdout, _, err := gateway(t, "log", "verify", "--dev", dir); err == nil || !strings.Contains(stdout, "BROKEN at entry 2") {
		t.Fatalf("tampered log: %v %s", err, stdout)
	}
	// and so is a backup of it.
	if _, stderr, err := gateway(t, "store", "backup", "--dev", dir, "--to", filepath.Join(t.TempDir(), "tampered.db")); err == nil || !strings.Contains(stderr, "broken at entry 2") {
		t.Fatalf("backup of a tampered log: %v %s", err, stderr)
	}
}

// TestKilledDev: the tools pointed at the directory of a "gateway dev"
// that was killed (its dev.json left behind) say so and fail: a load test
// ends after loadgen.DefaultSilenceLimit, its summary printed and saying
// why (it used to send its whole pool, refused, in a second); ingest,
// submit and soap ask whether it runs.
func TestKilledDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, _, _ := startDev(t, dir)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()
	t.Run("fail/loadtest", func(t *testing.T) {
		stdout, stderr, err := gateway(t, "loadtest", "--dev", dir, "--requests", "5000", "--concurrency", "2")
		var s loadgen.Summary
		if jerr := json.Unmarshal([]byte(stdout), &s); jerr != nil || err == nil {
			t.Fatalf("err %v; summary %q: %v\n%s", err, stdout, jerr, stderr)
		}
		if !strings.Contains(s.Unreachable, "connection refused") || s.Accepted != 0 || s.PoolExhausted || s.ErrorsByStatus["transport"] > 200 ||
			!strings.Contains(stderr, "the run ended early (unreachable): no answer from the gateway for 5s") {
			t.Fatalf("summary %+v\nstderr %q", s, stderr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"fail/ingest", []string{"ingest", "--dev", dir, "--until-caught-up"}},
		{"fail/submit", []string{"submit", "--dev", dir, example("example-a.in.json")}},
		{"fail/soap", []string{"soap", "--dev", dir, filepath.Join("..", "..", "adapters", "agencysoap", "testdata", "example-10.1.request.xml")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := gateway(t, tc.args...)
			if err == nil || !strings.Contains(stderr, "connection refused (is \"gateway dev --dir "+dir+"\" running?)") {
				t.Fatalf("err %v, stderr %q", err, stderr)
			}
		})
	}
}

// TestDevOldDirectory: a dev directory made before the operator API and
// outbound delivery (its gateway.json names neither the operator listener
// nor the outbound client certificate) is served with both, from the
// files the directory holds.
func TestDevOldDirectory(t *testing.T) {
	l, dir := devLayout(t)
	gatewaytest.EditConfig(t, l.Config, l.Config, func(cfg map[string]any) {
		delete(cfg, "operator")
		delete(cfg["outbound"].(map[string]any), "client_cert_file")
		delete(cfg["outbound"].(map[string]any), "client_key_file")
	})
	_, _, d := startDev(t, dir)
	if !strings.HasPrefix(d.OperatorURL, "https://127.0.0.1:") || d.OperatorCert != l.OperatorCert {
		t.Fatalf("dev.json without the operator API: %+v", d)
	}
	r, err := http.Get(d.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if m, _ := io.ReadAll(r.Body); !bytes.Contains(m, []byte(`jambatan_certificate_expiry_seconds{certificate="outbound-client"}`)) {
		t.Fatalf("no outbound client certificate:\n%s", m)
	}
}

// TestDevDirectoryLocked: a second "gateway dev" on a running one's
// directory stops at once, naming it, before it opens anything there (it
// used to start a second embedded broker on the first one's files); the
// first goes on serving. One on another directory but the first's
// address is told how to choose another, and "gateway serve" on its
// configuration that the store is taken.
func TestDevDirectoryLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, gatewayBin, "dev", "--dir", dir, "--addr", "127.0.0.1:0")
	var stderr strings.Builder
	second.Stderr = &stderr
	if err := second.Run(); err == nil || ctx.Err() != nil || !strings.Contains(stderr.String(), "in use by another gateway dev (pid "+strconv.Itoa(cmd.Process.Pid)+")") {
		t.Fatalf("second gateway dev on the same directory: %v (timed out: %v) %s", err, ctx.Err() != nil, stderr.String())
	}
	// gateway serve on the running one's configuration: its SQLite store
	// is taken (two gateways on one file published each other's claims).
	if _, stderr, err := gateway(t, "serve", "--config", filepath.Join(dir, "gateway.json"), "--addr", "127.0.0.1:0"); err == nil ||
		!strings.Contains(stderr, "held by another process (pid "+strconv.Itoa(cmd.Process.Pid)+"): a SQLite store belongs to one gateway process") {
		t.Fatalf("gateway serve on the dev gateway's store: %v %s", err, stderr)
	}
	addr := strings.TrimPrefix(d.GatewayURL, "https://")
	if _, stderr, err := gateway(t, "dev", "--dir", filepath.Join(t.TempDir(), "other"), "--addr", addr); err == nil ||
		!strings.Contains(stderr, "address already in use: another process has the port (choose another with --addr") {
		t.Fatalf("second gateway dev on the first's address %s: %v %s", addr, err, stderr)
	}
	if _, stderr, err := gateway(t, "submit", "--dev", dir, example("example-a.in.json")); err != nil || !strings.Contains(stderr, "HTTP 202") {
		t.Fatalf("the first gateway after the refused second: %v %s", err, stderr)
	}
}

func TestSignCommand(t *testing.T) {
	l, _ := devLayout(t)
	jwkPath := l.Kit("demo-employer").SigningJWK
	for _, tc := range []struct {
		name  string
		args  []string
		parts func([]string) bool
	}{
		{"ok/compact", nil, func(p []string) bool { return len(p) == 3 && p[1] != "" }},
		{"ok/detached", []string{"--detached"}, func(p []string) bool { return len(p) == 3 && p[1] == "" }},
		{"ok/unencoded", []string{"--detached", "--unencoded"}, func(p []string) bool { return len(p) == 3 && p[1] == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(gatewayBin, append([]string{"sign", "--jwk", jwkPath}, tc.args...)...)
			cmd.Stdin = strings.NewReader(`{"a":1}`)
			out, err := cmd.Output()
			if err != nil || !tc.parts(strings.Split(strings.TrimSpace(string(out)), ".")) {
				t.Fatalf("sign: %v %s", err, out)
			}
		})
	}
	t.Run("ok/file", func(t *testing.T) {
		doc := filepath.Join(t.TempDir(), "notice.json")
		os.WriteFile(doc, []byte(`{"a":1}`), 0o600)
		cmd := exec.Command(gatewayBin, "sign", "--jwk", jwkPath, doc)
		cmd.Stdin = strings.NewReader(`{"from":"stdin"}`)
		out, err := cmd.Output()
		p := strings.Split(strings.TrimSpace(string(out)), ".")
		if err != nil || len(p) != 3 {
			t.Fatalf("sign FILE: %v %s", err, out)
		}
		if payload, _ := base64.RawURLEncoding.DecodeString(p[1]); string(payload) != `{"a":1}` {
			t.Fatalf("sign FILE signed %q, not the file", payload)
		}
	})
	// A document of maxDocument bytes is signed; one byte more is refused.
	largest := filepath.Join(t.TempDir(), "largest.json")
	tooLarge := filepath.Join(t.TempDir(), "too-large.json")
	for path, n := range map[string]int{largest: maxDocument, tooLarge: maxDocument + 1} {
		doc := append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), n-8)...), `"}`...)
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("ok/largest", func(t *testing.T) {
		if out, err := exec.Command(gatewayBin, "sign", "--jwk", jwkPath, largest).Output(); err != nil || strings.Count(string(out), ".") != 2 {
			t.Fatalf("sign %d bytes: %v", maxDocument, err)
		}
	})
	for _, tc := range []struct {
		name, stdin, want string
		args              []string
	}{
		{"fail/no-jwk", `{"a":1}`, "give --jwk", nil},
		{"fail/too-large", `{"a":1}`, fmt.Sprintf("too-large.json: document over %d bytes", maxDocument), []string{"--jwk", jwkPath, tooLarge}},
		{"fail/empty-stdin", "", "stdin: the document is empty", []string{"--jwk", jwkPath}},
		{"fail/empty-file", `{"a":1}`, "the document is empty", []string{"--jwk", jwkPath, os.DevNull}},
		{"fail/two-files", `{"a":1}`, `unexpected argument "` + os.DevNull + `"`, []string{"--jwk", jwkPath, os.DevNull, os.DevNull}},
		{"fail/no-such-file", `{"a":1}`, "no such file", []string{"--jwk", jwkPath, filepath.Join(t.TempDir(), "absent.json")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(gatewayBin, append([]string{"sign"}, tc.args...)...)
			cmd.Stdin = strings.NewReader(tc.stdin)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err == nil || len(out) != 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("sign %v: %v, stdout %q, stderr %q; want an error naming %q", tc.args, err, out, stderr.String(), tc.want)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	l, dir := devLayout(t)
	cfg, _ := os.ReadFile(l.Config)
	tests := []struct{ name, old, new, want string }{
		{"fail/kind", `"kind": "employer"`, `"kind": "bank"`, `partner demo-employer: field kind`},
		{"fail/format", `"sg-employer-notice/v1"`, `"sg-employer-notice/v9"`, `partner demo-employer: field formats`},
		{"fail/uen", `"*"`, `"NOT-A-UEN"`, `partner demo-employer: field agent_for_uens`},
		{"fail/identity", `"subject_cn": "demo-employer"`, `"subject_cn": ""`, `partner demo-employer: field tls_identity`},
		{"fail/unknown-field", `"instance"`, `"instanse"`, `unknown field`},
		{"fail/kafka-max-message-bytes", `"topics": {}`, `"topics": {}, "max_message_bytes": 1000`, `kafka.max_message_bytes`},
		{"fail/max-inflight-bytes", `"max_inflight_bytes": 8388608`, `"max_inflight_bytes": -1`, `limits.max_inflight_bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-")+".json")
			if !bytes.Contains(cfg, []byte(tc.old)) {
				t.Fatalf("config has no %s", tc.old)
			}
			_ = os.WriteFile(p, bytes.Replace(cfg, []byte(tc.old), []byte(tc.new), 1), 0o644)
			_, stderr, err := gateway(t, "serve", "--config", p)
			if err == nil || !strings.Contains(stderr, p) || !strings.Contains(stderr, tc.want) {
				t.Fatalf("serve: %v\n%s", err, stderr)
			}
		})
	}
}

// TestServeCheck: serve --check reads the configuration and every file it
// names, lists the certificate and CRL checks of /readyz, and fails on an
// expired certificate or a file that does not load (an encrypted key by
// name); it opens no store.
func TestServeCheck(t *testing.T) {
	l, _ := devLayout(t)
	stdout, stderr, err := gateway(t, "serve", "--config", l.Config, "--check")
	if err != nil || !strings.Contains(stdout, "ok   certificate:server") || !strings.Contains(stdout, "configuration OK") {
		t.Fatalf("ok/dev-config: %v\n%s%s", err, stdout, stderr)
	}
	if _, err := os.Stat(l.Store); !os.IsNotExist(err) {
		t.Fatalf("ok/dev-config: the check made the store (%v)", err)
	}

	// An encrypted key of a TLS pair is refused by name (the standard
	// library's loader said "failed to parse private key").
	plain, err := os.ReadFile(l.OutboundKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.OutboundKey, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("opaque")}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err = gateway(t, "serve", "--config", l.Config, "--check"); err == nil || !strings.Contains(stderr, "the private key is encrypted") {
		t.Fatalf("fail/encrypted-outbound-key: %v\n%s", err, stderr)
	}
	if err := os.WriteFile(l.OutboundKey, plain, 0o600); err != nil {
		t.Fatal(err)
	}

	// An expired server certificate (its key pair still matches).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := x509.ParseCertificate(der)
	if err := certs.WriteFiles(l.ServerCert, l.ServerKey, expired, key); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = gateway(t, "serve", "--config", l.Config, "--check")
	if err == nil || !strings.Contains(stdout, "FAIL certificate:server") || !strings.Contains(stderr, "certificate:server: not valid now") {
		t.Fatalf("fail/expired-server-certificate: %v\n%s%s", err, stdout, stderr)
	}

	if err := os.Remove(l.ReceiptKey); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err = gateway(t, "serve", "--config", l.Config, "--check"); err == nil || !strings.Contains(stderr, "receipt key") ||
		!strings.Contains(stderr, "gateway certs rotate-receipt-key --config FILE makes the first") {
		t.Fatalf("fail/no-receipt-key: %v\n%s", err, stderr)
	}
	// serve generates nothing: rotate-receipt-key makes a production
	// gateway's first key (it refused, and nothing else made one).
	if stdout, stderr, err = gateway(t, "certs", "rotate-receipt-key", "--config", l.Config); err != nil || !strings.Contains(stdout, "first receipt key") {
		t.Fatalf("ok/first-receipt-key: %v\n%s%s", err, stdout, stderr)
	}
	if fi, err := os.Stat(l.ReceiptKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ok/first-receipt-key: %v %v, want mode 0600", fi, err)
	}
	if _, stderr, err = gateway(t, "serve", "--config", l.Config, "--check"); strings.Contains(stderr, "receipt key") {
		t.Fatalf("ok/first-receipt-key: serve --check still refuses the key: %v\n%s", err, stderr)
	}
}

// TestCertsListNames: certs list shows the certificates and CRLs the
// gateway watches (its expiry gauges and /readyz, as serve --check lists
// them), under the same names: a certificate added to one list only, or
// named apart, fails here. The configuration has a client CA bundle of two
// certificates, a server certificate with its chain, two CRLs of one base
// name, an agency's signing CRL, the operators' CA's CRL and a partner
// endpoint with a client certificate of its own.
func TestCertsListNames(t *testing.T) {
	l, dir := devLayout(t)
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(l.CACert)
	serverPEM, _ := os.ReadFile(l.ServerCert)
	bundle := filepath.Join(dir, "pki", "clients-bundle.pem")
	if err := errors.Join(os.WriteFile(bundle, append(caPEM, caPEM...), 0o644),
		os.WriteFile(l.ServerCert, append(serverPEM, caPEM...), 0o644)); err != nil {
		t.Fatal(err)
	}
	var crls []string
	for _, sub := range []string{"a", "b"} {
		crl, err := ca.Revoke(1)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "pki", sub, "clients.crl")
		if err := errors.Join(os.MkdirAll(filepath.Dir(path), 0o755), os.WriteFile(path, crl, 0o644)); err != nil {
			t.Fatal(err)
		}
		crls = append(crls, path)
	}
	good, _ := os.ReadFile(l.Config)
	crlJSON, _ := json.Marshal(crls)
	cfg := bytes.Replace(good, []byte(`"client_ca_file": "pki/ca.pem"`), []byte(`"client_ca_file": "pki/clients-bundle.pem", "crl_files": `+string(crlJSON)), 1)
	if bytes.Equal(cfg, good) {
		t.Fatal("config layout changed")
	}
	// demo-employer's endpoint presents a client certificate of its own.
	var f map[string]any
	if err := json.Unmarshal(cfg, &f); err != nil {
		t.Fatal(err)
	}
	own, err := ca.IssueClient("perkeso-at-demo-employer")
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(filepath.Join(dir, "pki", "at-employer.pem"), filepath.Join(dir, "pki", "at-employer.key"), own.Cert, own.Key); err != nil {
		t.Fatal(err)
	}
	for _, p := range f["partners"].([]any) {
		switch p := p.(map[string]any); p["id"] {
		case "demo-employer":
			p["endpoint"] = map[string]any{"url": "https://employer.example/in", "protocol": "json",
				"client_cert_file": "pki/at-employer.pem", "client_key_file": "pki/at-employer.key",
				"ca_file": "pki/ca.pem", "crl_files": []string{crls[0]}} // its server's CA, and that CA's CRL
		case "demo-agency": // its signing CA's CRL, of the same base name as a client CA's
			p["signing_crl_files"] = []string{crls[0]}
		}
	}
	// The operators' CA's CRL.
	f["operator"].(map[string]any)["crl_files"] = []string{crls[1]}
	// Kafka over TLS with a client certificate (no broker is dialled).
	f["kafka"] = map[string]any{"brokers": []string{"127.0.0.1:9"},
		"tls": map[string]any{"ca_file": "pki/ca.pem", "cert_file": "pki/at-employer.pem", "key_file": "pki/at-employer.key"}}
	cfg, _ = json.Marshal(f)
	if err := os.WriteFile(l.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	check, stderr, err := gateway(t, "serve", "--config", l.Config, "--check")
	if err != nil {
		t.Fatalf("serve --check: %v\n%s%s", err, check, stderr)
	}
	var watched []string
	for _, line := range strings.Split(check, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "ok" {
			name := strings.TrimPrefix(f[1], "certificate:")
			watched = append(watched, name)
		}
	}
	list, stderr, err := gateway(t, "certs", "list", "--config", l.Config)
	if err != nil || stderr != "" {
		t.Fatalf("certs list: %v\n%s%s", err, list, stderr)
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n")[1:] {
		listed = append(listed, strings.Fields(line)[0])
	}
	slices.Sort(watched)
	slices.Sort(listed)
	if !slices.Equal(watched, listed) || !slices.Contains(listed, "client-ca-1") || !slices.Contains(listed, "crl:"+crls[1]) ||
		!slices.Contains(listed, "outbound-client:demo-employer") || !slices.Contains(listed, "operator-ca-0") ||
		!slices.Contains(listed, "kafka-ca-0") || !slices.Contains(listed, "kafka-client") || !slices.Contains(listed, "crl:signing:demo-agency:clients.crl") ||
		!slices.Contains(listed, "crl:operator:clients.crl") || !slices.Contains(listed, "endpoint-ca:demo-employer:0") ||
		!slices.Contains(listed, "crl:endpoint:demo-employer:clients.crl") {
		t.Fatalf("certs list names %q,\nthe gateway watches %q", listed, watched)
	}
}

// sqlite3Tamper edits one logged entry behind the gateway's back.
func sqlite3Tamper(t *testing.T, path string) {
	t.Helper()
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.DB().Exec(`UPDATE message_log SET status = 299 WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
}

// TestReloadOnSIGHUP: a broken configuration on SIGHUP changes nothing; a
// configuration adding a CRL that revokes the demo employer's certificate
// makes its next handshake fail, without a restart.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	submit := func() error {
		_, _, err := gateway(t, "submit", "--dev", dir, example("example-a.in.json"))
		return err
	}
	if err := submit(); err != nil {
		t.Fatalf("before: %v", err)
	}
	l, _ := devmode.LayoutOf(dir)
	good, _ := os.ReadFile(l.Config)
	_ = os.WriteFile(l.Config, []byte(`{"partners": [`), 0o644)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if err := submit(); err != nil || !strings.Contains(out.String(), `level=ERROR msg="reload refused`) { // the gateway's own log, in its format
		t.Fatalf("after a broken reload: %v\n%s", err, out.String())
	}
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	kit := l.Kit("demo-employer")
	cc, _ := certs.LoadCertificates(kit.ClientCert)
	crl, err := ca.Revoke(1, cc[0])
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "pki", "clients.crl"), crl, 0o644)
	cfg := bytes.Replace(good, []byte(`"client_ca_file": "pki/ca.pem"`), []byte(`"client_ca_file": "pki/ca.pem", "crl_files": ["pki/clients.crl"]`), 1)
	if bytes.Equal(cfg, good) {
		t.Fatal("config layout changed")
	}
	_ = os.WriteFile(l.Config, cfg, 0o644)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	gatewaytest.Until(t, 10*time.Second, 100*time.Millisecond, func() error {
		if submit() == nil {
			return fmt.Errorf("the revoked certificate is still accepted:\n%s", out.String())
		}
		return nil
	})
	// certs list shows the CRL with its next update (7 days from now).
	o, _, err := gateway(t, "certs", "list", "--dev", dir)
	if err != nil || !regexp.MustCompile(`(?m)^crl:clients\.crl +Jambatan dev root CA +\S+ +7$`).MatchString(o) {
		t.Fatalf("certs list without the CRL row: %v\n%s", err, o)
	}
	_ = d
}

// TestCertsCommands: an onboarding kit issued by the dev CA, the expiry
// list, and a receipt key rotation picked up on SIGHUP: new receipts carry
// the new kid and a receipt issued before the rotation still verifies
// against the published JWKS.
func TestCertsCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	l, _ := devmode.LayoutOf(dir)
	kitDir := filepath.Join(t.TempDir(), "kit")
	if o, e, err := gateway(t, "certs", "kit", "--partner", "acme-hr", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", kitDir); err != nil || !strings.Contains(o, "registration") {
		t.Fatalf("kit: %v %s %s", err, o, e)
	}
	pool, _ := certs.LoadPool(l.CACert)
	kc, err := certs.LoadCertificates(filepath.Join(kitDir, "client.pem"))
	if err != nil || kc[0].Subject.CommonName != "acme-hr" {
		t.Fatalf("kit certificate: %v", err)
	}
	if _, err := kc[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	// A second kit for the same partner (its key rotation): a kid of its
	// own, so both public keys can be registered side by side.
	kitDir2 := filepath.Join(t.TempDir(), "kit2")
	if o, e, err := gateway(t, "certs", "kit", "--partner", "acme-hr", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", kitDir2); err != nil {
		t.Fatalf("second kit: %v %s %s", err, o, e)
	}
	var both struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, k := range []string{kitDir, kitDir2} {
		var set struct{ Keys []json.RawMessage }
		b, _ := os.ReadFile(filepath.Join(k, "jwks.json"))
		_ = json.Unmarshal(b, &set)
		both.Keys = append(both.Keys, set.Keys...)
	}
	bb, _ := json.Marshal(both)
	if _, err := config.ParsePublicJWKS(bb); err != nil || len(both.Keys) != 2 {
		t.Fatalf("the two kits' keys cannot be registered together: %v", err)
	}
	// An agency's kit: a WS-Security signing certificate issued to its
	// institution id, which its registration's signing CA accepts.
	agencyDir := filepath.Join(t.TempDir(), "agency-kit")
	if o, e, err := gateway(t, "certs", "kit", "--partner", "bn-spk", "--institution", "BN:SPK", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", agencyDir); err != nil ||
		!strings.Contains(o, `"institution": "BN:SPK"`) || !strings.Contains(o, `"signing_ca_file"`) {
		t.Fatalf("agency kit: %v %s %s", err, o, e)
	}
	ws, err := certs.LoadCertificates(filepath.Join(agencyDir, "ws-signing.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if rk, ok := ws[0].PublicKey.(*rsa.PublicKey); !ok || rk.N.BitLen() != 2048 || wssec.TrustInstitution(pool, "BN:SPK")(ws[0]) != nil {
		t.Fatalf("agency signing certificate: %T %v", ws[0].PublicKey, wssec.TrustInstitution(pool, "BN:SPK")(ws[0]))
	}
	if _, err := certs.LoadKey(filepath.Join(agencyDir, "ws-signing.key")); err != nil {
		t.Fatal(err)
	}
	if _, e, err := gateway(t, "certs", "kit", "--partner", "bn-spk", "--institution", "brunei", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", agencyDir+"2"); err == nil || !strings.Contains(e, `--institution "brunei"`) {
		t.Fatalf("a kit for a bad institution id: %v %s", err, e)
	}
	// Kits from the partners' own requests: certificates for their keys, no
	// private key made or written.
	csr := func(name string, key crypto.Signer) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "typed-by-them"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	own, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ownSigning, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name string
		args []string
		cert map[string]crypto.Signer // file in the kit: the key it must be for
	}{
		{"employer", []string{"--partner", "acme-hr", "--csr", csr("acme.csr", own)}, map[string]crypto.Signer{"client.pem": own}},
		{"agency", []string{"--partner", "bn-spk", "--institution", "BN:SPK", "--csr", csr("spk.csr", own), "--signing-csr", csr("spk-ws.csr", ownSigning)},
			map[string]crypto.Signer{"client.pem": own, "ws-signing.pem": ownSigning}},
	} {
		out := filepath.Join(t.TempDir(), "csr-kit-"+tc.name)
		if o, e, err := gateway(t, append([]string{"certs", "kit", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", out}, tc.args...)...); err != nil || !strings.Contains(o, "registration") {
			t.Fatalf("%s kit from requests: %v %s %s", tc.name, err, o, e)
		}
		entries, _ := os.ReadDir(out)
		if len(entries) != len(tc.cert) {
			t.Fatalf("%s kit from requests holds %d files, want only the certificates", tc.name, len(entries))
		}
		for file, key := range tc.cert {
			c, err := certs.LoadCertificates(filepath.Join(out, file))
			if err != nil || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c[0].PublicKey) || c[0].Subject.CommonName == "typed-by-them" {
				t.Fatalf("%s %s: not for the request's key, or named as the request asked: %v", tc.name, file, err)
			}
		}
	}
	if o, _, err := gateway(t, "certs", "list", "--dev", dir); err != nil || !strings.Contains(o, "server") || !strings.Contains(o, "soap-signing") {
		t.Fatalf("list: %v %s", err, o)
	}
	first, _, err := gateway(t, "submit", "--dev", dir, example("example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	var acc struct{ Receipt string }
	_ = json.Unmarshal([]byte(first), &acc)
	if o, _, err := gateway(t, "certs", "rotate-receipt-key", "--dev", dir); err != nil || !strings.Contains(o, "new receipt key") {
		t.Fatalf("rotate: %v %s", err, o)
	}
	reload(t, cmd, out)
	o, _, err := gateway(t, "submit", "--dev", dir, example("example-b.in.json"))
	var b struct{ Receipt string }
	_ = json.Unmarshal([]byte(o), &b)
	if err != nil || b.Receipt == "" || strings.Split(b.Receipt, ".")[0] == strings.Split(acc.Receipt, ".")[0] {
		t.Fatalf("receipts not signed with the new key: %v %s", err, o) // the protected header names the kid
	}
	if o, e, err := gateway(t, "receipt", "verify", "--dev", dir, "--jwks", d.JWKSURL, acc.Receipt); err != nil {
		t.Fatalf("a receipt from before the rotation no longer verifies: %v %s %s", err, o, e)
	}
	// The rotation wrote the public keys where ingest reads them: both
	// records are ingested, none quarantined for its key.
	if o, e, err := gateway(t, "receipt", "verify", "--jwks", l.GatewayJWKS, b.Receipt); err != nil {
		t.Fatalf("the new receipt does not verify with %s: %v %s %s", l.GatewayJWKS, err, o, e)
	}
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up", "--idle", "1s"); err != nil || !strings.Contains(o, "2 ingested, 0 quarantined") {
		t.Fatalf("ingest after the rotation: %v %s %s", err, o, e)
	}
}

// TestServe runs "gateway serve" on a configuration (the dev one, which
// names no Kafka brokers) and submits a notice to it: production start-up
// generates nothing and accepts over mutual TLS, the outbox waiting.
func TestServe(t *testing.T) {
	l, _ := devLayout(t)
	cmd := exec.Command(gatewayBin, "serve", "--config", l.Config, "--addr", "127.0.0.1:0")
	out := &gatewaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _, _ = cmd.Process.Wait() }()
	var addr string
	gatewaytest.Until(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, line := range strings.Split(out.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "gateway listening" {
				addr = rec.Addr
				return nil
			}
		}
		return fmt.Errorf("serve never listened:\n%s", out.String())
	})
	if !strings.Contains(out.String(), "no kafka brokers configured") {
		t.Fatalf("no warning about the missing brokers:\n%s", out.String())
	}
	// A partner's engineer with the kit Perkeso sent: "gateway submit --kit"
	// against the gateway's address, its receipt verified with the keys the
	// gateway serves.
	kit := l.Kit("demo-employer").Dir
	stdout, stderr, err := gateway(t, "submit", "--kit", kit, "--url", "https://"+addr, "--ca", l.CACert, example("example-a.in.json"))
	if err != nil || !strings.Contains(stderr, "HTTP 202") || !strings.Contains(stderr, "receipt verified against https://"+addr+"/.well-known/jwks.json") {
		t.Fatalf("submit --kit: %v\n%s\n%s", err, stdout, stderr)
	}
	var acc struct{ Receipt string }
	if err := json.Unmarshal([]byte(stdout), &acc); err != nil {
		t.Fatal(err)
	}
	jwksURL := "https://" + addr + "/.well-known/jwks.json"
	if o, e, err := gateway(t, "receipt", "verify", "--kit", kit, "--ca", l.CACert, "--jwks", jwksURL, acc.Receipt); err != nil || !strings.Contains(o, "b0867b30") {
		t.Fatalf("receipt verify --kit: %v\n%s\n%s", err, o, e)
	}
	// An agency's engineer with the kit Perkeso sent: "gateway soap --kit".
	agency := l.Kit("demo-agency").Dir
	envelope := filepath.Join("..", "..", "adapters", "agencysoap", "testdata", "example-10.1.request.xml")
	acknowledgement, e, err := gateway(t, "soap", "--kit", agency, "--url", "https://"+addr+"/soap/v1/exchange", "--ca", l.CACert, "--signing-ca", l.CACert, envelope)
	if err != nil || !strings.Contains(e, "InjuryAcknowledgement, response signature verified; it answers this message") {
		t.Fatalf("soap --kit: %v\n%s\n%s", err, acknowledgement, e)
	}
	// A response signed under a CA other than --signing-ca is not taken
	// (the server's certificate did not issue Perkeso's signing certificate).
	if _, e, err := gateway(t, "soap", "--kit", agency, "--url", "https://"+addr+"/soap/v1/exchange", "--ca", l.CACert, "--signing-ca", l.ServerCert, envelope); err == nil ||
		!strings.Contains(e, "client.certificate.untrusted") {
		t.Fatalf("soap --kit trusting another CA: %v\n%s", err, e)
	}
	// Without --ca the system's roots do not know the dev CA.
	if _, stderr, err := gateway(t, "submit", "--kit", kit, "--url", "https://"+addr, example("example-b.in.json")); err == nil || !strings.Contains(stderr, "certificate") {
		t.Fatalf("submit --kit without the gateway's CA: %v %s", err, stderr)
	}
	// A receipt that verifies but is another document's (here a gateway
	// that answers every notice with the first one's) is not taken.
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	other := answering(t, ca, l.GatewayJWKS, http.StatusAccepted, "application/json", []byte(stdout))
	if o, e, err := gateway(t, "submit", "--kit", kit, "--url", other, "--ca", l.CACert, example("example-b.in.json")); err == nil ||
		!strings.Contains(e, "does not acknowledge this document: its payloadSha256") {
		t.Fatalf("submit --kit answered with another document's receipt: %v\n%s\n%s", err, o, e)
	}
	// Nor a signed SOAP response to another message (the first one's,
	// answering a message with another MessageId).
	env, err := os.ReadFile(envelope)
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "second.xml")
	if err := os.WriteFile(second, bytes.Replace(env, []byte("5f0c6b1e-8d2a"), []byte("5f0c6b1e-0000"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	other = answering(t, ca, l.GatewayJWKS, http.StatusOK, "text/xml; charset=utf-8", []byte(acknowledgement))
	if o, e, err := gateway(t, "soap", "--kit", agency, "--url", other+"/soap/v1/exchange", "--ca", l.CACert, "--signing-ca", l.CACert, second); err == nil ||
		!strings.Contains(e, "does not answer this message") || !strings.Contains(e, "InReplyTo") {
		t.Fatalf("soap --kit answered with another message's response: %v\n%s\n%s", err, o, e)
	}
	// Another kit's receipt keys (a file) do not verify Perkeso's receipt.
	stdout, stderr, err = gateway(t, "submit", "--kit", kit, "--url", "https://"+addr, "--ca", l.CACert,
		"--jwks", filepath.Join(kit, "jwks.json"), example("example-b.in.json"))
	if err == nil || !strings.Contains(stderr, "HTTP 202") || !strings.Contains(stderr, "the receipt does not verify") {
		t.Fatalf("submit --kit with the partner's own JWKS as the receipt keys: %v\n%s\n%s", err, stdout, stderr)
	}
	// Every line the gateway logged, to its stop, carries a correlation id
	// and the instance's name: a submission's id the one its answer named,
	// and the lines of no request (listening, the brokers' warning, the
	// log's head at the stop) the process's.
	answered := regexp.MustCompile(`correlation id ([0-9a-f]{32})`).FindStringSubmatch(stderr)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_, _ = cmd.Process.Wait()
	ids := map[string]string{}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, line := range lines {
		var rec struct {
			Msg, Instance string
			ID            string `json:"correlation_id"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.ID == "" || rec.Instance != "jambatan-dev" { // the dev configuration's
			t.Fatalf("a line without a correlation id or the instance's name (%v): %s", err, line)
		}
		ids[rec.Msg] = rec.ID
	}
	process := ids["gateway listening"]
	if answered == nil || !strings.Contains(out.String(), `"correlation_id":"`+answered[1]+`","partner":"demo-employer"`) {
		t.Fatalf("no submission line with the answer's id %v:\n%s", answered, out.String())
	}
	for _, msg := range []string{"no kafka brokers configured: accepted notices wait in the outbox", "message log head"} {
		if ids[msg] != process || process == "" || process == answered[1] {
			t.Fatalf("%q: id %q, the process's %q:\n%s", msg, ids[msg], process, out.String())
		}
	}
	if len(lines) < 5 {
		t.Fatalf("%d lines logged:\n%s", len(lines), out.String())
	}
}

// answering is a server with a certificate of ca that answers every POST
// with status, contentType and body, and a GET with the JWKS file: a
// gateway that answers with what it answered someone else.
func answering(t *testing.T, ca *certs.CA, jwksFile string, status int, contentType string, body []byte) string {
	t.Helper()
	jwks, err := os.ReadFile(jwksFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = w.Write(jwks)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	issued, err := ca.IssueServer("127.0.0.1", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{issued.Cert.Raw}, PrivateKey: issued.Key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRequeueQuarantineWithoutKafka: "gateway ingest --requeue-quarantine"
// works on the back office's database alone, the cluster unreachable.
func TestRequeueQuarantineWithoutKafka(t *testing.T) {
	l, _ := devLayout(t)
	db := filepath.Join(t.TempDir(), "backoffice.db")
	// --batch at either end of its range is taken (past them refused: TestFlagsRefused).
	for _, batch := range []string{"500", "1", "10000"} {
		out, stderr, err := gateway(t, "ingest", "--brokers", "127.0.0.1:9", "--topic", "t.verified", "--jwks", l.GatewayJWKS, "--db", db, "--requeue-quarantine", "--batch", batch)
		if err != nil || !strings.Contains(out, "requeue: 0 filed and taken out of the quarantine, 0 still quarantined") {
			t.Fatalf("--batch %s: %v\n%s%s", batch, err, out, stderr)
		}
	}
}

// TestIngestConfig: "gateway ingest --config" takes the cluster and the
// topics from the gateway's configuration (the delivery statuses' too, the
// gateway delivering outbound) and logs as a service does, in JSON lines.
func TestIngestConfig(t *testing.T) {
	l, _ := devLayout(t)
	topics := events.DefaultTopics
	const statuses = "perkeso.delivery-status.test" // not the default, so that it is seen to come from the file
	kafka, err := broker.Start(t.TempDir(), 0, topics.Verified, topics.Rejected, topics.CaseMessages, statuses)
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	cfg := filepath.Join(filepath.Dir(l.Config), "ingest.json")
	gatewaytest.EditConfig(t, l.Config, cfg, func(c map[string]any) {
		c["kafka"].(map[string]any)["brokers"] = []string{kafka.Addr}
		c["outbound"].(map[string]any)["status_topic"] = statuses
	})
	db := filepath.Join(t.TempDir(), "backoffice.db")
	out, stderr, err := gateway(t, "ingest", "--config", cfg, "--jwks", l.GatewayJWKS, "--db", db, "--until-caught-up", "--idle", "1s")
	if err != nil || !strings.Contains(out, "0 ingested, 0 quarantined") || stderr == "" {
		t.Fatalf("ingest --config: %v\n%s\n%s", err, out, stderr)
	}
	assertJSONLog(t, "ingest", stderr)
	// The statuses' topic is the file's: named again for rejections, refused.
	if _, stderr, err := gateway(t, "ingest", "--config", cfg, "--jwks", l.GatewayJWKS, "--db", db, "--rejected-topic", statuses, "--until-caught-up", "--idle", "1s"); err == nil ||
		!strings.Contains(stderr, "topic "+statuses+" is named for two kinds of event") {
		t.Fatalf("the statuses' topic named twice: %v\n%s", err, stderr)
	}
}

// assertJSONLog fails the test unless every line cmd logged is a JSON
// record with a level, a message and a correlation id, as a service logs.
func assertJSONLog(t *testing.T, cmd, logged string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(logged), "\n") {
		var l struct {
			Level, Msg string
			ID         string `json:"correlation_id"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Level == "" || l.Msg == "" || l.ID == "" {
			t.Fatalf("%s's log holds %q, not a JSON line with a correlation id (%v)", cmd, line, err)
		}
	}
}

// TestSubmitUnreachable: a partner tool that cannot reach the gateway says
// so once, in its own words. (resty's own logger wrote the failure to
// stderr twice more, as "WARN RESTY …" and "ERROR RESTY …" lines.)
func TestSubmitUnreachable(t *testing.T) {
	l, _ := devLayout(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, stderr, err := gateway(t, "submit", "--kit", filepath.Join(l.Dir, "partners", "demo-employer"), "--url", "https://"+addr, "--ca", l.CACert, example("example-a.in.json"))
	if err == nil || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "gateway submit: ") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("err %v, stderr %q; want one line, gateway submit's, saying the connection was refused", err, stderr)
	}
}

// TestFlagsRefused: flags a command could only misread are refused with
// the flag and its bound, before the command does anything (so before the
// dev directory, which none of these has, is looked for).
func TestFlagsRefused(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none") // no dev directory: the flags are refused before it is looked for
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fail/loadtest-concurrency-zero", []string{"loadtest", "--dev", none, "--concurrency", "0"}, "--concurrency 0: must be 1 to 4096"},
		{"fail/loadtest-concurrency-negative", []string{"loadtest", "--dev", none, "--concurrency", "-3"}, "--concurrency -3"},
		{"fail/loadtest-requests-negative", []string{"loadtest", "--dev", none, "--requests", "-1"}, "--requests -1: must be positive"},
		{"fail/loadtest-duration-negative", []string{"loadtest", "--dev", none, "--duration", "-2s"}, "--duration -2s: must be positive"},
		{"fail/loadtest-duration-and-requests", []string{"loadtest", "--dev", none, "--duration", "2s", "--requests", "10"}, "one or the other"},
		{"fail/loadtest-rate-negative", []string{"loadtest", "--dev", none, "--rate", "-5"}, "--rate -5"},
		{"fail/loadtest-rate-nan", []string{"loadtest", "--dev", none, "--rate", "NaN"}, "--rate NaN"},
		{"fail/loadtest-template-missing", []string{"loadtest", "--dev", none, "--template", filepath.Join(none, "notice.json")}, "notice.json"},
		{"fail/submit-kit-without-url", []string{"submit", "--kit", none, "notice.json"}, "--kit and --url go together"},
		{"fail/submit-ca-without-kit", []string{"submit", "--dev", none, "--ca", "ca.pem", "notice.json"}, "--kit and --url go together"},
		{"fail/submit-url-http", []string{"submit", "--kit", none, "--url", "http://127.0.0.1:8443", "notice.json"}, "must be https://"},
		{"fail/soap-kit-without-signing-ca", []string{"soap", "--kit", none, "--url", "https://127.0.0.1:8443/soap/v1/exchange", "env.xml"}, "--kit, --url and --signing-ca go together"},
		{"fail/soap-ca-without-kit", []string{"soap", "--dev", none, "--ca", "ca.pem", "env.xml"}, "--kit, --url and --signing-ca go together"},
		{"fail/soap-url-http", []string{"soap", "--kit", none, "--url", "http://127.0.0.1:8443/soap/v1/exchange", "--signing-ca", "ca.pem", "env.xml"}, "must be https://"},
		{"fail/kit-signing-csr-without-institution", []string{"certs", "kit", "--partner", "acme-hr", "--ca-cert", "ca.pem", "--ca-key", "ca.key", "--csr", "a.csr", "--signing-csr", "b.csr"}, "usage: gateway certs kit"},
		{"fail/kit-agency-csr-without-signing-csr", []string{"certs", "kit", "--partner", "bn-spk", "--institution", "BN:SPK", "--ca-cert", "ca.pem", "--ca-key", "ca.key", "--csr", "a.csr"}, "usage: gateway certs kit"},
		{"fail/ingest-batch-zero", []string{"ingest", "--batch", "0"}, "--batch 0: must be 1 to 10000"},
		{"fail/ingest-batch-huge", []string{"ingest", "--batch", "1000000"}, "--batch 1000000"},
		{"fail/ingest-batch-one-over", []string{"ingest", "--batch", "10001"}, "--batch 10001: must be 1 to 10000"},
		{"fail/ingest-idle-zero", []string{"ingest", "--until-caught-up", "--idle", "0s"}, "--idle 0s: must be positive"},
		{"fail/ingest-topic-twice", []string{"ingest", "--brokers", "127.0.0.1:1", "--topic", "t", "--rejected-topic", "t", "--jwks", "x", "--db", "y"},
			"topic t is named for two kinds of event"},
		{"fail/dev-kafka-port", []string{"dev", "--dir", filepath.Join(t.TempDir(), "dev"), "--kafka-port", "70000"}, "--kafka-port 70000"},
		{"fail/certs-kit-partner-id", []string{"certs", "kit", "--partner", "Acme HR", "--ca-cert", "ca.pem", "--ca-key", "ca.key"}, `--partner "Acme HR": a partner id is`},
		{"fail/certs-kit-without-ca", []string{"certs", "kit", "--partner", "acme-hr"}, "usage: gateway certs kit"},
		{"fail/certs-list-kit-flag", []string{"certs", "list", "--partner", "acme-hr"}, "flag provided but not defined: -partner"},
		{"fail/certs-unknown", []string{"certs", "renew"}, "usage: gateway certs kit"},
		{"fail/certs-no-subcommand", []string{"certs"}, "usage: gateway certs kit"},
		{"fail/log-no-subcommand", []string{"log"}, "usage: gateway log verify"},
		{"fail/outbound-no-subcommand", []string{"outbound"}, "usage: gateway outbound list"},
		{"fail/receipt-no-subcommand", []string{"receipt"}, "usage: gateway receipt verify"},
		{"fail/outbound-list-no-store", []string{"outbound", "list", "--store", filepath.Join(t.TempDir(), "typo.db")}, "no such file or directory"},
		{"fail/outbound-retry-not-a-number", []string{"outbound", "retry", "abc", "--store", filepath.Join(t.TempDir(), "typo.db")}, `delivery id "abc" is not a number`},
		{"fail/store-no-subcommand", []string{"store", "--dev", none}, "usage: gateway store backup"},
		{"fail/store-backup-no-file", []string{"store", "backup", "--dev", none}, "usage: gateway store backup"},
		{"fail/log-verify-no-store", []string{"log", "verify", "--store", filepath.Join(t.TempDir(), "typo.db")}, "no such file or directory"},
		{"fail/outbound-list-state", []string{"outbound", "list", "--state", "stuck"}, `--state "stuck": one of pending, delivered, dead`},
		{"fail/outbound-list-limit", []string{"outbound", "list", "--dev", none, "--limit", "0"}, `--limit 0: must be 1 to 10000`},
		{"fail/outbound-list-limit-over", []string{"outbound", "list", "--dev", none, "--limit", "10001"}, `--limit 10001: must be 1 to 10000`},
		{"fail/outbound-answer-without-id", []string{"outbound", "answer", "--dev", none}, "usage: gateway outbound"},
		{"fail/outbound-retry-id-and-partner", []string{"outbound", "retry", "--dev", none, "--partner", "th-sso", "7"}, "usage: gateway outbound"},
		{"fail/outbound-list-before", []string{"outbound", "list", "--dev", none, "--before", "-3"}, `--before -3: must be a delivery id`},
		{"fail/outbound-retry-list-flag", []string{"outbound", "retry", "--dev", none, "--state", "dead", "7"}, "flag provided but not defined: -state"},
		{"fail/outbound-retry-neither", []string{"outbound", "retry", "--dev", none}, "usage: gateway outbound"},
		{"fail/outbound-unknown", []string{"outbound", "resend", "7"}, "usage: gateway outbound"},
		// A word a command does not take is refused, not passed over (a
		// configuration file without --config would leave the dev one in
		// charge).
		{"fail/stray-certs-rotate", []string{"certs", "rotate-receipt-key", "--dev", none, "prod.json"}, `gateway certs rotate-receipt-key: unexpected argument "prod.json"`},
		{"fail/stray-certs-list", []string{"certs", "list", "--dev", none, "prod.json"}, `unexpected argument "prod.json"`},
		{"fail/stray-certs-kit", []string{"certs", "kit", "--partner", "acme-hr", "--ca-cert", "ca.pem", "--ca-key", "ca.key", "acme.csr"}, `unexpected argument "acme.csr"`},
		{"fail/stray-serve", []string{"serve", "gateway.json"}, `gateway serve: unexpected argument "gateway.json"`},
		{"fail/stray-dev", []string{"dev", "--dir", filepath.Join(t.TempDir(), "dev"), "8443"}, `gateway dev: unexpected argument "8443"`},
		{"fail/stray-ingest", []string{"ingest", "--dev", none, "backoffice.db"}, `unexpected argument "backoffice.db"`},
		{"fail/stray-loadtest", []string{"loadtest", "--dev", none, "32"}, `unexpected argument "32"`},
		{"fail/stray-log-verify", []string{"log", "verify", "--dev", none, "gateway.db"}, `unexpected argument "gateway.db"`},
		{"fail/stray-store-backup", []string{"store", "backup", "--dev", none, "--to", "b.db", "c.db"}, `unexpected argument "c.db"`},
		{"fail/stray-outbound-list", []string{"outbound", "list", "--dev", none, "dead"}, `gateway outbound list: unexpected argument "dead"`},
		{"fail/stray-outbound-retry", []string{"outbound", "retry", "--dev", none, "7", "8"}, `gateway outbound retry: unexpected argument "8"`},
		{"fail/stray-outbound-answer", []string{"outbound", "answer", "--dev", none, "r-1", "r-2"}, `unexpected argument "r-2"`},
		{"fail/stray-sign", []string{"sign", "--jwk", "k.json", "a.json", "b.json"}, `gateway sign: unexpected argument "b.json"`},
		{"fail/stray-submit", []string{"submit", "--dev", none, "a.json", "b.json"}, `unexpected argument "b.json"`},
		{"fail/stray-soap", []string{"soap", "--dev", none, "a.xml", "b.xml"}, `unexpected argument "b.xml"`},
		{"fail/stray-receipt-verify", []string{"receipt", "verify", "--jwks", "j.json", "a.jws", "b.jws"}, `unexpected argument "b.jws"`},
		{"fail/log-verify-anchor-without-hash", []string{"log", "verify", "--dev", none, "--anchor", "5"}, `--anchor "5": want SEQ:HASH`},
		{"fail/log-verify-anchor-short-hash", []string{"log", "verify", "--dev", none, "--anchor", "5:abc"}, `--anchor "5:abc": want SEQ:HASH`},
		{"fail/log-verify-anchor-zero", []string{"log", "verify", "--dev", none, "--anchor", "0:" + strings.Repeat("a", 64)}, `--anchor "0:aaa`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, err := gateway(t, tc.args...); err == nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("err %v, stderr %q; want %q", err, stderr, tc.want)
			}
		})
	}
}

// TestHelp: "gateway help CMD" shows CMD's usage and flags, as "gateway CMD
// -h" does, and succeeds; a command that does not exist is named.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		ok     bool
		stderr string
	}{
		{"ok/help", []string{"help"}, true, `Run "gateway help <command>"`},
		{"ok/help-dev", []string{"help", "dev"}, true, "-kafka-port"},
		{"ok/help-certs", []string{"help", "certs"}, true, "usage: gateway certs kit"},
		{"ok/help-log", []string{"help", "log"}, true, "usage: gateway log verify"},
		{"fail/none", nil, false, "Usage: gateway <command>"},
		{"fail/help-unknown", []string{"help", "renew"}, false, `unknown command "renew"`},
		{"fail/unknown", []string{"renew"}, false, `unknown command "renew"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := gateway(t, tc.args...)
			if (err == nil) != tc.ok || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("err %v, stderr %q; want success %v and %q", err, stderr, tc.ok, tc.stderr)
			}
		})
	}
}

// TestOutboundRetryPartner: "outbound retry --partner P" queues P's dead
// letters again and says how many; those refused for good stay dead, and
// only then does it say how many it left.
func TestOutboundRetryPartner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(d *store.Delivery) *store.Entry {
		return &store.Entry{CorrelationID: "c", PartnerID: d.PartnerID, ReceivedAt: time.Now(), Route: "OUTBOUND", SourceKey: d.Key}
	}
	for _, d := range []*store.Delivery{
		{Key: "dead-1", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`)},
		{Key: "for-good-1", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`), NoRetry: true},
		{Key: "dead-2", PartnerID: "bn-spk", MessageType: "NotifyDecision", Payload: []byte(`{}`)},
	} {
		if _, err := st.EnqueueRefused(context.Background(), d, "HTTP 404", time.Now(), entry); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, tc := range []struct{ name, partner, want string }{
		{"ok/one-left-for-good", "th-sso", "1 dead letters of th-sso queued again\n" +
			"1 refused for good when queued are left dead (a retry would send other than was asked; see outbound list --state dead)\n"},
		{"ok/none-left", "bn-spk", "1 dead letters of bn-spk queued again\n"},
		{"ok/nothing-dead", "my-nobody", "0 dead letters of my-nobody queued again\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := gateway(t, "outbound", "retry", "--store", path, "--partner", tc.partner)
			if err != nil || out != tc.want {
				t.Fatalf("%v %s\n%s\nwant %q", err, stderr, out, tc.want)
			}
		})
	}
}

// TestOutboundListWaits: `outbound list` says which delivery a pending one
// waits behind on its case, and says nothing of the others.
func TestOutboundListWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, k := range []string{"decision-1", "decision-2", "other-case"} {
		d := &store.Delivery{Key: k, PartnerID: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-" + map[bool]string{true: "2", false: "1"}[k == "other-case"], Payload: []byte(`{}`)}
		if _, err := st.Enqueue(context.Background(), d, time.Now()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	st.Close()
	out, _, err := gateway(t, "outbound", "list", "--store", path)
	if err != nil {
		t.Fatal(err)
	}
	waits := regexp.MustCompile(`(?m)^(\d+) .*\[waits for delivery (\d+) on its case\]`).FindAllStringSubmatch(out, -1)
	if len(waits) != 1 || waits[0][1] != strconv.FormatInt(ids[1], 10) || waits[0][2] != strconv.FormatInt(ids[0], 10) {
		t.Fatalf("list:\n%s\nwant only delivery %d waiting for %d", out, ids[1], ids[0])
	}
	// The largest --limit is taken (one more is refused: TestFlagsRefused).
	if most, stderr, err := gateway(t, "outbound", "list", "--store", path, "--limit", "10000"); err != nil || most != out {
		t.Fatalf("--limit 10000: %v %s\n%s\nwant the list as before", err, stderr, most)
	}
}
