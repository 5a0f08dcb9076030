package partner

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/rand/v2"
	"slices"
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
		{"ok/every-field", []*Partner{{ID: "a", Identity: Identity{SubjectCN: "acme-hr", DNSSAN: "acme.example.sg", SHA256: []string{certs.Fingerprint(acme), strings.ToUpper(certs.Fingerprint(acme))}}}}, acme, "a"},
		{"ok/pin-upper-case", []*Partner{{ID: "a", Identity: Identity{SHA256: []string{strings.ToUpper(certs.Fingerprint(acme))}}}}, acme, "a"},
		{"ok/other-field-differs", []*Partner{{ID: "a", Identity: Identity{SubjectCN: "acme-hr", DNSSAN: "other.example.sg"}}, {ID: "b", Identity: Identity{SubjectCN: "acme-hr", DNSSAN: "acme.example.sg"}}}, acme, "b"},
		{"fail/pin-differs", []*Partner{{ID: "a", Identity: Identity{SubjectCN: "acme-hr", SHA256: []string{certs.Fingerprint(other)}}}}, acme, ""},
		{"fail/two-by-pin", []*Partner{{ID: "a", Identity: Identity{SHA256: []string{certs.Fingerprint(acme)}}}, {ID: "b", Identity: Identity{SubjectCN: "acme-hr"}}}, acme, ""},
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

// TestByCertificateAgreesWithScan: the registry's index finds what
// comparing the certificate with every partner finds, over registries whose
// identities share values in every combination.
func TestByCertificateAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	cert := func() *x509.Certificate {
		c := &x509.Certificate{Raw: []byte(pick("c1", "c2", "c3")), Subject: pkix.Name{CommonName: pick("", "a", "b")}}
		for range rng.IntN(3) {
			c.DNSNames = append(c.DNSNames, pick("x.sg", "y.sg", "z.sg"))
		}
		return c
	}
	pins := []string{certs.Fingerprint(&x509.Certificate{Raw: []byte("c1")}), certs.Fingerprint(&x509.Certificate{Raw: []byte("c2")}), strings.Repeat("0", 64)}
	for round := range 300 {
		ps := make([]*Partner, 1+rng.IntN(5))
		for i := range ps {
			ps[i] = &Partner{ID: fmt.Sprint(i), Identity: Identity{SubjectCN: pick("", "", "a", "b"), DNSSAN: pick("", "", "x.sg", "y.sg")}}
			for range rng.IntN(3) {
				ps[i].Identity.SHA256 = append(ps[i].Identity.SHA256, pick(pins...))
			}
		}
		r := NewRegistry(ps)
		for range 20 {
			c := cert()
			var want *Partner
			n := 0
			for _, p := range ps {
				if p.Identity.Matches(c) {
					want, n = p, n+1
				}
			}
			if n != 1 {
				want = nil
			}
			if got, _ := r.ByCertificate(c); got != want {
				t.Fatalf("round %d: certificate %q %v %q: found %v, a scan finds %v", round, c.Subject.CommonName, c.DNSNames, c.Raw, got, want)
			}
		}
	}
}

// TestReceivers: the partners with an endpoint, in configuration order,
// and after a Replace the other registry's.
func TestReceivers(t *testing.T) {
	ids := func(ps []*Partner) (out []string) {
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	r := NewRegistry([]*Partner{{ID: "employer"}, {ID: "agency", Endpoint: &Endpoint{}}, {ID: "insurer", Endpoint: &Endpoint{}}})
	if got := ids(r.Receivers()); !slices.Equal(got, []string{"agency", "insurer"}) {
		t.Fatalf("Receivers = %v", got)
	}
	r.Replace(NewRegistry([]*Partner{{ID: "insurer", Endpoint: &Endpoint{}}, {ID: "agency"}}))
	if got := ids(r.Receivers()); !slices.Equal(got, []string{"insurer"}) {
		t.Fatalf("after Replace, Receivers = %v", got)
	}
}

// BenchmarkByCertificate finds a partner among 10,000 registered, each by
// its certificate's fingerprint, as a handshake and every request do.
func BenchmarkByCertificate(b *testing.B) {
	const n = 10000
	ps, cs := make([]*Partner, n), make([]*x509.Certificate, n)
	for i := range ps {
		cs[i] = &x509.Certificate{Raw: []byte(fmt.Sprint("certificate ", i)), Subject: pkix.Name{CommonName: fmt.Sprint("employer-", i)}}
		ps[i] = &Partner{ID: fmt.Sprint("employer-", i), Identity: Identity{SHA256: []string{certs.Fingerprint(cs[i])}}}
	}
	r := NewRegistry(ps)
	i := 0
	for b.Loop() {
		if _, ok := r.ByCertificate(cs[i]); !ok {
			b.Fatal("not found")
		}
		i = (i + 7919) % n
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
	revoked, _ := ca.IssueSigning("TH:SSO", nil)
	crl, err := ca.RevocationList(1, revoked.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	agency := func(pins ...*x509.Certificate) *Partner {
		p := &Partner{ID: "th-sso", Kind: KindAgency, Institution: "TH:SSO", SigningCAs: pool,
			SigningRevoked: certs.NewRevocations([]*x509.RevocationList{crl})}
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
		{"fail/revoked", agency(), revoked.Cert, now, "revoked"},
		{"fail/revoked-though-pinned", agency(revoked.Cert), revoked.Cert, now, "revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.TrustSigningCert(tc.cert, tc.at)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("TrustSigningCert: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestWithDefaults: a policy value left at zero (or below) takes its
// default, the README's; one that is set is kept.
func TestWithDefaults(t *testing.T) {
	want := Endpoint{Timeout: 10 * time.Second, MaxAttempts: 8, BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute,
		Concurrency: 2, BreakerFailures: 5, BreakerCooldown: 30 * time.Second}
	set := Endpoint{Timeout: 3 * time.Second, MaxAttempts: 1, BaseBackoff: time.Millisecond, MaxBackoff: time.Hour,
		Concurrency: 1, BreakerFailures: 1, BreakerCooldown: time.Minute, MaxResponseBytes: 7}
	negative := Endpoint{Timeout: -1, MaxAttempts: -1, BaseBackoff: -1, MaxBackoff: -1, Concurrency: -1, BreakerFailures: -1, BreakerCooldown: -1}
	for _, tc := range []struct {
		name    string
		in, out Endpoint
	}{
		{"ok/zero-takes-defaults", Endpoint{}, want},
		{"ok/negative-takes-defaults", negative, want},
		{"ok/set-is-kept", set, set},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.WithDefaults(); fmt.Sprint(got) != fmt.Sprint(tc.out) {
				t.Fatalf("WithDefaults:\n got %+v\nwant %+v", got, tc.out)
			}
		})
	}
}

func TestAccepts(t *testing.T) {
	p := &Partner{Formats: []string{"sg-employer-notice/v1", "sg-insurer-claim/v1"}}
	for _, f := range []string{"sg-employer-notice/v1", "sg-insurer-claim/v1"} {
		if !p.Accepts(f) {
			t.Fatalf("%s refused", f)
		}
	}
	if p.Accepts("agency-soap/v1") || p.Accepts("") || (&Partner{}).Accepts("sg-employer-notice/v1") {
		t.Fatal("a format not registered is accepted")
	}
}
