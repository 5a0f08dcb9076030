package server

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"testing"

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
	der, err := ca.Revoke(1, revoked.Cert)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	reg := partner.NewRegistry([]*partner.Partner{{ID: "acme", Identity: partner.Identity{SubjectCN: "acme"}}})
	server, _ := ca.IssueServer("localhost", nil, nil)
	cert := tls.Certificate{Certificate: [][]byte{server.Cert.Raw}, PrivateKey: server.Key}
	h := NewTLS(cert, x509.NewCertPool(), []*x509.RevocationList{crl}, reg)
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
	h.Set(cert, x509.NewCertPool(), nil)
	if err := check(revoked.Cert); err != nil {
		t.Fatalf("ok/crl-dropped: %v", err)
	}
}
