package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/operator"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
)

// TestOpenSSLAgreesOnTLSPolicy: OpenSSL's client (s_client), offering one
// protocol version or one cipher suite at a time with a client certificate,
// completes a handshake with each of the gateway's mutual-TLS listeners
// (partners' and operators') exactly as the README's policy says: TLS 1.3
// with each of its suites; TLS 1.2 only with ECDHE key exchange and an
// AEAD cipher (certs.Suites) fitting the server's key, ECDSA or RSA;
// never TLS 1.0 or 1.1. OpenSSL offers every TLS 1.2 suite it knows, the
// weak ones too (security level 0).
func TestOpenSSLAgreesOnTLSPolicy(t *testing.T) {
	openssl := need(t, "openssl")
	dir := t.TempDir()
	ca, err := certs.NewCA("policy test root")
	must(t, err)
	client, err := ca.IssueClient("ops-1")
	must(t, err)
	clientCert, clientKey := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	must(t, certs.WriteFiles(clientCert, clientKey, client.Cert, client.Key))
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)

	ecdsaServer, err := ca.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	must(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	rsaServer, err := ca.IssueSigning("localhost", rsaKey) // s_client does not check the server's usage
	must(t, err)

	suites := openSSLSuites(t, openssl)

	// handshake reports whether s_client completes a handshake with addr
	// offering only what args name, and the suite it agreed.
	handshake := func(addr string, args ...string) (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", addr, "-brief", "-cert", clientCert, "-key", clientKey}, args...)...)
		out, err := cmd.CombinedOutput()
		_, suite, found := strings.Cut(string(out), "Ciphersuite: ")
		suite, _, _ = strings.Cut(suite, "\n")
		return err == nil && found, strings.TrimSpace(suite)
	}

	listeners := map[string]func(tls.Certificate) *tls.Config{
		"partner": func(c tls.Certificate) *tls.Config {
			reg := partner.NewRegistry([]*partner.Partner{{ID: "ops-1", Identity: partner.Identity{SubjectCN: "ops-1"}}})
			return server.NewTLS(c, []*x509.Certificate{ca.Cert}, nil, reg).Config()
		},
		"operator": func(c tls.Certificate) *tls.Config {
			return operator.TLSConfig(func() *tls.Certificate { return &c }, operator.NewAccess(clientCAs, []string{"ops-1"}, nil, nil))
		},
	}
	for name, config := range listeners {
		for keyType, issued := range map[string]*certs.Issued{"ECDSA": ecdsaServer, "RSA": rsaServer} {
			t.Run(name+"/"+keyType, func(t *testing.T) {
				t.Parallel()
				hs := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
				hs.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
				hs.TLS = config(tls.Certificate{Certificate: [][]byte{issued.Cert.Raw}, PrivateKey: issued.Key})
				hs.StartTLS()
				defer hs.Close()
				addr := hs.Listener.Addr().String()

				got := checkTLS12Policy(t, suites, keyType, func(name string) (bool, string) {
					return handshake(addr, "-tls1_2", "-cipher", name+":@SECLEVEL=0")
				})
				for _, s := range []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
					if ok, agreed := handshake(addr, "-tls1_3", "-ciphersuites", s); !ok || agreed != s {
						t.Errorf("TLS 1.3 with %s: handshake %v, agreed %q", s, ok, agreed)
					}
				}
				for _, v := range []string{"-tls1", "-tls1_1"} {
					if ok, agreed := handshake(addr, v, "-cipher", "ALL:@SECLEVEL=0"); ok {
						t.Errorf("%s accepted (%s)", v, agreed)
					}
				}
				t.Logf("%d TLS 1.2 suites offered one at a time: %d agreed %v", len(suites), len(got), got)
			})
		}
	}
}

