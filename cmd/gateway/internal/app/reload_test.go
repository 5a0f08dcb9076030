package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestReloadRenewsIdentities: a reload (SIGHUP) takes the renewed SOAP
// signing certificate and outbound client certificate: the next SOAP
// signature carries the new token, the next outbound handshake presents the
// new client certificate, and the expiry gauges watch the new ones. A
// reload that would switch the SOAP endpoint off is refused and changes
// nothing.
func TestReloadRenewsIdentities(t *testing.T) {
	g, l := devGateway(t)
	var presented atomic.Pointer[big.Int] // the serial of the client certificate the endpoint last saw
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented.Store(r.TLS.PeerCertificates[0].SerialNumber)
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	probe := &partner.Partner{ID: "probe", Endpoint: &partner.Endpoint{URL: srv.URL, Protocol: "json", RootCAs: roots}}
	outboundSerial := func() *big.Int {
		t.Helper()
		g.Deliverer.ResetSenders()
		s, err := g.Deliverer.SenderFor(probe)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Send(context.Background(), &store.Delivery{Key: "k", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		return presented.Load()
	}
	soapToken := func() *x509.Certificate {
		t.Helper()
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body></s:Envelope>`); err != nil {
			t.Fatal(err)
		}
		if err := g.Server.SOAP.Signer.Sign(doc); err != nil {
			t.Fatal(err)
		}
		der, err := base64.StdEncoding.DecodeString(doc.FindElement("//BinarySecurityToken").Text())
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	oldOut, _ := certs.LoadCertificates(l.OutboundCert)
	oldSOAP, _ := certs.LoadCertificates(l.SOAPCert)
	if got := outboundSerial(); got.Cmp(oldOut[0].SerialNumber) != 0 {
		t.Fatalf("before: outbound handshake presented serial %v, want %v", got, oldOut[0].SerialNumber)
	}
	if !soapToken().Equal(oldSOAP[0]) {
		t.Fatal("before: the SOAP signature does not carry the configured certificate")
	}

	newOut, newSOAP := renewIdentities(t, l)
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := outboundSerial(); got.Cmp(newOut.SerialNumber) != 0 {
		t.Fatalf("after: outbound handshake presented serial %v, want the renewed %v", got, newOut.SerialNumber)
	}
	if !soapToken().Equal(newSOAP) {
		t.Fatal("after: the SOAP signature still carries the old certificate")
	}
	w := g.watch.Load()
	if !w.certs["outbound-client"].Equal(newOut) || !w.certs["soap-signing"].Equal(newSOAP) {
		t.Fatal("the expiry gauges still watch the old certificates")
	}

	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) { delete(f, "soap") })
	if err := g.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("a reload without the SOAP signing certificate: %v, want refused as needing a restart", err)
	}
	if !soapToken().Equal(newSOAP) || g.watch.Load() != w {
		t.Fatal("a refused reload changed what the gateway uses")
	}
}

// renewIdentities issues, with the dev CA, a new outbound client
// certificate and a new SOAP signing certificate in place of the old files.
func renewIdentities(t *testing.T, l devmode.Layout) (outbound, soap *x509.Certificate) {
	t.Helper()
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := ca.IssueClient("jambatan-gateway")
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(l.OutboundCert, l.OutboundKey, oc.Cert, oc.Key); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sc, err := ca.IssueSigning("MY:PERKESO", key)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(l.SOAPCert, l.SOAPKey, sc.Cert, sc.Key); err != nil {
		t.Fatal(err)
	}
	return oc.Cert, sc.Cert
}

// TestReloadRefusesAnotherSigningKey: a SOAP signing key that is not its
// certificate's (a certificate renewed, its key left behind) is refused at
// reload, with what the gateway signs left as it was; it used to be loaded,
// and every envelope signed with it failed at the receiver.
func TestReloadRefusesAnotherSigningKey(t *testing.T) {
	g, l := devGateway(t)
	sign := func() error {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body></s:Envelope>`); err != nil {
			t.Fatal(err)
		}
		if err := g.Server.SOAP.Signer.Sign(doc); err != nil {
			return err
		}
		if _, verr := (&wssec.Verifier{}).Verify(doc); verr != nil {
			return verr
		}
		return nil
	}
	if err := sign(); err != nil {
		t.Fatalf("before: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemKey, err := certs.KeyPEM(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.SOAPKey, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err == nil || !strings.Contains(err.Error(), "soap signing key") {
		t.Fatalf("Reload with a key that is not the certificate's: %v, want refused", err)
	}
	if err := sign(); err != nil {
		t.Fatalf("after the refused reload, the gateway's envelopes do not verify: %v", err)
	}
}

// TestReloadNamesRestartOnlySettings: a reload applies what it can and
// warns, by name, of each changed setting that takes a restart, and of
// nothing else: what the command set for its run, as gateway dev sets its
// embedded broker's address and its ops listener, is no change of the file
// (every SIGHUP in dev mode named kafka.brokers and ops_listen).
func TestReloadNamesRestartOnlySettings(t *testing.T) {
	asDevSets := func(cfg *config.Config) {
		cfg.File.Kafka.Brokers, cfg.File.OpsListen = []string{"127.0.0.1:40123"}, "127.0.0.1:0"
	}
	for _, tc := range []struct {
		name string
		edit func(f map[string]any)
		want []string
	}{
		{"ok/file-unchanged", func(map[string]any) {}, nil},
		{"fail/restart-only-changes", func(f map[string]any) {
			f["limits"].(map[string]any)["max_connections"] = 17
			f["instance"] = "gw-renamed"
		}, []string{"instance", "limits.max_connections"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, l := devGateway(t, asDevSets)
			var logged strings.Builder
			g.Log = slog.New(slog.NewJSONHandler(&logged, nil))
			gatewaytest.EditConfig(t, l.Config, l.Config, tc.edit)
			if err := g.Reload(); err != nil {
				t.Fatal(err)
			}
			var warned struct {
				Level    string   `json:"level"`
				Settings []string `json:"settings"`
			}
			for _, line := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
				if strings.Contains(line, "take a restart") {
					if err := json.Unmarshal([]byte(line), &warned); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !slices.Equal(warned.Settings, tc.want) || (tc.want != nil && warned.Level != "WARN") {
				t.Fatalf("want a warning naming %q; logged:\n%s", tc.want, logged.String())
			}
		})
	}
}

// TestReloadLinesShareAnID: the lines of one reload, its refusal too,
// share a correlation id of their own: not the process's, not another
// reload's.
func TestReloadLinesShareAnID(t *testing.T) {
	g, l := devGateway(t, func(cfg *config.Config) { cfg.File.Kafka.Brokers = []string{"127.0.0.1:40123"} })
	var logged strings.Builder
	h := correlation.NewHandler(slog.NewJSONHandler(&logged, nil))
	g.Log = slog.New(h)
	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) { f["instance"] = "gw-renamed" }) // a restart-only change: a second line
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Config, []byte(`{"partners": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err == nil {
		t.Fatal("a broken configuration reloaded")
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		var rec struct {
			Msg string
			ID  string `json:"correlation_id"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.ID == "" || rec.ID == h.Process() {
			t.Fatalf("a reload's line without an id of its own (%v): %s", err, line)
		}
		ids = append(ids, rec.Msg[:12]+" "+rec.ID)
	}
	// reloaded + its warning, twice, then the refusal: three ids.
	if len(ids) != 5 || ids[0][13:] != ids[1][13:] || ids[2][13:] != ids[3][13:] || ids[1][13:] == ids[2][13:] ||
		ids[4][13:] == ids[3][13:] || ids[4][:12] != "reload refus" {
		t.Fatalf("the reloads' lines and ids: %q\n%s", ids, logged.String())
	}
}

// TestReloadRenewsListenerCertificates: after a reload that renews the
// server certificate, both listeners present the new one: the partners'
// and the operators' (which presented the certificate it started with
// until a restart, and so until it expired).
func TestReloadRenewsListenerCertificates(t *testing.T) {
	g, l := devGateway(t)
	opLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.OperatorLn = opLn
	ln, _ := serve(t, g)
	op, err := tls.LoadX509KeyPair(l.OperatorCert, l.OperatorKey)
	if err != nil {
		t.Fatal(err)
	}
	partnerKit := partnerkit.KitIn(filepath.Join(l.Dir, "partners", "demo-employer"))
	employer, err := tls.LoadX509KeyPair(partnerKit.ClientCert, partnerKit.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	presented := func(addr string, client tls.Certificate) *big.Int {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{client}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	old, _ := certs.LoadCertificates(l.ServerCert)
	for name, addr := range map[string]string{"partners'": ln.Addr().String(), "operators'": opLn.Addr().String()} {
		client := map[string]tls.Certificate{"partners'": employer, "operators'": op}[name]
		if got := presented(addr, client); got.Cmp(old[0].SerialNumber) != 0 {
			t.Fatalf("before: the %s listener presented serial %v, want %v", name, got, old[0].SerialNumber)
		}
	}
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := ca.IssueServer("localhost", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(l.ServerCert, l.ServerKey, renewed.Cert, renewed.Key); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"partners'": ln.Addr().String(), "operators'": opLn.Addr().String()} {
		client := map[string]tls.Certificate{"partners'": employer, "operators'": op}[name]
		if got := presented(addr, client); got.Cmp(renewed.Cert.SerialNumber) != 0 {
			t.Errorf("after: the %s listener presented serial %v, want the renewed %v", name, got, renewed.Cert.SerialNumber)
		}
	}
}

// TestReloadChangesOperators: who may use the operator listener is
// reloaded: an operator removed from operator.allowed_cns is refused at
// once, on the connection it holds open (403) and in its next handshake,
// and one added is let in (both took a restart; a reload warned); so is an
// operator whose certificate a CRL added to operator.crl_files lists. The
// roles operator.roles gives are reloaded too.
func TestReloadChangesOperators(t *testing.T) {
	var logged gatewaytest.SyncBuffer // the listeners' goroutines write it (failed handshakes)
	g, l := devGatewayLogging(t, slog.New(slog.NewJSONHandler(&logged, nil)))
	opLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.OperatorLn = opLn
	serve(t, g)
	roots, err := certs.LoadPool(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	client := func(cert tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	}
	list := func(c *http.Client) (int, error) {
		r, err := c.Get("https://" + opLn.Addr().String() + "/v1/outbound")
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode, nil
	}
	// refused fails the test unless c's handshake fails, and the listener
	// counts it refused by the operators' check (not untrusted, nor any
	// other fault of the handshake).
	refused := func(c *http.Client, what string) {
		t.Helper()
		before := gatewaytest.HandshakeFailures(t, g.M, "operator")
		if _, err := list(c); err == nil {
			t.Fatalf("%s was let in", what)
		}
		gatewaytest.RefusedFor(t, g.M, "operator", "refused", before)
	}
	first, err := tls.LoadX509KeyPair(l.OperatorCert, l.OperatorKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca.IssueClient("ops-2")
	if err != nil {
		t.Fatal(err)
	}
	second := tls.Certificate{Certificate: [][]byte{issued.Cert.Raw}, PrivateKey: issued.Key}
	held := client(first) // its connection stays open across the reload
	if status, err := list(held); err != nil || status != 200 {
		t.Fatalf("before: %d %v", status, err)
	}
	refused(client(second), "before: ops-2 (not allowed yet)")

	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) { f["operator"].(map[string]any)["allowed_cns"] = []string{"ops-2"} })
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logged.String(), "take a restart") {
		t.Fatalf("the reload said the change takes a restart:\n%s", logged.String())
	}
	if status, err := list(held); err == nil && status != http.StatusForbidden {
		t.Fatalf("after: the removed operator's open connection answered %d, want 403", status)
	}
	refused(client(first), "after: the removed operator's new handshake")
	heldSecond := client(second)
	if status, err := list(heldSecond); err != nil || status != 200 {
		t.Fatalf("after: ops-2: %d %v", status, err)
	}

	// operator.roles, reloaded: ops-2 given only the answers may not list
	// the queue on the connection it holds, and may once given the queue.
	for _, step := range []struct {
		roles []string
		want  int
	}{{[]string{"answers"}, http.StatusForbidden}, {[]string{"queue"}, http.StatusOK}} {
		gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) {
			f["operator"].(map[string]any)["roles"] = map[string][]string{"ops-2": step.roles}
		})
		if err := g.Reload(); err != nil {
			t.Fatal(err)
		}
		if status, err := list(heldSecond); err != nil || status != step.want {
			t.Fatalf("roles %q: ops-2 listing the queue: %d %v, want %d", step.roles, status, err, step.want)
		}
	}

	// The operators' CA's CRL lists ops-2's certificate, whose name stays
	// allowed: refused on its open connection and in its next handshake.
	der, err := ca.Revoke(1, issued.Cert)
	if err != nil {
		t.Fatal(err)
	}
	crlPath := filepath.Join(l.Dir, "pki", "operators.crl")
	if err := os.WriteFile(crlPath, der, 0o600); err != nil {
		t.Fatal(err)
	}
	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) { f["operator"].(map[string]any)["crl_files"] = []string{crlPath} })
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if status, err := list(heldSecond); err == nil && status != http.StatusForbidden {
		t.Fatalf("revoked: ops-2's open connection answered %d, want 403", status)
	}
	refused(client(second), "revoked: ops-2's new handshake")
}

