package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestCertsListNames: certs list shows the certificates and CRLs the
// gateway watches (its expiry gauges and /readyz, as serve --check lists
// them), under the same names: a certificate added to one list only, or
// named apart, fails here. The configuration has a client CA bundle of two
// certificates, a server certificate with its chain, two CRLs of one base
// name, an agency's signing CRL, the operators' CA's CRL and a partner
// endpoint with a client certificate of its own.
func TestCertsListNames(t *testing.T) {
	l, dir := devLayout(t)
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	serverPEM, err := os.ReadFile(l.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "pki", "clients-bundle.pem")
	if err := errors.Join(os.WriteFile(bundle, append(caPEM, caPEM...), 0o644),
		os.WriteFile(l.ServerCert, append(serverPEM, caPEM...), 0o644)); err != nil {
		t.Fatal(err)
	}
	var crls []string
	for _, sub := range []string{"a", "b"} {
		crl, err := ca.Revoke(1)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "pki", sub, "clients.crl")
		if err := errors.Join(os.MkdirAll(filepath.Dir(path), 0o755), os.WriteFile(path, crl, 0o644)); err != nil {
			t.Fatal(err)
		}
		crls = append(crls, path)
	}
	good, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	crlJSON, _ := json.Marshal(crls)
	cfg := bytes.Replace(good, []byte(`"client_ca_file": "pki/ca.pem"`), []byte(`"client_ca_file": "pki/clients-bundle.pem", "crl_files": `+string(crlJSON)), 1)
	if bytes.Equal(cfg, good) {
		t.Fatal("config layout changed")
	}
	// demo-employer's endpoint presents a client certificate of its own.
	var f map[string]any
	if err := json.Unmarshal(cfg, &f); err != nil {
		t.Fatal(err)
	}
	own, err := ca.IssueClient("perkeso-at-demo-employer")
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(filepath.Join(dir, "pki", "at-employer.pem"), filepath.Join(dir, "pki", "at-employer.key"), own.Cert, own.Key); err != nil {
		t.Fatal(err)
	}
	for _, p := range f["partners"].([]any) {
		switch p := p.(map[string]any); p["id"] {
		case "demo-employer":
			p["endpoint"] = map[string]any{"url": "https://employer.example/in", "protocol": "json",
				"client_cert_file": "pki/at-employer.pem", "client_key_file": "pki/at-employer.key",
				"ca_file": "pki/ca.pem", "crl_files": []string{crls[0]}} // its server's CA, and that CA's CRL
		case "demo-agency": // its signing CA's CRL, of the same base name as a client CA's
			p["signing_crl_files"] = []string{crls[0]}
		}
	}
	// The operators' CA's CRL.
	f["operator"].(map[string]any)["crl_files"] = []string{crls[1]}
	// Kafka over TLS with a client certificate (no broker is dialled).
	f["kafka"] = map[string]any{"brokers": []string{"127.0.0.1:9"},
		"tls": map[string]any{"ca_file": "pki/ca.pem", "cert_file": "pki/at-employer.pem", "key_file": "pki/at-employer.key"}}
	cfg, _ = json.Marshal(f)
	if err := os.WriteFile(l.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	check, stderr, err := gateway(t, "serve", "--config", l.Config, "--check")
	if err != nil {
		t.Fatalf("serve --check: %v\n%s%s", err, check, stderr)
	}
	var watched []string
	for _, line := range strings.Split(check, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "ok" {
			name := strings.TrimPrefix(f[1], "certificate:")
			watched = append(watched, name)
		}
	}
	list, stderr, err := gateway(t, "certs", "list", "--config", l.Config)
	if err != nil || stderr != "" {
		t.Fatalf("certs list: %v\n%s%s", err, list, stderr)
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n")[1:] {
		listed = append(listed, strings.Fields(line)[0])
	}
	slices.Sort(watched)
	slices.Sort(listed)
	if !slices.Equal(watched, listed) || !slices.Contains(listed, "client-ca-1") || !slices.Contains(listed, "crl:"+crls[1]) ||
		!slices.Contains(listed, "outbound-client:demo-employer") || !slices.Contains(listed, "operator-ca-0") ||
		!slices.Contains(listed, "kafka-ca-0") || !slices.Contains(listed, "kafka-client") || !slices.Contains(listed, "crl:signing:demo-agency:clients.crl") ||
		!slices.Contains(listed, "crl:operator:clients.crl") || !slices.Contains(listed, "endpoint-ca:demo-employer:0") ||
		!slices.Contains(listed, "crl:endpoint:demo-employer:clients.crl") {
		t.Fatalf("certs list names %q,\nthe gateway watches %q", listed, watched)
	}
}

