package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestReloadKeepsOpenConnections: a SIGHUP reload swaps the TLS
// configuration for new handshakes only; a partner's keep-alive connection
// opened before the reload carries its next notice without a new handshake,
// and a fresh connection after the reload is accepted too.
func TestReloadKeepsOpenConnections(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	l, _ := devmode.LayoutOf(dir)
	kit := l.Kit("demo-employer")
	key, err := partnerkit.LoadSigningKey(kit.SigningJWK)
	if err != nil {
		t.Fatal(err)
	}
	client := func() *http.Client {
		tc, err := partnerkit.TLSConfig(l.CACert, kit.ClientCert, kit.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	// post submits one signed notice and reports whether it rode an existing connection.
	post := func(c *http.Client, name string) (reused bool) {
		t.Helper()
		doc, err := os.ReadFile(example(name))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := partnerkit.Sign(doc, key, partnerkit.Compact)
		if err != nil {
			t.Fatal(err)
		}
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.GatewayURL+"/v1/injury-notices", strings.NewReader(sig))
		req.Header.Set("Content-Type", "application/jose")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		return reused
	}

	open := client()
	if post(open, "example-a.in.json") {
		t.Fatal("the first request reused a connection")
	}
	reload(t, cmd, out) // the same configuration, read again
	if !post(open, "example-b.in.json") {
		t.Fatal("the connection opened before the reload was not reused")
	}
	if post(client(), "example-c.in.json") {
		t.Fatal("a fresh client reused a connection")
	}
}

// reload sends SIGHUP and waits until the gateway logs one more successful reload.
func reload(t *testing.T, cmd *exec.Cmd, out *gatewaytest.SyncBuffer) {
	t.Helper()
	const done = "configuration reloaded"
	before := strings.Count(out.String(), done)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	gatewaytest.Until(t, 10*time.Second, 50*time.Millisecond, func() error {
		if strings.Count(out.String(), done) == before {
			return fmt.Errorf("no reload:\n%s", out.String())
		}
		return nil
	})
}

// TestStopCutsSlowRequest: a stop while a partner is still sending a
// body waits out the grace (server.StopGrace), closes that connection,
// says so in a warning and stops cleanly: exit status 0 and "stopped",
// where it ended with "context deadline exceeded" and status 1.
func TestStopCutsSlowRequest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	l, _ := devmode.LayoutOf(dir)
	kit := l.Kit("demo-employer")
	tc, err := partnerkit.TLSConfig(l.CACert, kit.ClientCert, kit.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(d.GatewayURL, "https://"), tc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v1/injury-notices HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/jose\r\nContent-Length: 1000\r\n\r\neyJ"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the request is in the gateway, reading its body
	stop(t, cmd, out)                  // exit status 0 and "stopped"
	if !strings.Contains(out.String(), "stopping: requests still in progress after the stop's 10s grace; their connections were closed") {
		t.Fatalf("no warning of the cut request:\n%s", out)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the slow request's connection: %v, want it closed", err)
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
	good, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Config, []byte(`{"partners": [`), 0o644); err != nil {
		t.Fatal(err)
	}
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
	if err := os.WriteFile(filepath.Join(dir, "pki", "clients.crl"), crl, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := bytes.Replace(good, []byte(`"client_ca_file": "pki/ca.pem"`), []byte(`"client_ca_file": "pki/ca.pem", "crl_files": ["pki/clients.crl"]`), 1)
	if bytes.Equal(cfg, good) {
		t.Fatal("config layout changed")
	}
	if err := os.WriteFile(l.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
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