// TestKafkaCertificatesWatchedAsRunning: Kafka's certificates are watched
// (kafka-ca-N, kafka-client; they were not), and, since the Kafka clients
// read them once, at start, a reload keeps the ones in use in view: a
// client certificate renewed in place shows no new expiry until a restart
// takes it, so the expiry alert does not go quiet while the old one runs
// out.
func TestKafkaCertificatesWatchedAsRunning(t *testing.T) {
	var layout devmode.Layout
	g, l := devGateway(t, func(c *config.Config) {
		// In the file too, so that the reload reads it.
		layout, _ = devmode.LayoutOf(filepath.Dir(c.Path))
		gatewaytest.EditConfig(t, c.Path, c.Path, func(f map[string]any) {
			f["kafka"] = map[string]any{"tls": map[string]any{"ca_file": layout.CACert, "cert_file": layout.OutboundCert, "key_file": layout.OutboundKey}}
		})
		c.File.Kafka.TLS = &config.KafkaTLS{CAFile: layout.CACert, CertFile: layout.OutboundCert, KeyFile: layout.OutboundKey}
	})
	started, _ := certs.LoadCertificates(l.OutboundCert)
	w := g.watch.Load()
	if w.certs["kafka-ca-0"] == nil || !w.certs["kafka-client"].Equal(started[0]) {
		t.Fatalf("Kafka's certificates not watched: %v", slices.Sorted(maps.Keys(w.certs)))
	}
	renewed, _ := renewIdentities(t, l) // the outbound client's file, which Kafka's names too
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	w = g.watch.Load()
	if !w.certs["outbound-client"].Equal(renewed) {
		t.Fatal("the outbound client's renewal was not taken")
	}
	if !w.certs["kafka-client"].Equal(started[0]) {
		t.Fatal("the Kafka client's certificate shows the renewed file's, which the running client does not use")
	}
}

