package certs_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
		refusal         string // "" for ok
	}{
		{"ok/its-own-key", "a.pem", "a.key", ""},
		{"fail/another-ca-key", "a.pem", "b.key", "b.key is not the key of the certificate in"},
		{"fail/no-key-in-the-file", "a.pem", "a.pem", "a.pem: no private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := certs.LoadCA(file(tc.cert), file(tc.key))
			if tc.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("LoadCA = %v, want %q", err, tc.refusal)
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

// TestLoadKeyPair: a TLS certificate and key load as tls.LoadX509KeyPair
// loads them (the chain after the certificate, a combined file, the EC
// PARAMETERS block OpenSSL writes before a SEC 1 key), and what it refuses
// is refused by name: an encrypted key (the standard library said only
// "failed to parse private key"), another certificate's key.
func TestLoadKeyPair(t *testing.T) {
	file, a, _ := setUp(t)
	leaf, err := a.IssueClient("kilang-contoh")
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.IssueClient("lain")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := certs.KeyPEM(leaf.Key)
	otherPEM, _ := certs.KeyPEM(other.Key)
	sec1, err := x509.MarshalECPrivateKey(leaf.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"leaf.pem":      certs.CertPEM(leaf.Cert),
		"chain.pem":     append(certs.CertPEM(leaf.Cert), certs.CertPEM(a.Cert)...),
		"leaf.key":      keyPEM,
		"combined.pem":  append(certs.CertPEM(leaf.Cert), keyPEM...),
		"ecparams.key":  append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
		"encrypted.key": pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("opaque")}),
		"other.key":     otherPEM,
	}
	for name, b := range files {
		if err := os.WriteFile(file(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, cert, key string
		chain           int    // certificates loaded
		refused         string // in the error
	}{
		{"ok/pkcs8", "leaf.pem", "leaf.key", 1, ""},
		{"ok/with-its-chain", "chain.pem", "leaf.key", 2, ""},
		{"ok/combined-file", "combined.pem", "combined.pem", 1, ""},
		{"ok/sec1-after-ec-parameters", "leaf.pem", "ecparams.key", 1, ""},
		{"fail/encrypted", "leaf.pem", "encrypted.key", 0, "the private key is encrypted"},
		{"fail/another-certificates-key", "leaf.pem", "other.key", 0, "is not the key of the certificate"},
		{"fail/no-key", "leaf.pem", "leaf.pem", 0, "no private key"},
		{"fail/no-certificate", "leaf.key", "leaf.key", 0, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := certs.LoadKeyPair(file(tc.cert), file(tc.key))
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("error %v, want one saying %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Certificate) != tc.chain || !c.Leaf.Equal(leaf.Cert) || !certs.IsKeyOf(c.PrivateKey.(crypto.Signer), leaf.Cert) {
				t.Fatalf("%d certificates, leaf %v", len(c.Certificate), c.Leaf.Subject)
			}
		})
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
		{"fail/issuer-not-given", "b.crl", []*x509.Certificate{a.Cert}, "not signed by a CA of the CA file it goes with"},
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

// TestClientConfig: the gateway's clients agree to a server's TLS only as
// its listeners do: TLS 1.3, or TLS 1.2 with an ECDHE AEAD suite. A server
// that offers nothing better than AES-CBC, RSA key exchange or TLS 1.1 is
// refused in the handshake (Go's default client would take the first two).
func TestClientConfig(t *testing.T) {
	ca, err := certs.NewCA("client policy root")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca.Cert, &rsaKey.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	rsaSrv := &certs.Issued{Cert: rsaCert, Key: rsaKey}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tc := range []struct {
		name     string
		server   *certs.Issued
		min, max uint16
		suite    uint16 // the server's only TLS 1.2 suite; 0: Go's defaults
		ok       bool
	}{
		{"ok/tls13", srv, tls.VersionTLS13, tls.VersionTLS13, 0, true},
		{"ok/tls12-ecdhe-ecdsa-aes-gcm", srv, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{"ok/tls12-ecdhe-ecdsa-chacha20", srv, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{"ok/tls12-ecdhe-rsa-aes-gcm", rsaSrv, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
		{"fail/tls12-ecdhe-ecdsa-aes-cbc-sha1", srv, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{"fail/tls12-ecdhe-rsa-aes-cbc-sha1", rsaSrv, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, false},
		{"fail/tls12-rsa-key-exchange", rsaSrv, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, false},
		{"fail/tls11", srv, tls.VersionTLS11, tls.VersionTLS11, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tc.server.Cert.Raw}, PrivateKey: tc.server.Key}},
				MinVersion: tc.min, MaxVersion: tc.max}
			if tc.suite != 0 {
				conf.CipherSuites = []uint16{tc.suite}
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_ = c.(*tls.Conn).Handshake()
					c.Close()
				}
			}()
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), certs.ClientConfig(roots))
			if err == nil {
				c.Close()
			}
			if tc.ok != (err == nil) {
				t.Fatalf("handshake: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestIssueFromCSR: a certificate for the key of a signing request, to the
// name the CA gives, for the purpose asked; only keys the gateway's policies
// take, and only from a request its key signed.
func TestIssueFromCSR(t *testing.T) {
	ca, err := certs.NewCA("partners")
	if err != nil {
		t.Fatal(err)
	}
	request := func(key crypto.Signer, cn string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	tampered := request(p256, "acme-hr")
	b, _ := pem.Decode(tampered)
	b.Bytes[len(b.Bytes)-1] ^= 1
	tampered = pem.EncodeToMemory(b)
	for _, tc := range []struct {
		name    string
		csr     []byte
		key     crypto.Signer // whose public half the certificate must hold
		refusal string
	}{
		{"ok/ecdsa-p256", request(p256, "someone-else"), p256, ""},
		{"ok/rsa-2048", request(rsa2048, "acme-hr"), rsa2048, ""},
		{"ok/ed25519", request(ed, "acme-hr"), ed, ""},
		{"fail/ecdsa-p224", request(p224, "acme-hr"), nil, "P-256 or P-384"},
		{"fail/rsa-1024", request(rsa1024, "acme-hr"), nil, "at least 2048"},
		{"fail/tampered", tampered, nil, ""},
		{"fail/not-a-request", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), nil, "not a PEM certificate request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ca.IssueFromCSR("acme-hr", tc.csr, x509.ExtKeyUsageClientAuth)
			if tc.key == nil {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("IssueFromCSR = %v, want a refusal naming %q", err, tc.refusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("does not chain to the CA as a client certificate: %v", err)
			}
			if c.Subject.CommonName != "acme-hr" || !tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
				t.Fatalf("issued to %q for another key", c.Subject.CommonName)
			}
			// A client certificate only: it names the partner, and does not
			// pass as a server's.
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || !slices.Equal(c.DNSNames, []string{"acme-hr"}) {
				t.Fatalf("extended key usage %v, DNS names %q", c.ExtKeyUsage, c.DNSNames)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Fatal("the client certificate verifies as a server's")
			}
		})
	}
}
