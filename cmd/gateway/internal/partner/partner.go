// Package partner is the registry of the partners the gateway accepts: who
// they are, which TLS client certificate authenticates them, which keys sign
// their messages and which employers they may report for. Anything not in the
// registry is refused.
package partner

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/certs"
)

// Kinds of partner.
const (
	KindEmployer = "employer"
	KindInsurer  = "insurer"
	KindAgency   = "agency"
)

// Identity is how a TLS client certificate (already verified against the
// configured client CA) is bound to a partner. Every non-empty field must
// match; at least one is set.
type Identity struct {
	SubjectCN string   // certificate subject common name
	DNSSAN    string   // a DNS subject alternative name
	SHA256    []string // hex SHA-256 fingerprints (pinning): the certificate's is one of them
}

// Matches reports whether the certificate carries this identity.
func (id Identity) Matches(c *x509.Certificate) bool {
	return id.matches(c, certs.Fingerprint(c))
}

// matches is Matches with the certificate's fingerprint fp.
func (id Identity) matches(c *x509.Certificate, fp string) bool {
	if id.SubjectCN == "" && id.DNSSAN == "" && len(id.SHA256) == 0 {
		return false
	}
	if id.SubjectCN != "" && c.Subject.CommonName != id.SubjectCN {
		return false
	}
	if id.DNSSAN != "" {
		found := false
		for _, n := range c.DNSNames {
			if n == id.DNSSAN {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(id.SHA256) > 0 {
		if !slices.ContainsFunc(id.SHA256, func(pin string) bool { return strings.EqualFold(fp, pin) }) {
			return false
		}
	}
	return true
}

// Partner is one registered sender.
type Partner struct {
	ID       string
	Kind     string
	Country  string
	Formats  []string
	Identity Identity
	// Keys is the partner's public signing keys; several for rotation. A
	// message's kid selects among them and nothing else supplies a key.
	Keys jwk.Set
	// UENs the partner may report for, as employer or submitting agent.
	UENs   map[string]bool
	AnyUEN bool // a submitting agent authorised for every UEN (dev mode)

	// Endpoint is where Perkeso delivers outbound messages to this partner
	// (agencies and insurers); nil when it receives none.
	Endpoint *Endpoint

	// Insurers: the insurer codes the partner's keys are registered for.
	InsurerCodes map[string]bool
	AnyInsurer   bool // dev mode

	// Agencies: the institution id, the CAs of its WS-Security signing
	// certificates and, optionally, pinned certificate fingerprints.
	Institution    string
	SigningCAs     *x509.CertPool
	SigningCACerts []*x509.Certificate // SigningCAs' certificates, for their expiry gauges
	SigningPins    map[string]bool
	// SigningCRLs are the signing CAs' CRLs, read from SigningCRLFiles, and
	// SigningRevoked what they list: a revoked signing certificate is not
	// trusted, pinned or not.
	SigningCRLs     []*x509.RevocationList
	SigningCRLFiles []string
	SigningRevoked  certs.Revocations
}

// TrustSigningCert decides whether a WS-Security signing certificate belongs
// to this agency: it chains to the agency's signing CA, is within its
// validity, is not revoked (agency-soap/v1 §3), and either is pinned or
// names the institution as subject CN.
func (p *Partner) TrustSigningCert(c *x509.Certificate, now time.Time) error {
	if p.SigningCAs == nil {
		return errors.New("partner has no signing CA registered")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: p.SigningCAs, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("signing certificate does not chain to the registered CA: %w", err)
	}
	if p.SigningRevoked.Lists(c) {
		return errors.New("signing certificate revoked")
	}
	if len(p.SigningPins) > 0 {
		if !p.SigningPins[certs.Fingerprint(c)] {
			return errors.New("signing certificate is not one of the registered fingerprints")
		}
		return nil
	}
	if c.Subject.CommonName != p.Institution {
		return fmt.Errorf("signing certificate is not issued to %s", p.Institution)
	}
	return nil
}

// Accepts reports whether the partner is registered for a format.
func (p *Partner) Accepts(format string) bool {
	return slices.Contains(p.Formats, format)
}

// AuthorisedFor reports whether the partner may report for an employer UEN.
func (p *Partner) AuthorisedFor(uen string) bool { return p.AnyUEN || p.UENs[uen] }

// Endpoint is a partner's receiving endpoint and its delivery policy.
type Endpoint struct {
	URL      string
	Protocol string // json or soap
	RootCAs  *x509.CertPool
	// CACerts are RootCAs' certificates (ca_file), for their expiry
	// gauges; nil with the system's roots. CRLs are their CRLs, read from
	// CRLFiles, and Revoked what they list: a server whose certificate
	// they revoke is refused in the handshake.
	CACerts  []*x509.Certificate
	CRLs     []*x509.RevocationList
	CRLFiles []string
	Revoked  certs.Revocations
	// ClientCert is the client certificate presented to this endpoint
	// (its Leaf set), when the partner issued Perkeso one of its own; nil:
	// the gateway's outbound client certificate.
	ClientCert      *tls.Certificate
	Timeout         time.Duration
	MaxAttempts     int
	BaseBackoff     time.Duration
	MaxBackoff      time.Duration
	Concurrency     int
	BreakerFailures int
	BreakerCooldown time.Duration
	// MaxResponseBytes bounds what the gateway reads of the endpoint's
	// answer; 0: its sender's default (1 MiB JSON, 8 MiB SOAP). An
	// agency's InformationReply may hold documents of up to 5 MiB each,
	// five to an item (agency-soap/v1 §6.3), more than the default.
	MaxResponseBytes int
}

// WithDefaults fills in the delivery policy's defaults.
func (e Endpoint) WithDefaults() Endpoint {
	if e.Timeout <= 0 {
		e.Timeout = 10 * time.Second
	}
	if e.MaxAttempts <= 0 {
		e.MaxAttempts = 8
	}
	if e.BaseBackoff <= 0 {
		e.BaseBackoff = time.Second
	}
	if e.MaxBackoff <= 0 {
		e.MaxBackoff = 5 * time.Minute
	}
	if e.Concurrency <= 0 {
		e.Concurrency = 2
	}
	if e.BreakerFailures <= 0 {
		e.BreakerFailures = 5
	}
	if e.BreakerCooldown <= 0 {
		e.BreakerCooldown = 30 * time.Second
	}
	return e
}

// AuthorisedForInsurer reports whether the partner may send for an insurer code.
func (p *Partner) AuthorisedForInsurer(code string) bool { return p.AnyInsurer || p.InsurerCodes[code] }

// Registry finds partners by their TLS certificate. Its content can be
// replaced whole (on SIGHUP) while requests read it.
type Registry struct {
	mu       sync.RWMutex
	partners []*Partner
	byID     map[string]*Partner
	// receivers are the partners with an endpoint, for the deliverer's
	// rounds: a few agencies and insurers among thousands of employers.
	receivers []*Partner
	// byIdentity finds the partners a certificate may name by each value
	// their identities set ("cn:", "dns:", "sha256:" and the value; pins in
	// lower case), so a handshake and a request check a few partners, not
	// all: with 10,000 registered, every request compared them all and
	// hashed the certificate once for each pinning partner.
	byIdentity map[string][]*Partner
}

// Replace swaps in another registry's partners, atomically for readers.
func (r *Registry) Replace(other *Registry) {
	other.mu.RLock()
	ps, ids, idents, recv := other.partners, other.byID, other.byIdentity, other.receivers
	other.mu.RUnlock()
	r.mu.Lock()
	r.partners, r.byID, r.byIdentity, r.receivers = ps, ids, idents, recv
	r.mu.Unlock()
}

// NewRegistry builds a registry; ids must be unique (the config loader checks).
func NewRegistry(ps []*Partner) *Registry {
	r := &Registry{partners: ps, byID: map[string]*Partner{}, byIdentity: map[string][]*Partner{}}
	for _, p := range ps {
		r.byID[p.ID] = p
		if p.Endpoint != nil {
			r.receivers = append(r.receivers, p)
		}
		id := p.Identity
		if id.SubjectCN != "" {
			r.byIdentity["cn:"+id.SubjectCN] = append(r.byIdentity["cn:"+id.SubjectCN], p)
		}
		if id.DNSSAN != "" {
			r.byIdentity["dns:"+id.DNSSAN] = append(r.byIdentity["dns:"+id.DNSSAN], p)
		}
		for _, pin := range id.SHA256 {
			k := "sha256:" + strings.ToLower(pin)
			if !slices.Contains(r.byIdentity[k], p) {
				r.byIdentity[k] = append(r.byIdentity[k], p)
			}
		}
	}
	return r
}

// ByCertificate returns the partner whose identity the certificate carries.
// A certificate that matches no partner, or more than one, gives false.
// Every field an identity sets must match, so a matching partner is found
// under each of them; those found under any are checked whole.
func (r *Registry) ByCertificate(c *x509.Certificate) (*Partner, bool) {
	fp := certs.Fingerprint(c)
	keys := make([]string, 0, 2+len(c.DNSNames))
	keys = append(keys, "cn:"+c.Subject.CommonName, "sha256:"+fp)
	for _, n := range c.DNSNames {
		keys = append(keys, "dns:"+n)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var found *Partner
	for _, k := range keys {
		for _, p := range r.byIdentity[k] {
			if p == found || !p.Identity.matches(c, fp) {
				continue
			}
			if found != nil {
				return nil, false
			}
			found = p
		}
	}
	return found, found != nil
}

// ByID returns a partner by id.
func (r *Registry) ByID(id string) (*Partner, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.byID[id]
	return p, ok
}

// Receivers lists the partners with an endpoint, in configuration order.
func (r *Registry) Receivers() []*Partner {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.receivers
}

// All lists the partners in configuration order.
func (r *Registry) All() []*Partner {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.partners
}
