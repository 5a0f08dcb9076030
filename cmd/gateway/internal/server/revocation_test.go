package server

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// TestRevocation: the handshake check refuses a client certificate its
// issuer's CRL lists, and only that one: not a certificate with the same
// serial number from another CA, nor any once a reload drops the CRL.
func TestRevocation(t *testing.T) {
	ca, _ := certs.NewCA("partners A")
	other, _ := certs.NewCA("partners B")
	revoked, _ := ca.IssueClient("acme")
	kept, _ := ca.IssueClient("acme")
	twin, _ := other.IssueClient("acme") // the revoked certificate's serial, another issuer
	twin.Cert.SerialNumber = new(big.Int).Set(revoked.Cert.SerialNumber)
	crl, err := ca.RevocationList(1, revoked.Cert)
	if err != nil {
		t.Fatal(err)
	}
	reg := partner.NewRegistry([]*partner.Partner{{ID: "acme", Identity: partner.Identity{SubjectCN: "acme"}}})
	server, _ := ca.IssueServer("localhost", nil, nil)
	cert := tls.Certificate{Certificate: [][]byte{server.Cert.Raw}, PrivateKey: server.Key}
	h := NewTLS(cert, nil, []*x509.RevocationList{crl}, reg)
	check := func(c *x509.Certificate) error {
		return h.verify(tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}})
	}

	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		refused bool
	}{
		{"fail/revoked", revoked.Cert, true},
		{"ok/not-listed", kept.Cert, false},
		{"ok/same-serial-other-issuer", twin.Cert, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(tc.cert); (err != nil) != tc.refused {
				t.Fatalf("verify: %v, want refused %v", err, tc.refused)
			}
		})
	}
	h.Set(cert, nil, nil)
	if err := check(revoked.Cert); err != nil {
		t.Fatalf("ok/crl-dropped: %v", err)
	}
}

// TestChainsTo: a request's connection is let in while one of its verified
// chains passes through a current client CA, the certificates below it
// and the CA as the bundle now has it valid; a CA certificate renewed for
// the same key is the same CA.
func TestChainsTo(t *testing.T) {
	ca, _ := certs.NewCA("partners A")
	other, _ := certs.NewCA("partners B")
	sameName, _ := certs.NewCA("partners A") // another key under the same name
	leaf, _ := ca.IssueClient("acme")
	chain := []*x509.Certificate{leaf.Cert, ca.Cert}
	anchors := func(cs ...*x509.Certificate) map[string]*x509.Certificate {
		m := map[string]*x509.Certificate{}
		for _, c := range cs {
			m[anchorKey(c)] = c
		}
		return m
	}
	now := leaf.Cert.NotBefore.Add(time.Hour)
	expiredCA := *ca.Cert
	expiredCA.NotAfter = now.Add(-time.Second)
	// ca's certificate issued again for its key, valid for longer.
	tmpl := *ca.Cert
	tmpl.SerialNumber, tmpl.NotAfter = big.NewInt(2), ca.Cert.NotAfter.AddDate(1, 0, 0)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, ca.Key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		chains  [][]*x509.Certificate
		anchors map[string]*x509.Certificate
		now     time.Time
		want    bool
	}{
		{"ok/root-trusted", [][]*x509.Certificate{chain}, anchors(ca.Cert), now, true},
		{"ok/among-others", [][]*x509.Certificate{chain}, anchors(other.Cert, ca.Cert), now, true},
		{"ok/second-chain", [][]*x509.Certificate{{leaf.Cert, other.Cert}, chain}, anchors(ca.Cert), now, true},
		{"ok/leaf-itself-trusted", [][]*x509.Certificate{{leaf.Cert}}, anchors(leaf.Cert), now, true},
		{"ok/anchor-renewed", [][]*x509.Certificate{chain}, anchors(renewed), now, true},
		{"ok/anchor-renewed-the-old-one-expired", [][]*x509.Certificate{{leaf.Cert, &expiredCA}}, anchors(renewed), now, true},
		{"fail/root-removed", [][]*x509.Certificate{chain}, anchors(other.Cert), now, false},
		{"fail/same-name-other-key", [][]*x509.Certificate{chain}, anchors(sameName.Cert), now, false},
		{"fail/anchor-expired", [][]*x509.Certificate{{leaf.Cert, &expiredCA}}, anchors(&expiredCA), now, false},
		{"fail/leaf-expired", [][]*x509.Certificate{chain}, anchors(ca.Cert), leaf.Cert.NotAfter.Add(time.Second), false},
		{"fail/not-yet-valid", [][]*x509.Certificate{chain}, anchors(ca.Cert), leaf.Cert.NotBefore.Add(-time.Second), false},
		{"fail/no-chain", nil, anchors(ca.Cert), now, false},
		{"fail/empty-chain", [][]*x509.Certificate{{}}, anchors(ca.Cert), now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := chainsTo(tc.chains, tc.anchors, tc.now); got != tc.want {
				t.Fatalf("chainsTo = %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkCheckConnection is the check each request repeats: its chain's
// root looked up among the current client CAs, the CRLs, the registry.
func BenchmarkCheckConnection(b *testing.B) {
	ca, _ := certs.NewCA("partners A")
	leaf, _ := ca.IssueClient("acme")
	reg := partner.NewRegistry([]*partner.Partner{{ID: "acme", Identity: partner.Identity{SubjectCN: "acme"}}})
	h := NewTLS(tls.Certificate{}, []*x509.Certificate{ca.Cert}, nil, reg)
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}, VerifiedChains: [][]*x509.Certificate{{leaf.Cert, ca.Cert}}}
	now := time.Now()
	b.Run("connection", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.CheckConnection(cs, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("certificate", func(b *testing.B) { // the CRLs and the registry alone
		for b.Loop() {
			if _, err := h.check(cs.PeerCertificates[0], cs.VerifiedChains); err != nil {
				b.Fatal(err)
			}
		}
	})
}
