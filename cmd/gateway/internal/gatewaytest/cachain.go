package gatewaytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
)

// CAChain is a root CA and an issuing CA it signed, for tests of chains
// through an intermediate: certs.NewCA makes roots that issue no CA.
func CAChain(t testing.TB, rootCN, issuingCN string) (root, issuing *certs.CA) {
	t.Helper()
	root = newCA(t, rootCN, nil)
	return root, newCA(t, issuingCN, root)
}

// newCA makes a CA for cn, signed by parent (nil: self-signed).
func newCA(t testing.TB, cn string, parent *certs.CA) *certs.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), BasicConstraintsValid: true,
		IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certs.CA{Cert: c, Key: key}
}