// TestReloadLeavesKafkaFiles: a reload does not read Kafka's TLS files,
// which the Kafka clients read once, at start: with them gone (moved by a
// renewal, say), a reload of a partner change goes through, and the
// certificates in use stay watched. Reading them, it was refused.
func TestReloadLeavesKafkaFiles(t *testing.T) {
	var kafkaFiles []string
	g, l := devGateway(t, func(c *config.Config) {
		layout, _ := devmode.LayoutOf(filepath.Dir(c.Path))
		dir := filepath.Join(filepath.Dir(c.Path), "kafka-tls")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, p := range [][2]string{{layout.CACert, "ca.pem"}, {layout.OutboundCert, "client.pem"}, {layout.OutboundKey, "client.key"}} {
			b, err := os.ReadFile(p[0])
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, p[1]), b, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			kafkaFiles = append(kafkaFiles, filepath.Join(dir, p[1]))
		}
		tlsConf := map[string]any{"ca_file": kafkaFiles[0], "cert_file": kafkaFiles[1], "key_file": kafkaFiles[2]}
		gatewaytest.EditConfig(t, c.Path, c.Path, func(f map[string]any) { f["kafka"] = map[string]any{"tls": tlsConf} })
		c.File.Kafka.TLS = &config.KafkaTLS{CAFile: kafkaFiles[0], CertFile: kafkaFiles[1], KeyFile: kafkaFiles[2]}
	})
	started := g.watch.Load().certs["kafka-client"]
	if started == nil {
		t.Fatal("Kafka's client certificate not watched")
	}
	for _, f := range kafkaFiles {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	var ps []any
	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) {
		ps = f["partners"].([]any)
		f["partners"] = ps[1:] // a partner change
	})
	if err := g.Reload(); err != nil {
		t.Fatalf("reload with Kafka's files gone: %v", err)
	}
	if n := len(g.Config.Partners.All()); n != len(ps)-1 {
		t.Fatalf("%d partners after the reload, want %d", n, len(ps)-1)
	}
	if !g.watch.Load().certs["kafka-client"].Equal(started) {
		t.Fatal("the Kafka client's certificate in use is no longer watched")
	}
}

