package devmode

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/perkeso/jambatan/adapters/agencysoap" // the demo partners' formats, as main registers them
	_ "github.com/perkeso/jambatan/adapters/insurerclaim"
	_ "github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
)

// files are the paths Ensure makes in l: the PKI, the configuration and
// each demo partner's kit.
func files(l Layout) []string {
	fs := []string{l.CACert, l.CAKey, l.ServerCert, l.ServerKey, l.ReceiptKey, l.GatewayJWKS, l.SOAPCert, l.SOAPKey,
		l.OutboundCert, l.OutboundKey, l.OperatorCert, l.OperatorKey, l.BackOfficeKey, l.BackOfficeJWKS, l.Config}
	for _, d := range Demos {
		k := l.Kit(d.ID)
		fs = append(fs, k.ClientCert, k.ClientKey)
		if d.Kind == "agency" {
			fs = append(fs, k.SigningCert, k.SigningKey)
		} else {
			fs = append(fs, k.SigningJWK, k.PublicJWKS)
		}
	}
	return fs
}

// contents reads every file of l's.
func contents(t *testing.T, l Layout) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	for _, f := range files(l) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got[f] = b
	}
	return got
}

// changed are the files whose contents differ between a and b.
func changed(a, b map[string][]byte) []string {
	var c []string
	for f := range a {
		if !bytes.Equal(a[f], b[f]) {
			c = append(c, filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f))
		}
	}
	slices.Sort(c)
	return c
}

// TestEnsure: a fresh directory gets the whole PKI, kits and a
// configuration that loads, its private keys readable by the owner alone;
// a second run changes nothing and says the PKI was not created; a file
// removed is made again alone (a server certificate still issued by the
// directory's CA); a CA that cannot be read is refused, not replaced,
// since every certificate in the directory hangs on it.
func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	l, created, err := Ensure(dir)
	if err != nil || !created {
		t.Fatalf("ok/fresh: created %v, %v", created, err)
	}
	for _, f := range files(l) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("ok/fresh: %v", err)
		}
		private := strings.HasSuffix(f, ".key") || strings.HasSuffix(f, ".jwk.json")
		if private && fi.Mode().Perm() != 0o600 {
			t.Errorf("ok/fresh: %s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	c, err := config.Load(l.Config)
	if err != nil {
		t.Fatalf("ok/fresh: the configuration does not load: %v", err)
	}
	var ids []string
	for _, p := range c.File.Partners {
		ids = append(ids, p.ID)
	}
	if c.File.Listen != DefaultAddr || !slices.Equal(ids, []string{"demo-employer", "demo-insurer", "demo-agency"}) {
		t.Fatalf("ok/fresh: the configuration listens on %s for partners %v", c.File.Listen, ids)
	}
	first := contents(t, l)

	if _, created, err := Ensure(dir); err != nil || created {
		t.Fatalf("ok/again: created %v, %v", created, err)
	}
	if c := changed(first, contents(t, l)); len(c) > 0 {
		t.Fatalf("ok/again: %v rewritten", c)
	}

	for _, f := range []string{l.ServerCert, l.Kit("demo-employer").SigningJWK} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, created, err := Ensure(dir); err != nil || created {
		t.Fatalf("ok/two-removed: created %v, %v", created, err)
	}
	again := contents(t, l)
	want := []string{"demo-employer/jwks.json", "demo-employer/signing.jwk.json", "pki/server.key", "pki/server.pem"}
	if c := changed(first, again); !slices.Equal(c, want) {
		t.Fatalf("ok/two-removed: %v made again, want %v", c, want)
	}
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := certs.LoadCertificates(l.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := srv[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Fatalf("ok/two-removed: the new server certificate: %v", err)
	}

	if err := os.WriteFile(l.CACert, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(dir); err == nil || !strings.Contains(err.Error(), "dev CA: ") {
		t.Fatalf("fail/ca-unreadable: %v, want a dev CA error", err)
	}
	now := contents(t, l)
	delete(now, l.CACert)
	delete(again, l.CACert)
	if c := changed(again, now); len(c) > 0 {
		t.Fatalf("fail/ca-unreadable: %v rewritten", c)
	}
}

// TestDevJSON: dev.json read back as written, with where it came from; a
// partner found by id or refused by name; a missing dev.json asks whether
// the dev gateway runs, and one that is not JSON names its file.
func TestDevJSON(t *testing.T) {
	dir := t.TempDir()
	l, err := LayoutOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDevJSON(dir); err == nil || !strings.Contains(err.Error(), `(is "gateway dev --dir `+dir+`" running?)`) {
		t.Fatalf("fail/missing: %v", err)
	}
	d := l.Describe("127.0.0.1:8443")
	d.KafkaBootstrap = "127.0.0.1:9092"
	if err := l.WriteDevJSON(d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.DevJSON + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("ok/written: the temporary file is left: %v", err)
	}
	got, err := ReadDevJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.DevJSONPath() != l.DevJSON || got.GatewayURL != "https://127.0.0.1:8443" || got.JWKSURL != "https://127.0.0.1:8443/.well-known/jwks.json" ||
		got.KafkaBootstrap != d.KafkaBootstrap || len(got.Partners) != len(Demos) {
		t.Fatalf("ok/read-back: %+v", got)
	}
	for _, tc := range []struct{ id, soapURL, kid string }{
		{"demo-employer", "", "demo-employer-2026-1"},
		{"demo-insurer", "", "demo-insurer-2026-1"},
		{"demo-agency", "https://127.0.0.1:8443/soap/v1/exchange", ""},
	} {
		p, err := got.Partner(tc.id)
		if err != nil || p.SOAPURL != tc.soapURL || p.Kid != tc.kid || p.ClientCert != l.Kit(tc.id).ClientCert {
			t.Fatalf("ok/partner-%s: %+v %v", tc.id, p, err)
		}
	}
	if _, err := got.Partner("demo-nobody"); err == nil || !strings.Contains(err.Error(), `"demo-nobody"`) {
		t.Fatalf("fail/unknown-partner: %v", err)
	}
	if err := os.WriteFile(l.DevJSON, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDevJSON(dir); err == nil || !strings.HasPrefix(err.Error(), l.DevJSON+": ") {
		t.Fatalf("fail/not-json: %v", err)
	}
}