// TestCertsCommands: an onboarding kit issued by the dev CA, the expiry
// list, and a receipt key rotation picked up on SIGHUP: new receipts carry
// the new kid and a receipt issued before the rotation still verifies
// against the published JWKS.
func TestCertsCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	l, _ := devmode.LayoutOf(dir)
	kitDir := filepath.Join(t.TempDir(), "kit")
	if o, e, err := gateway(t, "certs", "kit", "--partner", "acme-hr", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", kitDir); err != nil || !strings.Contains(o, "registration") {
		t.Fatalf("kit: %v %s %s", err, o, e)
	}
	pool, _ := certs.LoadPool(l.CACert)
	kc, err := certs.LoadCertificates(filepath.Join(kitDir, "client.pem"))
	if err != nil || kc[0].Subject.CommonName != "acme-hr" {
		t.Fatalf("kit certificate: %v", err)
	}
	if _, err := kc[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	// A second kit for the same partner (its key rotation): a kid of its
	// own, so both public keys can be registered side by side.
	kitDir2 := filepath.Join(t.TempDir(), "kit2")
	if o, e, err := gateway(t, "certs", "kit", "--partner", "acme-hr", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", kitDir2); err != nil {
		t.Fatalf("second kit: %v %s %s", err, o, e)
	}
	var both struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, k := range []string{kitDir, kitDir2} {
		var set struct{ Keys []json.RawMessage }
		b, err := os.ReadFile(filepath.Join(k, "jwks.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &set); err != nil {
			t.Fatal(err)
		}
		both.Keys = append(both.Keys, set.Keys...)
	}
	bb, _ := json.Marshal(both)
	if _, err := config.ParsePublicJWKS(bb); err != nil || len(both.Keys) != 2 {
		t.Fatalf("the two kits' keys cannot be registered together: %v", err)
	}
	// An agency's kit: a WS-Security signing certificate issued to its
	// institution id, which its registration's signing CA accepts.
	agencyDir := filepath.Join(t.TempDir(), "agency-kit")
	if o, e, err := gateway(t, "certs", "kit", "--partner", "bn-spk", "--institution", "BN:SPK", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", agencyDir); err != nil ||
		!strings.Contains(o, `"institution": "BN:SPK"`) || !strings.Contains(o, `"signing_ca_file"`) {
		t.Fatalf("agency kit: %v %s %s", err, o, e)
	}
	ws, err := certs.LoadCertificates(filepath.Join(agencyDir, "ws-signing.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if rk, ok := ws[0].PublicKey.(*rsa.PublicKey); !ok || rk.N.BitLen() != 2048 || wssec.TrustInstitution(pool, "BN:SPK")(ws[0]) != nil {
		t.Fatalf("agency signing certificate: %T %v", ws[0].PublicKey, wssec.TrustInstitution(pool, "BN:SPK")(ws[0]))
	}
	if _, err := certs.LoadKey(filepath.Join(agencyDir, "ws-signing.key")); err != nil {
		t.Fatal(err)
	}
	if _, e, err := gateway(t, "certs", "kit", "--partner", "bn-spk", "--institution", "brunei", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", agencyDir+"2"); err == nil || !strings.Contains(e, `--institution "brunei"`) {
		t.Fatalf("a kit for a bad institution id: %v %s", err, e)
	}
	// Kits from the partners' own requests: certificates for their keys, no
	// private key made or written.
	csr := func(name string, key crypto.Signer) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "typed-by-them"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	own, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ownSigning, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name string
		args []string
		cert map[string]crypto.Signer // file in the kit: the key it must be for
	}{
		{"employer", []string{"--partner", "acme-hr", "--csr", csr("acme.csr", own)}, map[string]crypto.Signer{"client.pem": own}},
		{"agency", []string{"--partner", "bn-spk", "--institution", "BN:SPK", "--csr", csr("spk.csr", own), "--signing-csr", csr("spk-ws.csr", ownSigning)},
			map[string]crypto.Signer{"client.pem": own, "ws-signing.pem": ownSigning}},
	} {
		out := filepath.Join(t.TempDir(), "csr-kit-"+tc.name)
		if o, e, err := gateway(t, append([]string{"certs", "kit", "--ca-cert", l.CACert, "--ca-key", l.CAKey, "--out", out}, tc.args...)...); err != nil || !strings.Contains(o, "registration") {
			t.Fatalf("%s kit from requests: %v %s %s", tc.name, err, o, e)
		}
		entries, _ := os.ReadDir(out)
		if len(entries) != len(tc.cert) {
			t.Fatalf("%s kit from requests holds %d files, want only the certificates", tc.name, len(entries))
		}
		for file, key := range tc.cert {
			c, err := certs.LoadCertificates(filepath.Join(out, file))
			if err != nil || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c[0].PublicKey) || c[0].Subject.CommonName == "typed-by-them" {
				t.Fatalf("%s %s: not for the request's key, or named as the request asked: %v", tc.name, file, err)
			}
		}
	}
	if o, _, err := gateway(t, "certs", "list", "--dev", dir); err != nil || !strings.Contains(o, "server") || !strings.Contains(o, "soap-signing") {
		t.Fatalf("list: %v %s", err, o)
	}
	first, _, err := gateway(t, "submit", "--dev", dir, example("example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	var acc struct{ Receipt string }
	if err := json.Unmarshal([]byte(first), &acc); err != nil {
		t.Fatal(err)
	}
	if o, _, err := gateway(t, "certs", "rotate-receipt-key", "--dev", dir); err != nil || !strings.Contains(o, "new receipt key") {
		t.Fatalf("rotate: %v %s", err, o)
	}
	reload(t, cmd, out)
	o, _, err := gateway(t, "submit", "--dev", dir, example("example-b.in.json"))
	var b struct{ Receipt string }
	if err := json.Unmarshal([]byte(o), &b); err != nil {
		t.Fatal(err)
	}
	if err != nil || b.Receipt == "" || strings.Split(b.Receipt, ".")[0] == strings.Split(acc.Receipt, ".")[0] {
		t.Fatalf("receipts not signed with the new key: %v %s", err, o) // the protected header names the kid
	}
	if o, e, err := gateway(t, "receipt", "verify", "--dev", dir, "--jwks", d.JWKSURL, acc.Receipt); err != nil {
		t.Fatalf("a receipt from before the rotation no longer verifies: %v %s %s", err, o, e)
	}
	// The rotation wrote the public keys where ingest reads them: both
	// records are ingested, none quarantined for its key.
	if o, e, err := gateway(t, "receipt", "verify", "--jwks", l.GatewayJWKS, b.Receipt); err != nil {
		t.Fatalf("the new receipt does not verify with %s: %v %s %s", l.GatewayJWKS, err, o, e)
	}
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up", "--idle", "1s"); err != nil || !strings.Contains(o, "2 ingested, 0 quarantined") {
		t.Fatalf("ingest after the rotation: %v %s %s", err, o, e)
	}
}
