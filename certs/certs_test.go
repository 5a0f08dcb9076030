package certs_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/certs"
)

// TestLoadCA: a CA's certificate and key written by WriteFiles load back and
// issue certificates that chain to it; a key that is not the certificate's
// is refused when loading, not found out at a partner's handshake.
func TestLoadCA(t *testing.T) {
	file, a, b := setUp(t)
	for _, w := range []struct {
		cert, key string
		ca        *certs.CA
	}{{"a.pem", "a.key", a}, {"b.pem", "b.key", b}} {
		if err := certs.WriteFiles(file(w.cert), file(w.key), w.ca.Cert, w.ca.Key); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, cert, key string
		ok              bool
	}{
		{"ok/its-own-key", "a.pem", "a.key", true},
		{"fail/another-ca-key", "a.pem", "b.key", false},
		{"fail/no-key-in-the-file", "a.pem", "a.pem", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := certs.LoadCA(file(tc.cert), file(tc.key))
			if !tc.ok {
				if err == nil {
					t.Fatal("LoadCA accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := ca.IssueClient("kilang-contoh")
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(a.Cert)
			if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("an issued certificate does not chain to the CA: %v", err)
			}
		})
	}
	if _, err := certs.LoadCA(file("a.pem"), file("b.key")); err == nil || !strings.Contains(err.Error(), "is not the key of the certificate") {
		t.Fatalf("the refusal says %v", err)
	}
}

// TestLoadCRL: a CRL loads from PEM or DER when one of the CAs signed it; a
// file with two CRLs is refused (only the first used to be read, the
// revocations of the second silently dropped), and so is a CRL of a CA not
// given.
func TestLoadCRL(t *testing.T) {
	file, a, b := setUp(t)
	leaf, err := a.IssueClient("kilang-contoh")
	if err != nil {
		t.Fatal(err)
	}
	crlA, err := a.Revoke(1, leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	crlB, err := b.Revoke(1)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}) }
	for name, body := range map[string][]byte{
		"a.crl": pemOf(crlA), "a.der": crlA, "b.crl": pemOf(crlB),
		"a-then-b.crl": append(pemOf(crlA), pemOf(crlB)...), "b-then-a.crl": append(pemOf(crlB), pemOf(crlA)...),
	} {
		if err := os.WriteFile(file(name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	both := []*x509.Certificate{a.Cert, b.Cert}
	for _, tc := range []struct {
		name, file string
		cas        []*x509.Certificate
		refusal    string
	}{
		{"ok/pem", "a.crl", both, ""},
		{"ok/der", "a.der", both, ""},
		{"fail/two-crls-in-one-file", "a-then-b.crl", both, "2 PEM blocks"},
		{"fail/two-crls-the-other-way", "b-then-a.crl", both, "2 PEM blocks"},
		{"fail/issuer-not-given", "b.crl", []*x509.Certificate{a.Cert}, "not signed by a configured client CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crl, err := certs.LoadCRL(file(tc.file), tc.cas)
			if tc.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("LoadCRL = %v; want an error saying %q", err, tc.refusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
				t.Fatalf("the CRL lists %v", crl.RevokedCertificateEntries)
			}
		})
	}
}

// setUp gives a test a file namer in a temporary directory and two CAs.
func setUp(t *testing.T) (file func(string) string, a, b *certs.CA) {
	t.Helper()
	dir := t.TempDir()
	file = func(name string) string { return filepath.Join(dir, name) }
	var err error
	if a, err = certs.NewCA("root a"); err == nil {
		b, err = certs.NewCA("root b")
	}
	if err != nil {
		t.Fatal(err)
	}
	return file, a, b
}
