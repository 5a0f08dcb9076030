package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// TestIntermediateCA: partners whose certificates a partner CA issues
// through an intermediate, with the root alone in the client CA bundle (the
// client sends the intermediate) or the intermediate in it too. The root's
// CRL listing the intermediate refuses the certificates it issued, in the
// handshake and on a connection already open; the intermediate's CRL
// refuses the client certificate it lists; a sibling goes on.
func TestIntermediateCA(t *testing.T) {
	root, inter, err := certs.NewCAChain("partner root", "partner issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := inter.IssueClient("acme")
	other, _ := inter.IssueClient("other")
	reg := partner.NewRegistry([]*partner.Partner{{ID: "acme", Identity: partner.Identity{SubjectCN: "acme"}},
		{ID: "other", Identity: partner.Identity{SubjectCN: "other"}}})
	serverCA, _ := certs.NewCA("gateway")
	issued, _ := serverCA.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	serverCert := tls.Certificate{Certificate: [][]byte{issued.Cert.Raw}, PrivateKey: issued.Key}
	bundle := func(cas ...*certs.CA) (out []*x509.Certificate) {
		for _, c := range cas {
			out = append(out, c.Cert)
		}
		return out
	}
	crlOf := func(issuer *certs.CA, revoked *x509.Certificate) *x509.RevocationList {
		crl, err := issuer.RevocationList(1, revoked)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	h := NewTLS(serverCert, bundle(root), nil, reg)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.CheckConnection(r.TLS, time.Now()); err != nil {
			w.Header().Set("Connection", "close")
			http.Error(w, err.Error(), http.StatusForbidden)
		}
	}))
	srv.TLS = h.Config()
	srv.StartTLS()
	defer srv.Close()
	client := func(leaf *certs.Issued) *http.Client {
		roots := x509.NewCertPool()
		roots.AddCert(serverCA.Cert)
		cert := tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw, inter.Cert.Raw}, PrivateKey: leaf.Key}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(roots, cert)}}
	}
	get := func(c *http.Client) (status int, reused bool, err error) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		r, err := c.Do(req)
		if err != nil {
			return 0, reused, err
		}
		r.Body.Close()
		return r.StatusCode, reused, nil
	}
	ca, co := client(acme), client(other)
	for _, tc := range []struct {
		name   string
		roots  []*x509.Certificate
		crls   []*x509.RevocationList
		c      *http.Client
		status int  // 0: the handshake fails
		reused bool // on the connection the case before opened
	}{
		{"ok/root-in-bundle", bundle(root), nil, ca, http.StatusOK, false},
		{"ok/intermediate-in-bundle", bundle(inter), nil, ca, http.StatusOK, true},
		{"ok/root-crl-lists-another", bundle(root), []*x509.RevocationList{crlOf(root, acme.Cert)}, co, http.StatusOK, false},
		{"fail/root-crl-lists-intermediate-open-connection", bundle(root), []*x509.RevocationList{crlOf(root, inter.Cert)}, ca, http.StatusForbidden, true},
		{"fail/root-crl-lists-intermediate-handshake", bundle(root), []*x509.RevocationList{crlOf(root, inter.Cert)}, ca, 0, false},
		{"ok/intermediate-crl-lists-another", bundle(root, inter), []*x509.RevocationList{crlOf(inter, acme.Cert)}, co, http.StatusOK, true},
		{"fail/intermediate-crl-lists-client-handshake", bundle(root, inter), []*x509.RevocationList{crlOf(inter, acme.Cert)}, ca, 0, false},
		// A connection made under the issuing CA alone (its chain ends
		// there) goes on once the bundle holds only the root, as a new
		// handshake would; and is refused once the root's CRL lists the
		// issuing CA.
		{"ok/handshake-under-intermediate", bundle(inter), nil, ca, http.StatusOK, false},
		{"ok/intermediate-replaced-by-root-open-connection", bundle(root), nil, ca, http.StatusOK, true},
		{"fail/then-root-crl-lists-intermediate-open-connection", bundle(root), []*x509.RevocationList{crlOf(root, inter.Cert)}, ca, http.StatusForbidden, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.Set(serverCert, tc.roots, tc.crls)
			status, reused, err := get(tc.c)
			if (tc.status == 0) != (err != nil) || status != tc.status || tc.reused && !reused {
				t.Fatalf("HTTP %d (connection reused %v), %v; want %d (reused %v)", status, reused, err, tc.status, tc.reused)
			}
		})
	}
}
