package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestEndpointServerRevoked: a partner endpoint's server certificate that a
// CRL of endpoint.crl_files revokes, itself or a CA between it and the CAs
// of endpoint.ca_file, is refused in the handshake and nothing is sent to
// it. A reload applies a CRL, and the CRLs and the endpoint's CAs are
// watched. Until this build a partner endpoint's server certificate had
// no CRL: a revoked one, its key in other hands, received what Perkeso sent.
func TestEndpointServerRevoked(t *testing.T) {
	g, l := devGateway(t)
	root, issuing, err := certs.NewCAChain("TH:SSO root CA", "TH:SSO server CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := issuing.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	sibling, err := issuing.IssueServer("another", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var received atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{server.Cert.Raw, issuing.Cert.Raw}, PrivateKey: server.Key}}}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	crl := func(name string, by *certs.CA, revoked ...*x509.Certificate) string {
		der, err := by.Revoke(1, revoked...)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, der)
	}
	rootOnly := write("root.pem", certs.CertPEM(root.Cert))
	both := write("both.pem", append(certs.CertPEM(root.Cert), certs.CertPEM(issuing.Cert)...))
	for _, tc := range []struct {
		name   string
		caFile string
		crls   []string
		ok     bool
	}{
		{"ok/no-crl", both, nil, true},
		{"fail/server-revoked", both, []string{crl("server.crl", issuing, server.Cert)}, false},
		{"ok/sibling-revoked", both, []string{crl("sibling.crl", issuing, sibling.Cert)}, true},
		{"fail/issuing-ca-revoked-by-the-root", rootOnly, []string{crl("issuing.crl", root, issuing.Cert)}, false},
		{"ok/root-crl-lists-nothing-of-it", rootOnly, []string{crl("empty.crl", root)}, true},
		{"ok/crls-removed", both, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withEndpoint(t, l.Config, "demo-employer", map[string]any{"url": srv.URL, "protocol": "json", "ca_file": tc.caFile, "crl_files": tc.crls})
			if err := g.Reload(); err != nil {
				t.Fatal(err)
			}
			p, ok := g.Config.Partners.ByID("demo-employer")
			if !ok {
				t.Fatal("demo-employer not registered")
			}
			s, err := g.Deliverer.SenderFor(p)
			if err != nil {
				t.Fatal(err)
			}
			before := received.Load()
			_, _, err = s.Send(context.Background(), &store.Delivery{Key: "k-" + tc.name, Payload: []byte(`{}`)})
			sent := received.Load() > before
			if tc.ok != (err == nil) || sent != tc.ok {
				t.Fatalf("send: %v (received: %v), want ok=%v", err, sent, tc.ok)
			}
			if !tc.ok && !strings.Contains(err.Error(), certs.ErrServerRevoked.Error()) {
				t.Fatalf("send: %v, want the server refused as revoked", err)
			}
			w := g.watch.Load()
			for i, path := range tc.crls {
				name := EndpointCRLPrefix("demo-employer") + CRLName(tc.crls, i)
				if c, ok := w.crls[name]; !ok || c.path != path {
					t.Errorf("CRL %s not watched: %v", name, w.crls)
				}
			}
			if c, ok := w.certs["endpoint-ca:demo-employer:0"]; !ok || !bytes.Equal(c.Raw, root.Cert.Raw) {
				t.Errorf("the endpoint's CA not watched")
			}
		})
	}
}

// TestPartnerMaterialLeavesReady: an agency's signing CRL and a partner
// endpoint's CRL past their next update, and an endpoint CA expired, are
// reported by /readyz with the partner they concern, and the gateway stays
// ready: they concern that partner's messages alone, which fail on their
// own, and a readiness probe failing on every instance for them took the
// intake away from every partner. The gateway's own material still fails
// it (TestReadyCRL).
func TestPartnerMaterialLeavesReady(t *testing.T) {
	g, l := devGateway(t)
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.crl")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-48 * time.Hour),
		NextUpdate: time.Now().Add(-time.Hour)}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	expired := filepath.Join(dir, "expired-ca.pem")
	old := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "expired agency server CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	oldDER, err := x509.CreateCertificate(rand.Reader, old, old, ca.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.WriteFile(stale, der, 0o644), os.WriteFile(expired, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldDER}), 0o644)); err != nil {
		t.Fatal(err)
	}
	withEndpoint(t, l.Config, "demo-agency", map[string]any{"url": "https://agency.example/exchange", "protocol": "soap", "ca_file": l.CACert, "crl_files": []string{stale}})
	withEndpoint(t, l.Config, "demo-insurer", map[string]any{"url": "https://insurer.example/in", "protocol": "json", "ca_file": expired})
	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) {
		for _, p := range f["partners"].([]any) {
			if p := p.(map[string]any); p["id"] == "demo-agency" {
				p["signing_crl_files"] = []string{stale}
			}
		}
	})
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	checks, ready := g.Ready(context.Background())
	for name, partner := range map[string]string{"crl:signing:demo-agency:stale.crl": "demo-agency", "crl:endpoint:demo-agency:stale.crl": "demo-agency",
		"certificate:endpoint-ca:demo-insurer:0": "demo-insurer"} {
		if c, ok := checks[name]; !ok || c.OK || c.Partner != partner {
			t.Errorf("%s: %+v (present %v), want a failed check of %s", name, c, ok, partner)
		}
	}
	if !ready {
		t.Fatalf("a partner's stale CRL or expired CA made the gateway unready: %+v", checks)
	}
	if c := checks["certificate:server"]; !c.OK || c.Partner != "" {
		t.Fatalf("the gateway's own certificate: %+v", c)
	}
}
