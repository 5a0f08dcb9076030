package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// tier is a certificate with its key, in a three-level PKI.
type tier struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var tierSerial int64

// issueTier issues a certificate for cn, signed by parent (nil: self-signed),
// a CA when ca is set, else a TLS client certificate.
func issueTier(t *testing.T, cn string, parent *tier, ca bool) *tier {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tierSerial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(tierSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	if ca {
		tmpl.IsCA, tmpl.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tier{c, key}
}

// crlOf is a CRL by issuer listing revoked.
func crlOf(t *testing.T, issuer *tier, revoked ...*x509.Certificate) *x509.RevocationList {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(),
		NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, issuer.cert, issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// TestIntermediateCA: partners whose certificates a partner CA issues
// through an intermediate, with the root alone in the client CA bundle (the
// client sends the intermediate) or the intermediate in it too. The root's
// CRL listing the intermediate refuses the certificates it issued, in the
// handshake and on a connection already open; the intermediate's CRL
// refuses the client certificate it lists; a sibling goes on.
func TestIntermediateCA(t *testing.T) {
	root := issueTier(t, "partner root", nil, true)
	inter := issueTier(t, "partner issuing CA", root, true)
	acme, other := issueTier(t, "acme", inter, false), issueTier(t, "other", inter, false)
	reg := partner.NewRegistry([]*partner.Partner{{ID: "acme", Identity: partner.Identity{SubjectCN: "acme"}},
		{ID: "other", Identity: partner.Identity{SubjectCN: "other"}}})
	serverCA, _ := certs.NewCA("gateway")
	issued, _ := serverCA.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	serverCert := tls.Certificate{Certificate: [][]byte{issued.Cert.Raw}, PrivateKey: issued.Key}
	bundle := func(cs ...*tier) (out []*x509.Certificate) {
		for _, c := range cs {
			out = append(out, c.cert)
		}
		return out
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
	client := func(leaf *tier) *http.Client {
		roots := x509.NewCertPool()
		roots.AddCert(serverCA.Cert)
		cert := tls.Certificate{Certificate: [][]byte{leaf.cert.Raw, inter.cert.Raw}, PrivateKey: leaf.key}
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
		{"ok/root-crl-lists-another", bundle(root), []*x509.RevocationList{crlOf(t, root, acme.cert)}, co, http.StatusOK, false},
		{"fail/root-crl-lists-intermediate-open-connection", bundle(root), []*x509.RevocationList{crlOf(t, root, inter.cert)}, ca, http.StatusForbidden, true},
		{"fail/root-crl-lists-intermediate-handshake", bundle(root), []*x509.RevocationList{crlOf(t, root, inter.cert)}, ca, 0, false},
		{"ok/intermediate-crl-lists-another", bundle(root, inter), []*x509.RevocationList{crlOf(t, inter, acme.cert)}, co, http.StatusOK, true},
		{"fail/intermediate-crl-lists-client-handshake", bundle(root, inter), []*x509.RevocationList{crlOf(t, inter, acme.cert)}, ca, 0, false},
		// A connection made under the issuing CA alone (its chain ends
		// there) goes on once the bundle holds only the root, as a new
		// handshake would; and is refused once the root's CRL lists the
		// issuing CA.
		{"ok/handshake-under-intermediate", bundle(inter), nil, ca, http.StatusOK, false},
		{"ok/intermediate-replaced-by-root-open-connection", bundle(root), nil, ca, http.StatusOK, true},
		{"fail/then-root-crl-lists-intermediate-open-connection", bundle(root), []*x509.RevocationList{crlOf(t, root, inter.cert)}, ca, http.StatusForbidden, true},
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
