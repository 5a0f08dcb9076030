package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"

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
	b, err := os.ReadFile(example("example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(b, []byte(`"G5123456T"`), []byte(`"G5123456X"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
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
	caBefore, err := os.ReadFile(d.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cmd, out, d2 := startDev(t, dir)
	caAfter, err := os.ReadFile(d2.CACert)
	if err != nil {
		t.Fatal(err)
	}
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
