package interop

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/certs"
)

// TestOpenSSLKeysLoad: the private keys an operator makes with the usual
// OpenSSL commands load with certs.LoadKey (the WS-Security signing key,
// the CA key of `gateway certs kit`) and are the keys OpenSSL says they are
// (their public halves agree); the ones it cannot use are refused with a
// reason (encrypted, or no private key at all).
func TestOpenSSLKeysLoad(t *testing.T) {
	openssl := need(t, "openssl")
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	run := opensslRun(t, openssl)
	run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file("ec-pkcs8.pem"))
	run("ecparam", "-name", "prime256v1", "-genkey", "-out", file("ecparam-genkey.pem"))
	run("ec", "-in", file("ec-pkcs8.pem"), "-out", file("ec-sec1.pem"))
	run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", file("rsa-pkcs8.pem"))
	run("rsa", "-in", file("rsa-pkcs8.pem"), "-traditional", "-out", file("rsa-pkcs1.pem"))
	run("genpkey", "-algorithm", "ed25519", "-out", file("ed25519.pem"))
	run("req", "-x509", "-key", file("ec-pkcs8.pem"), "-subj", "/CN=jambatan-soap", "-days", "30", "-out", file("cert.pem"))
	cert, err := os.ReadFile(file("cert.pem"))
	must(t, err)
	key, err := os.ReadFile(file("ec-pkcs8.pem"))
	must(t, err)
	must(t, os.WriteFile(file("cert-then-key.pem"), append(cert, key...), 0o600))
	run("pkey", "-in", file("ec-pkcs8.pem"), "-aes256", "-passout", "pass:rahsia", "-out", file("encrypted-pkcs8.pem"))
	run("ec", "-in", file("ec-pkcs8.pem"), "-aes256", "-passout", "pass:rahsia", "-out", file("encrypted-sec1.pem"))
	run("pkey", "-in", file("ec-pkcs8.pem"), "-pubout", "-out", file("public.pem"))

	for _, tc := range []struct {
		name, file, from string // from: the key whose public half OpenSSL is asked for
		refusal          string
	}{
		{"ok/genpkey-ec-pkcs8", "ec-pkcs8.pem", "ec-pkcs8.pem", ""},
		{"ok/ecparam-genkey-with-parameters", "ecparam-genkey.pem", "ecparam-genkey.pem", ""},
		{"ok/ec-sec1", "ec-sec1.pem", "ec-sec1.pem", ""},
		{"ok/rsa-pkcs8", "rsa-pkcs8.pem", "rsa-pkcs8.pem", ""},
		{"ok/rsa-pkcs1-traditional", "rsa-pkcs1.pem", "rsa-pkcs1.pem", ""},
		{"ok/ed25519", "ed25519.pem", "ed25519.pem", ""},
		{"ok/certificate-then-key", "cert-then-key.pem", "ec-pkcs8.pem", ""},
		{"fail/encrypted-pkcs8", "encrypted-pkcs8.pem", "", "encrypted"},
		{"fail/encrypted-sec1", "encrypted-sec1.pem", "", "encrypted"},
		{"fail/public-key-only", "public.pem", "", "no private key"},
		{"fail/certificate-only", "cert.pem", "", "no private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := certs.LoadKey(file(tc.file))
			if tc.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("LoadKey = %v, %v; want an error saying %q", k, err, tc.refusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ours, err := x509.MarshalPKIXPublicKey(k.Public())
			must(t, err)
			blk, _ := pem.Decode(run("pkey", "-in", file(tc.from), "-pubout"))
			if blk == nil || !bytes.Equal(ours, blk.Bytes) {
				t.Fatalf("the key's public half differs from OpenSSL's")
			}
		})
	}
}
