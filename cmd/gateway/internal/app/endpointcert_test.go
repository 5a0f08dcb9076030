package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestEndpointClientCertificate: a partner whose server trusts only the
// client certificates its own CA issued gets the one it issued Perkeso
// (endpoint.client_cert_file), not the gateway's outbound certificate,
// which its server refuses; the expiry gauges watch it, and a reload that
// removes it goes back to the gateway's own.
func TestEndpointClientCertificate(t *testing.T) {
	g, l := devGateway(t)
	theirs, err := certs.NewCA("TH:SSO issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	issued, err := theirs.IssueClient("perkeso-at-th-sso")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, serverCA := filepath.Join(dir, "perkeso.pem"), filepath.Join(dir, "perkeso.key"), filepath.Join(dir, "server-ca.pem")
	if err := certs.WriteFiles(certFile, keyFile, issued.Cert, issued.Key); err != nil {
		t.Fatal(err)
	}
	var presented atomic.Value // the common name of the client certificate the endpoint last took
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		_, _ = w.Write([]byte(`{}`))
	}))
	pool := x509.NewCertPool()
	pool.AddCert(theirs.Cert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	if err := os.WriteFile(serverCA, certs.CertPEM(srv.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		endpoint map[string]any
		want     string // the common name presented; "" when the handshake is refused
	}{
		{"fail/the-gateways-own", map[string]any{"url": srv.URL, "protocol": "json", "ca_file": serverCA}, ""},
		{"ok/the-partners", map[string]any{"url": srv.URL, "protocol": "json", "ca_file": serverCA,
			"client_cert_file": certFile, "client_key_file": keyFile}, "perkeso-at-th-sso"},
		{"fail/removed-again", map[string]any{"url": srv.URL, "protocol": "json", "ca_file": serverCA}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withEndpoint(t, l.Config, "demo-employer", tc.endpoint)
			if err := g.Reload(); err != nil {
				t.Fatal(err)
			}
			p, ok := g.Config.Partners.ByID("demo-employer")
			if !ok {
				t.Fatal("demo-employer not registered")
			}
			presented.Store("")
			s, err := g.Deliverer.SenderFor(p)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = s.Send(context.Background(), &store.Delivery{Key: "k-" + tc.name, Payload: []byte(`{}`)})
			if got := presented.Load(); got != tc.want || (err == nil) != (tc.want != "") {
				t.Fatalf("presented %q (send error %v), want %q", got, err, tc.want)
			}
			watched, ok := g.watch.Load().certs["outbound-client:demo-employer"]
			if ok != (tc.want != "") || ok && !watched.Equal(issued.Cert) {
				t.Fatalf("expiry gauge of the endpoint's certificate: %v %v", ok, watched)
			}
		})
	}
}

// withEndpoint sets a partner's endpoint in the configuration file.
func withEndpoint(t *testing.T, path, partnerID string, endpoint map[string]any) {
	t.Helper()
	gatewaytest.EditConfig(t, path, path, func(f map[string]any) {
		for _, p := range f["partners"].([]any) {
			if p := p.(map[string]any); p["id"] == partnerID {
				p["endpoint"] = endpoint
			}
		}
	})
}