// TestOpenSSLAgreesOnClientTLSPolicy: the gateway's clients (outbound
// delivery, the SOAP client, Kafka, the partner tools: all certs.ClientConfig)
// hold OpenSSL's server (s_server) to the same policy as its listeners. A
// server offering one TLS 1.2 suite at a time, of every suite OpenSSL knows,
// completes a handshake exactly when the suite is one of certs.Suites
// fitting the server's key, ECDSA or RSA; a server offering only TLS 1.0 or
// 1.1 is refused, and TLS 1.3 agreed.
func TestOpenSSLAgreesOnClientTLSPolicy(t *testing.T) {
	openssl := need(t, "openssl")
	dir := t.TempDir()
	suites := openSSLSuites(t, openssl)
	for keyType, newkey := range map[string][]string{"ECDSA": {"ec", "-pkeyopt", "ec_paramgen_curve:P-256"}, "RSA": {"rsa:2048"}} {
		t.Run(keyType, func(t *testing.T) {
			t.Parallel()
			cert, key := filepath.Join(dir, keyType+".pem"), filepath.Join(dir, keyType+".key")
			args := append(append([]string{"req", "-x509", "-nodes", "-newkey"}, newkey...), "-keyout", key, "-out", cert,
				"-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1")
			if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl req: %v\n%s", err, out)
			}
			pemBytes, err := os.ReadFile(cert)
			must(t, err)
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(pemBytes)

			// handshake reports whether certs.ClientConfig completes a
			// handshake with an s_server offering only what args name,
			// and the suite agreed.
			handshake := func(args ...string) (bool, string) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, openssl, append([]string{"s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key,
					"-naccept", "1", "-www"}, args...)...)
				stdout, err := cmd.StdoutPipe()
				must(t, err)
				must(t, cmd.Start())
				defer cmd.Wait()
				defer cmd.Process.Kill()
				sc := bufio.NewScanner(stdout)
				var addr string
				for addr == "" && sc.Scan() {
					if a, ok := strings.CutPrefix(sc.Text(), "ACCEPT "); ok {
						addr = a
					}
				}
				if addr == "" {
					t.Fatalf("s_server %v did not say where it listens", args)
				}
				go io.Copy(io.Discard, stdout)
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, certs.ClientConfig(roots))
				if err != nil {
					return false, ""
				}
				defer c.Close()
				return true, tls.CipherSuiteName(c.ConnectionState().CipherSuite)
			}

			got := checkTLS12Policy(t, suites, keyType, func(name string) (bool, string) {
				return handshake("-tls1_2", "-cipher", name+":@SECLEVEL=0")
			})
			if ok, agreed := handshake("-tls1_3"); !ok || !strings.HasPrefix(agreed, "TLS_") {
				t.Errorf("TLS 1.3: handshake %v, agreed %q", ok, agreed)
			}
			for _, v := range []string{"-tls1", "-tls1_1"} {
				if ok, agreed := handshake(v, "-cipher", "ALL:@SECLEVEL=0"); ok {
					t.Errorf("%s agreed (%s)", v, agreed)
				}
			}
			t.Logf("%d TLS 1.2 suites offered one at a time: %d agreed %v", len(suites), len(got), got)
		})
	}
}

// openSSLSuites are the TLS 1.2 suites OpenSSL knows, the weak ones too
// (security level 0): IANA name -> OpenSSL's name.
func openSSLSuites(t *testing.T, openssl string) map[string]string {
	out, err := exec.Command(openssl, "ciphers", "-stdname", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0").Output()
	must(t, err)
	suites := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "-" && f[3] != "TLSv1.3" {
			suites[f[0]] = f[2]
		}
	}
	if len(suites) < 40 {
		t.Fatalf("OpenSSL knows %d TLS 1.2 suites: not what this test expects\n%s", len(suites), out)
	}
	return suites
}

// checkTLS12Policy offers each of suites alone (offer takes OpenSSL's name
// and reports whether a handshake completed, and the suite agreed by either
// name) and checks that exactly the certs.Suites for keyType (ECDSA or RSA)
// were agreed. It returns those agreed.
func checkTLS12Policy(t *testing.T, suites map[string]string, keyType string, offer func(name string) (bool, string)) []string {
	var want, got []string
	for _, id := range certs.Suites() {
		if n := tls.CipherSuiteName(id); strings.Contains(n, "_"+keyType+"_") {
			want = append(want, n)
		}
	}
	for iana, name := range suites {
		if ok, agreed := offer(name); ok {
			if agreed != iana && agreed != name {
				t.Errorf("offered %s alone, agreed %s", iana, agreed)
			}
			got = append(got, iana)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("TLS 1.2 suites agreed: %v, want %v", got, want)
	}
	return got
}
