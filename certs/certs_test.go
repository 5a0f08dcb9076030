package certs_test

import (
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/certs"
)

// TestLoadCA: a CA's certificate and key written by WriteFiles load back and
// issue certificates that chain to it; a key that is not the certificate's
// is refused when loading, not found out at a partner's handshake.
func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	a, err := certs.NewCA("root a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := certs.NewCA("root b")
	if err != nil {
		t.Fatal(err)
	}
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
