package partner

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
)

// TestIdentityMatches: every field an identity sets must match, and an
// identity that sets none matches nothing.
func TestIdentityMatches(t *testing.T) {
	c := &x509.Certificate{Raw: []byte("a certificate"), Subject: pkix.Name{CommonName: "acme-hr"}, DNSNames: []string{"hr.acme.example.sg", "acme.example.sg"}}
	pin, other := certs.Fingerprint(c), strings.Repeat("0", 64)
	for _, tc := range []struct {
		name string
		id   Identity
		want bool
	}{
		{"ok/subject-cn", Identity{SubjectCN: "acme-hr"}, true},
		{"ok/dns-san", Identity{DNSSAN: "acme.example.sg"}, true},
		{"ok/pin", Identity{SHA256: []string{pin}}, true},
		{"ok/pin-upper-case", Identity{SHA256: []string{strings.ToUpper(pin)}}, true},
		{"ok/pin-renewed", Identity{SHA256: []string{other, pin}}, true}, // the old certificate's and the new one's
		{"ok/all-three", Identity{SubjectCN: "acme-hr", DNSSAN: "hr.acme.example.sg", SHA256: []string{pin}}, true},
		{"fail/empty", Identity{}, false},
		{"fail/subject-cn", Identity{SubjectCN: "acme-hr2"}, false},
		{"fail/subject-cn-case", Identity{SubjectCN: "ACME-HR"}, false},
		{"fail/dns-san", Identity{DNSSAN: "example.sg"}, false},
		{"fail/pin", Identity{SHA256: []string{other}}, false},
		{"fail/pins", Identity{SHA256: []string{other, strings.Repeat("1", 64)}}, false},
		{"fail/cn-right-pin-wrong", Identity{SubjectCN: "acme-hr", SHA256: []string{other}}, false},
		{"fail/cn-right-dns-san-wrong", Identity{SubjectCN: "acme-hr", DNSSAN: "other.example.sg"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.id.Matches(c); got != tc.want {
				t.Fatalf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestByCertificate: a certificate names one partner; one that two
// partners' identities take names none (the handshake refuses it).
func TestByCertificate(t *testing.T) {
	acme := &x509.Certificate{Raw: []byte("acme"), Subject: pkix.Name{CommonName: "acme-hr"}, DNSNames: []string{"acme.example.sg"}}
	other := &x509.Certificate{Raw: []byte("other"), Subject: pkix.Name{CommonName: "other"}}
	for _, tc := range []struct {
		name     string
		partners []*Partner
		cert     *x509.Certificate
		want     string // the partner found; "" for none
	}{
		{"ok/one", []*Partner{{ID: "a", Identity: Identity{SubjectCN: "acme-hr"}}, {ID: "b", Identity: Identity{SubjectCN: "other"}}}, acme, "a"},
		{"fail/none", []*Partner{{ID: "a", Identity: Identity{SubjectCN: "acme-hr"}}}, other, ""},
		{"fail/two", []*Partner{{ID: "a", Identity: Identity{SubjectCN: "acme-hr"}}, {ID: "b", Identity: Identity{DNSSAN: "acme.example.sg"}}}, acme, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if p, ok := NewRegistry(tc.partners).ByCertificate(tc.cert); ok {
				got = p.ID
			}
			if got != tc.want {
				t.Fatalf("found %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTrustSigningCert: an agency's WS-Security certificate must chain to
// its signing CA, be valid now, and be pinned or issued to its institution.
func TestTrustSigningCert(t *testing.T) {
	ca, _ := certs.NewCA("agency CA")
	otherCA, _ := certs.NewCA("another CA")
	sso, _ := ca.IssueSigning("TH:SSO", nil)
	misnamed, _ := ca.IssueSigning("TH:SSO_TEST", nil)
	foreign, _ := otherCA.IssueSigning("TH:SSO", nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	agency := func(pins ...*x509.Certificate) *Partner {
		p := &Partner{ID: "th-sso", Kind: KindAgency, Institution: "TH:SSO", SigningCAs: pool}
		if len(pins) > 0 {
			p.SigningPins = map[string]bool{}
			for _, c := range pins {
				p.SigningPins[certs.Fingerprint(c)] = true
			}
		}
		return p
	}
	now := time.Now()
	for _, tc := range []struct {
		name    string
		p       *Partner
		cert    *x509.Certificate
		at      time.Time
		wantErr string // "" for trusted
	}{
		{"ok/issued-to-the-institution", agency(), sso.Cert, now, ""},
		{"ok/pinned", agency(sso.Cert), sso.Cert, now, ""},
		{"ok/pinned-whatever-its-name", agency(misnamed.Cert), misnamed.Cert, now, ""},
		{"fail/issued-to-another-name", agency(), misnamed.Cert, now, "not issued to TH:SSO"},
		{"fail/not-pinned", agency(misnamed.Cert), sso.Cert, now, "not one of the registered fingerprints"},
		{"fail/another-ca", agency(), foreign.Cert, now, "does not chain"},
		{"fail/expired", agency(), sso.Cert, sso.Cert.NotAfter.Add(time.Hour), "does not chain"},
		{"fail/not-yet-valid", agency(), sso.Cert, sso.Cert.NotBefore.Add(-time.Hour), "does not chain"},
		{"fail/no-signing-ca", &Partner{ID: "th-sso", Institution: "TH:SSO"}, sso.Cert, now, "no signing CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.TrustSigningCert(tc.cert, tc.at)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("TrustSigningCert: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
