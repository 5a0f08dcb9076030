package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCurlPartner: a partner's engineer with curl and the gateway's sign
// command, as the README's "With curl" shows it: a compact notice is
// accepted (202), the same again is a DUPLICATE (200), and a detached
// notice with X-JWS-Signature is accepted. curl is a TLS and HTTP client
// independent of the gateway's Go code.
func TestCurlPartner(t *testing.T) {
	needTool(t, "curl")
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	kit := filepath.Join(dir, "partners", "demo-employer")
	work := t.TempDir()

	curl := func(args ...string) (status int, body map[string]any) {
		t.Helper()
		base := []string{"-sS", "-o", filepath.Join(work, "body.json"), "-w", "%{http_code}",
			"--cacert", d.CACert, "--cert", filepath.Join(kit, "client.pem"), "--key", filepath.Join(kit, "client.key")}
		c := exec.Command("curl", append(base, append(args, d.GatewayURL+"/v1/injury-notices")...)...)
		code, err := c.Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		b, _ := os.ReadFile(filepath.Join(work, "body.json"))
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("curl: %s: %v", b, err)
		}
		n, err := strconv.Atoi(string(code))
		if err != nil {
			t.Fatalf("curl's status %q", code)
		}
		return n, body
	}
	signTo := func(notice, jwsFile string, extra ...string) {
		t.Helper()
		c := exec.Command(gatewayBin, append([]string{"sign", "--jwk", filepath.Join(kit, "signing.jwk.json")}, extra...)...)
		in, err := os.Open(notice)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		c.Stdin = in
		jws, err := c.Output()
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		if err := os.WriteFile(jwsFile, jws, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	compact := filepath.Join(work, "notice.jws")
	signTo(example("example-a.in.json"), compact)
	for _, want := range []struct {
		status  int
		outcome string
	}{{202, "ACCEPTED"}, {200, "DUPLICATE"}} {
		status, body := curl("-H", "Content-Type: application/jose", "--data-binary", "@"+compact)
		if status != want.status || body["status"] != want.outcome || body["receipt"] == nil {
			t.Fatalf("compact: HTTP %d %v, want %d %s", status, body, want.status, want.outcome)
		}
	}

	sig := filepath.Join(work, "notice.sig")
	signTo(example("example-b.in.json"), sig, "--detached")
	b, _ := os.ReadFile(sig)
	status, body := curl("-H", "Content-Type: application/json", "-H", "X-JWS-Signature: "+strings.TrimSpace(string(b)),
		"--data-binary", "@"+example("example-b.in.json"))
	if status != 202 || body["status"] != "ACCEPTED" {
		t.Fatalf("detached: HTTP %d %v", status, body)
	}
}
