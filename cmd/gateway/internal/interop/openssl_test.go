package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
)

// opensslCA is the configuration of `openssl ca` for a partner's CA: its
// database, serials and CRL numbers in dir, client certificates under
// [client], and CRLs with the extensions a CA of record writes.
const opensslCA = `[ca]
default_ca = partner_ca
[partner_ca]
dir = %s
database = $dir/index.txt
new_certs_dir = $dir
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 30
default_crl_days = 7
policy = any
unique_subject = no
[any]
commonName = supplied
organizationName = optional
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[crl]
authorityKeyIdentifier = keyid:always
`

// TestOpenSSLRevocation: a partner CA run with `openssl ca` issues client
// certificates, revokes some (each revocation reason openssl writes) and
// publishes a CRL. For every certificate the gateway's handshake, with that
// CA and CRL loaded as a configuration names them, agrees with `openssl
// verify -crl_check`.
func TestOpenSSLRevocation(t *testing.T) {
	openssl := need(t, "openssl")
	dir := t.TempDir()
	run := opensslRun(t, openssl)
	file := func(name string) string { return filepath.Join(dir, name) }
	cnf := file("ca.cnf")
	must(t, os.WriteFile(cnf, fmt.Appendf(nil, opensslCA, dir), 0o600))
	must(t, os.WriteFile(file("index.txt"), nil, 0o600))
	must(t, os.WriteFile(file("serial"), []byte("80F0\n"), 0o600)) // high bit set: DER adds a zero byte
	must(t, os.WriteFile(file("crlnumber"), []byte("1000\n"), 0o600))
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	run(append(append([]string{"req", "-x509"}, ec...), "-keyout", file("ca.key"), "-out", file("ca.pem"), "-days", "30",
		"-subj", "/O=Kilang Contoh Sdn Bhd/CN=Partner Root", "-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign")...)

	// Each certificate, and the reason it is revoked ("" for not revoked).
	cases := []struct{ name, reason string }{
		{"ok/issued", ""},
		{"fail/key-compromise", "keyCompromise"},
		{"ok/issued-2", ""},
		{"fail/superseded", "superseded"},
		{"fail/no-reason", "unspecified"},
		{"fail/on-hold", "certificateHold"},
		{"fail/ca-compromise", "CACompromise"},
	}
	for i, tc := range cases {
		cert := file(fmt.Sprintf("c%d.pem", i))
		run(append(append([]string{"req", "-new"}, ec...), "-keyout", file(fmt.Sprintf("c%d.key", i)), "-out", file("req.pem"),
			"-subj", "/O=Kilang Contoh Sdn Bhd/CN=kilang-contoh")...)
		run("ca", "-batch", "-config", cnf, "-extensions", "client", "-in", file("req.pem"), "-out", cert)
		if tc.reason != "" {
			args := []string{"ca", "-batch", "-config", cnf, "-revoke", cert, "-crl_reason", tc.reason}
			if tc.reason == "certificateHold" {
				args = append(args, "-crl_hold", "1.2.840.10040.2.2") // holdInstructionCallIssuer
			}
			run(args...)
		}
	}
	run("ca", "-batch", "-config", cnf, "-gencrl", "-crlexts", "crl", "-out", file("crl.pem"))

	// The gateway's side: the CA and CRL read as the configuration reads
	// them, and its handshake check on a real TLS listener.
	cas, err := certs.LoadCertificates(file("ca.pem"))
	must(t, err)
	crl, err := certs.LoadCRL(file("crl.pem"), cas)
	must(t, err)
	serverCA, err := certs.NewCA("gateway test root")
	must(t, err)
	srv, err := serverCA.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	must(t, err)
	reg := partner.NewRegistry([]*partner.Partner{{ID: "kilang-contoh", Identity: partner.Identity{SubjectCN: "kilang-contoh"}}})
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	hs.TLS = server.NewTLS(tls.Certificate{Certificate: [][]byte{srv.Cert.Raw}, PrivateKey: srv.Key}, cas[:1],
		[]*x509.RevocationList{crl}, reg).Config()
	var handshakes gatewaytest.SyncBuffer // the server's word on each refused handshake
	hs.Config.ErrorLog = log.New(&handshakes, "", 0)
	hs.StartTLS()
	defer hs.Close()
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)

	refused := 0
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := file(fmt.Sprintf("c%d.pem", i))
			verify := exec.Command(openssl, "verify", "-crl_check", "-CAfile", file("ca.pem"), "-CRLfile", file("crl.pem"), cert)
			out, err := verify.CombinedOutput()
			opensslOK := err == nil

			pair, err := tls.LoadX509KeyPair(cert, file(fmt.Sprintf("c%d.key", i)))
			must(t, err)
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}}
			resp, err := c.Get(hs.URL)
			gatewayOK := err == nil
			if gatewayOK {
				resp.Body.Close()
			} else {
				refused++
			}
			if gatewayOK != opensslOK || gatewayOK != strings.HasPrefix(tc.name, "ok/") {
				t.Errorf("gateway accepts: %v (%v); openssl verify: %v (%s)", gatewayOK, err, opensslOK, strings.TrimSpace(string(out)))
			}
			// OpenSSL refuses it as revoked, not for some other fault.
			if !opensslOK && !strings.Contains(string(out), "certificate revoked") {
				t.Errorf("openssl verify refused it for another reason: %s", out)
			}
		})
	}
	if want := 5; refused != want {
		t.Errorf("the gateway refused %d certificates, want %d", refused, want)
	}
	// Each for its revocation, not for another fault of the handshake (the
	// server logs it as the client hears of it, or just after).
	gatewaytest.Until(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := strings.Count(handshakes.String(), "client certificate revoked"); n != 5 {
			return fmt.Errorf("the gateway refused %d handshakes for a revocation, want 5:\n%s", n, handshakes.String())
		}
		return nil
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// opensslRun returns a function that runs openssl with args and returns its
// output, failing t with that output when it fails.
func opensslRun(t *testing.T, openssl string) func(args ...string) []byte {
	return func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
}

// TestOpenSSLVerifiesIssuedCertificates: the certificates the gateway's CA
// code issues (dev mode's PKI, `gateway certs kit`) pass `openssl verify
// -x509_strict` for their purpose, and only for it: a partner's client
// certificate for TLS clients, the server's for TLS servers with its name
// and address, a WS-Security signing certificate with RSA or ECDSA keys.
func TestOpenSSLVerifiesIssuedCertificates(t *testing.T) {
	openssl := need(t, "openssl")
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	ca, err := certs.NewCA("Jambatan test root CA")
	must(t, err)
	must(t, os.WriteFile(file("ca.pem"), certs.CertPEM(ca.Cert), 0o644))
	client, err := ca.IssueClient("kilang-contoh")
	must(t, err)
	server, err := ca.IssueServer("localhost", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	must(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	rsaSigning, err := ca.IssueSigning("MY:PERKESO", rsaKey)
	must(t, err)
	ecSigning, err := ca.IssueSigning("TH:SSO", nil)
	must(t, err)
	for name, c := range map[string]*certs.Issued{"client": client, "server": server, "rsa-signing": rsaSigning, "ec-signing": ecSigning} {
		must(t, os.WriteFile(file(name+".pem"), certs.CertPEM(c.Cert), 0o644))
	}
	// A partner's own key: OpenSSL makes it and its request (with a subject
	// of its own choosing), the CA issues the client certificate for it, and
	// its key matches the certificate's.
	run := opensslRun(t, openssl)
	run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file("own.key"),
		"-subj", "/CN=whatever-they-typed/O=Kilang Contoh", "-out", file("own.csr"))
	csr, err := os.ReadFile(file("own.csr"))
	must(t, err)
	fromCSR, err := ca.IssueFromCSR("kilang-contoh", csr, x509.ExtKeyUsageClientAuth)
	must(t, err)
	must(t, os.WriteFile(file("from-csr.pem"), certs.CertPEM(fromCSR), 0o644))
	if a, b := run("x509", "-in", file("from-csr.pem"), "-noout", "-pubkey"), run("pkey", "-in", file("own.key"), "-pubout"); !bytes.Equal(a, b) {
		t.Fatalf("the certificate from the request holds another key:\n%s\n%s", a, b)
	}
	const purpose, hostname = "error 26 at 0 depth", "error 62 at 0 depth" // OpenSSL's refusals by number: X509_V_ERR_INVALID_PURPOSE, X509_V_ERR_HOSTNAME_MISMATCH
	for _, tc := range []struct {
		name, cert string
		args       []string
		refusal    string // "" for ok
	}{
		{"ok/ca-itself", "ca.pem", []string{"-purpose", "any"}, ""},
		{"ok/client-for-tls-clients", "client.pem", []string{"-purpose", "sslclient"}, ""},
		{"ok/client-from-csr-for-tls-clients", "from-csr.pem", []string{"-purpose", "sslclient"}, ""},
		{"fail/client-from-csr-for-tls-servers", "from-csr.pem", []string{"-purpose", "sslserver"}, purpose},
		{"fail/client-for-tls-servers", "client.pem", []string{"-purpose", "sslserver"}, purpose},
		{"ok/server-for-tls-servers", "server.pem", []string{"-purpose", "sslserver", "-verify_hostname", "localhost"}, ""},
		{"ok/server-by-address", "server.pem", []string{"-purpose", "sslserver", "-verify_ip", "127.0.0.1"}, ""},
		{"fail/server-for-another-name", "server.pem", []string{"-purpose", "sslserver", "-verify_hostname", "gateway.example"}, hostname},
		{"fail/server-for-tls-clients", "server.pem", []string{"-purpose", "sslclient"}, purpose},
		{"ok/rsa-signing", "rsa-signing.pem", []string{"-purpose", "any"}, ""},
		{"ok/ec-signing", "ec-signing.pem", []string{"-purpose", "any"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"verify", "-x509_strict", "-CAfile", file("ca.pem")}, tc.args...), file(tc.cert))
			out, err := exec.Command(openssl, args...).CombinedOutput()
			if (err == nil) != (tc.refusal == "") || !strings.Contains(string(out), tc.refusal) {
				t.Fatalf("openssl %s: %v, want refusal %q\n%s", strings.Join(args, " "), err, tc.refusal, out)
			}
		})
	}
}