// TestReloadRotatesBackOfficeKeys: the back office's new key, added to the
// request signers' file, is taken after a reload (earlier builds read the
// file only when they started: the reload said nothing, and the new key's
// requests went on being refused); a reload that would stop requiring the
// back office's signatures says that takes a restart, and the keys stay.
func TestReloadRotatesBackOfficeKeys(t *testing.T) {
	var logged gatewaytest.SyncBuffer // the gateway's goroutines write it
	g, l, addrs := kafkaGatewayLogging(t, slog.New(slog.NewJSONHandler(&logged, nil)), "perkeso.outbound.v1")
	next, _ := receipt.NewES256Key("perkeso-backoffice-2027-1")
	refused := func() float64 {
		v, _ := metricValue(t, g, "jambatan_verification_failures_total", outbound.VerificationKind)
		return v
	}
	waitRefused := func(n float64) {
		t.Helper()
		gatewaytest.Until(t, 20*time.Second, 50*time.Millisecond, func() error {
			if got := refused(); got != n {
				return fmt.Errorf("%v requests refused, want %v", got, n)
			}
			return nil
		})
	}
	writeSignedRequest(t, g, next, addrs[0], 0, "before-reload")
	waitRefused(1)

	set, err := partnerkit.ReadJWKS(l.BackOfficeJWKS)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.PublicKeyOf(next)
	_ = set.AddKey(pub)
	b, _ := json.Marshal(set)
	if err := os.WriteFile(l.BackOfficeJWKS, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	writeSignedRequest(t, g, next, addrs[0], 0, "after-reload")
	writeRequest(t, g, l, addrs[0], 0, "old-key-still")
	waitDeliveries(t, g, 20*time.Second, "old-key-still", "after-reload")

	// Requiring signatures no more takes a restart.
	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) { delete(f["outbound"].(map[string]any), "request_signers_file") })
	before := len(logged.String())
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String()[before:], "outbound.request_signers_file was added or removed") {
		t.Fatalf("no word that the change takes a restart:\n%s", logged.String())
	}
	writeSignedRequest(t, g, next, addrs[0], 0, "after-removal") // still checked: taken
	conn, err := kafka.DialLeader(context.Background(), "tcp", addrs[0], "perkeso.outbound.v1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteMessages(kafka.Message{Value: []byte(`{"id":"unsigned","partner":"demo-agency","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{}}`)}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitRefused(2) // the unsigned one
	waitDeliveries(t, g, 20*time.Second, "after-removal", "old-key-still", "after-reload")
}

// TestReloadRevokesOpenConnections: a CRL a reload brings refuses the
// revoked partner on the connection it already holds, not only in its next
// handshake: the gateway checks each request against the listener's
// current CRLs.
func TestReloadRevokesOpenConnections(t *testing.T) {
	g, l := devGateway(t)
	c := employerClient(t, g, l)
	kit := l.Kit("demo-employer")
	get := func() (*partnerkit.Response, error) {
		return c.Raw("GET", "/v1/injury-notices/00000000-0000-5000-8000-000000000000", nil, nil)
	}
	if r, err := get(); err != nil || r.Status != 404 {
		t.Fatalf("before the revocation: %v %v", r, err)
	}
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := certs.LoadCertificates(kit.ClientCert)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.Revoke(1, leaf[0])
	if err != nil {
		t.Fatal(err)
	}
	useCRL(t, l, der)
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	r, err := get() // on the connection opened before the reload
	if err != nil {
		t.Fatalf("after the revocation: %v; want 403 on the open connection", err)
	}
	if r.Status != 403 || !strings.Contains(string(r.Body), "client certificate revoked") {
		t.Fatalf("after the revocation: %d %s; want 403 on the open connection", r.Status, r.Body)
	}
}
