package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

func TestTuneProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	cores := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		name, env, store string
		want             int
	}{
		{"ok/sqlite has one more", "", "gateway.db", cores + 1},
		{"ok/sqlite again still one more", "", "gateway.db", cores + 1},
		{"ok/postgres has the cores", "", "postgres://jambatan@127.0.0.1/jambatan", cores},
		{"ok/GOMAXPROCS set wins", "7", "gateway.db", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env)
			if tc.env != "" {
				runtime.GOMAXPROCS(7) // as the runtime read it at start
			}
			tuneProcs(tc.store)
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestServeWarnsUnsignedOutbound: a gateway that reads outbound requests
// from Kafka without outbound.request_signers_file warns at its start that
// whoever may write to the topic may have Perkeso sign a message to a
// partner. With the signers set, or without Kafka (no outbound consumer),
// it says nothing of the kind.
func TestServeWarnsUnsignedOutbound(t *testing.T) {
	l, _ := devLayout(t)
	kafka := kafkatest.Broker(t, t.TempDir(), events.DefaultTopics.Outbound)
	const warning = "outbound requests are taken unsigned"
	for i, tc := range []struct {
		name           string
		kafka, signers bool
	}{
		{"ok/kafka-without-signers-warns", true, false},
		{"ok/kafka-with-signers", true, true},
		{"ok/no-kafka-no-signers", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(filepath.Dir(l.Config), fmt.Sprintf("serve-%d.json", i))
			gatewaytest.EditConfig(t, l.Config, path, func(cfg map[string]any) {
				if tc.kafka {
					cfg["kafka"].(map[string]any)["brokers"] = []string{kafka.Addr}
				}
				if !tc.signers {
					delete(cfg["outbound"].(map[string]any), "request_signers_file")
				}
			})
			out := serveOnce(t, path)
			if warned := strings.Contains(out, warning); warned != (tc.kafka && !tc.signers) {
				t.Fatalf("warned %v:\n%s", warned, out)
			}
		})
	}
}

// serveOnce runs "gateway serve --config path" until it listens, stops it,
// and returns all it logged.
func serveOnce(t *testing.T, path string) string {
	t.Helper()
	cmd, out, _ := startServe(t, path)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve: %v\n%s", err, out.String())
	}
	return out.String()
}

// startServe starts "gateway serve" on the configuration at path, on a
// loopback port of its choosing, and returns once it listens: the process,
// its output and the address it logged. A process still running when the
// test ends is killed.
func startServe(t *testing.T, path string) (*exec.Cmd, *gatewaytest.SyncBuffer, string) {
	t.Helper()
	cmd := exec.Command(gatewayBin, "serve", "--config", path, "--addr", "127.0.0.1:0")
	out := &gatewaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }) // should the wait fail
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
	return cmd, out, addr
}

// TestTuneGC: the collector runs at GOGC=400 under a 160 MiB soft memory
// limit, unless the environment sets either, which then wins.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	for _, tc := range []struct {
		name, gogc, memlimit string
		percent              int
		limit                int64
	}{
		{"ok/defaults", "", "", 400, 160 << 20},
		{"ok/gogc-set-wins", "50", "", 50, 160 << 20},
		{"ok/gomemlimit-set-wins", "", "1GiB", 400, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GOMEMLIMIT", tc.memlimit)
			// Go's defaults, or what the runtime read from the environment
			// at its start.
			percent, limit := 100, int64(math.MaxInt64)
			if tc.gogc != "" {
				percent = tc.percent
			}
			if tc.memlimit != "" {
				limit = tc.limit
			}
			debug.SetGCPercent(percent)
			debug.SetMemoryLimit(limit)
			tuneGC()
			if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(-1); p != tc.percent || l != tc.limit {
				t.Fatalf("GOGC %d, memory limit %d; want %d and %d", p, l, tc.percent, tc.limit)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	l, dir := devLayout(t)
	cfg, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
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
			if err := os.WriteFile(p, bytes.Replace(cfg, []byte(tc.old), []byte(tc.new), 1), 0o644); err != nil {
				t.Fatal(err)
			}
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

// TestServe runs "gateway serve" on a configuration (the dev one, which
// names no Kafka brokers) and submits a notice to it: production start-up
// generates nothing and accepts over mutual TLS, the outbox waiting.
func TestServe(t *testing.T) {
	l, _ := devLayout(t)
	cmd, out, addr := startServe(t, l.Config)
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
