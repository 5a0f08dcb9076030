package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurlPartner runs the README's "With curl" lines as they are written
// there, against "gateway dev": the gateway's sign command and curl, a TLS
// and HTTP client independent of the gateway's Go code. The first run's
// two notices (compact, detached) are accepted; the same lines again get
// two DUPLICATEs.
func TestCurlPartner(t *testing.T) {
	needTool(t, "curl")
	run, _ := readmeLines(t, "**With curl**")
	for _, want := range []string{"ACCEPTED", "DUPLICATE"} {
		b, err := run()
		if n := strings.Count(string(b), `"status":"`+want+`"`); err != nil || n != 2 {
			t.Fatalf("the README's lines: %v; %d answers %s, want 2\n%s", err, n, want, b)
		}
	}
}

// TestProductionRecipe runs the README's recipe from nothing to a
// production gateway taking its first partner's notice, as written there:
// OpenSSL makes the CA and the server certificate, certs kit the
// partner's kit, rotate-receipt-key the first receipt key, then serve
// --check, serve, and the partner's submit. Only the port changes (a free
// one), and the pause for serve to listen becomes a wait for its port.
func TestProductionRecipe(t *testing.T) {
	needTool(t, "openssl")
	script := readmeBlock(t, "From nothing to a gateway")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	script = strings.ReplaceAll(script, "127.0.0.1:8443", addr)
	if !strings.Contains(script, "\nsleep 1\n") {
		t.Fatal("the recipe no longer pauses for serve: the test's wait replaces that pause")
	}
	script = strings.Replace(script, "\nsleep 1\n", "\nfor i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"+port+") 2>/dev/null && break; sleep 0.1; done\n", 1)
	work, bin := t.TempDir(), t.TempDir()
	adapters, _ := filepath.Abs(filepath.Join("..", "..", "adapters"))
	if err := os.Symlink(adapters, filepath.Join(work, "adapters")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gatewayBin, filepath.Join(bin, "gateway")); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("bash", "-e", "-c", "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n"+script)
	sh.Dir = work
	sh.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stderr strings.Builder
	sh.Stderr = &stderr
	out, err := sh.Output()
	if err != nil || !strings.Contains(string(out), `"status":"ACCEPTED"`) || !strings.Contains(stderr.String(), "receipt verified") ||
		!strings.Contains(string(out), "first receipt key") || !strings.Contains(string(out), "configuration OK") {
		t.Fatalf("the recipe: %v\n%s\n%s", err, out, stderr.String())
	}
}

// readmeLines starts "gateway dev" and returns a run of the README's sh
// block after marker against it, in a directory (work) where the lines
// find .gateway-dev and adapters as from the repository's root. Only the
// gateway's address and how its binary is run are changed. run returns
// the lines' stdout; their stderr goes to the test's log on failure.
func readmeLines(t *testing.T, marker string) (run func() ([]byte, error), work string) {
	t.Helper()
	script := readmeBlock(t, marker)
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	t.Cleanup(func() { stop(t, cmd, out) })
	work = t.TempDir()
	adapters, _ := filepath.Abs(filepath.Join("..", "..", "adapters"))
	for link, target := range map[string]string{".gateway-dev": dir, "adapters": adapters} {
		if err := os.Symlink(target, filepath.Join(work, link)); err != nil {
			t.Fatal(err)
		}
	}
	script = strings.ReplaceAll(script, "https://127.0.0.1:8443", d.GatewayURL)
	script = strings.ReplaceAll(script, "go run ./cmd/gateway", gatewayBin)
	return func() ([]byte, error) {
		sh := exec.Command("bash", "-e", "-c", script)
		sh.Dir = work
		var stderr strings.Builder
		sh.Stderr = &stderr
		b, err := sh.Output()
		if err != nil {
			t.Logf("the README's lines: %s", stderr.String())
		}
		return b, err
	}, work
}

// TestXmlsecCurlAgency runs the README's "With xmlsec1 and curl" lines as
// they are written there, against "gateway dev": xmlsec1 signs the
// specification's example 10.1, curl sends it over mutual TLS, and xmlsec1
// verifies Perkeso's signed acknowledgement.
func TestXmlsecCurlAgency(t *testing.T) {
	needTool(t, "xmlsec1")
	needTool(t, "curl")
	run, work := readmeLines(t, "**With xmlsec1 and curl**")
	if b, err := run(); err != nil {
		t.Fatalf("the README's lines: %v\n%s", err, b)
	}
	resp, err := os.ReadFile(filepath.Join(work, "response.xml"))
	if err != nil || !strings.Contains(string(resp), "InjuryAcknowledgement") || !strings.Contains(string(resp), "<CaseId>MY:PERKESO:XB-") {
		t.Fatalf("response: %v\n%s", err, resp)
	}
}

// readmeBlock returns the first ```sh block after the line of the README
// that begins with marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+marker)
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("README has no sh block after %q", marker)
	}
	return s[start+6 : start+6+end]
}
