package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// loadPartners reads each partner's registration, its files resolved here
// once, like the others, so that what reads c.File (the expiry gauges,
// certs list) takes them as they are.
func (c *Config) loadPartners(rel func(string) string) (*partner.Registry, error) {
	ps := make([]*partner.Partner, 0, len(c.File.Partners))
	seen := map[string]bool{}
	for i := range c.File.Partners {
		pc := &c.File.Partners[i]
		pc.JWKSFile, pc.SigningCAFile = rel(pc.JWKSFile), rel(pc.SigningCAFile)
		for j, f := range pc.SigningCRLFiles {
			pc.SigningCRLFiles[j] = rel(f)
		}
		if e := pc.Endpoint; e != nil {
			e.CAFile, e.ClientCertFile, e.ClientKeyFile = rel(e.CAFile), rel(e.ClientCertFile), rel(e.ClientKeyFile)
			for j, f := range e.CRLFiles {
				e.CRLFiles[j] = rel(f)
			}
		}
		p, err := loadPartner(c.Path, i, *pc)
		if err != nil {
			return nil, err
		}
		if seen[p.ID] {
			return nil, &Error{File: c.Path, Partner: p.ID, Field: "id", Msg: "is declared twice"}
		}
		seen[p.ID] = true
		ps = append(ps, p)
	}
	return partner.NewRegistry(ps), nil
}

// loadPartner checks the i-th partner of the configuration file abs (its
// file paths resolved) and builds its registry entry: identity, keys, what
// it may submit for, and its delivery endpoint.
func loadPartner(abs string, i int, pc PartnerConfig) (*partner.Partner, error) {
	who := pc.ID
	if who == "" {
		who = fmt.Sprintf("partners[%d]", i)
	}
	var fail failFunc = func(field, format string, args ...any) error {
		return &Error{File: abs, Partner: who, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if !ValidPartnerID(pc.ID) {
		return nil, fail("id", "must be 1-64 of a-z 0-9 . _ -, starting with a letter or digit")
	}
	switch pc.Kind {
	case partner.KindEmployer, partner.KindInsurer, partner.KindAgency:
	default:
		return nil, fail("kind", "must be employer, insurer or agency, not %q", pc.Kind)
	}
	if !reCountry.MatchString(pc.Country) {
		return nil, fail("country", "must be an ISO 3166-1 alpha-2 code")
	}
	if len(pc.Formats) == 0 {
		return nil, fail("formats", "must list at least one format")
	}
	for _, fm := range pc.Formats {
		if !adapters.Known(fm) {
			return nil, fail("formats", "unknown format %q (this build reads %v)", fm, adapters.Formats())
		}
	}
	id := pc.TLSIdentity
	if id.SubjectCN == "" && id.DNSSAN == "" && len(id.SHA256) == 0 {
		return nil, fail("tls_identity", "must set subject_cn, dns_san or sha256")
	}
	for i, f := range id.SHA256 {
		if !reSHA256.MatchString(f) {
			return nil, fail(fmt.Sprintf("tls_identity.sha256[%d]", i), "must be 64 hex digits")
		}
	}
	keys, err := partnerKeys(pc, fail)
	if err != nil {
		return nil, err
	}
	p := &partner.Partner{ID: pc.ID, Kind: pc.Kind, Country: pc.Country, Formats: pc.Formats,
		Identity: partner.Identity{SubjectCN: id.SubjectCN, DNSSAN: id.DNSSAN, SHA256: id.SHA256},
		Keys:     keys, UENs: map[string]bool{}}
	if err := scope(p, pc, fail); err != nil {
		return nil, err
	}
	if e := pc.Endpoint; e != nil {
		ep, err := loadEndpoint(e, pc.Kind, fail)
		if err != nil {
			return nil, err
		}
		p.Endpoint = ep
	}
	switch {
	case pc.Kind == partner.KindAgency:
		if err := agencySigning(p, pc, fail); err != nil {
			return nil, err
		}
	case pc.Institution != "" || pc.SigningCAFile != "" || len(pc.SigningCertSHA256) > 0 || len(pc.SigningCRLFiles) > 0:
		// Set on another kind they would be ignored, a revocation with them.
		return nil, fail("kind", "only an agency has institution, signing_ca_file, signing_cert_sha256 and signing_crl_files")
	}
	return p, nil
}

// failFunc reports a problem with one field of a partner's registration.
type failFunc func(field, format string, args ...any) error

// partnerKeys reads a partner's public JWS keys, given in the file or in
// a file of their own; an agency, which signs with X.509, may have none.
func partnerKeys(pc PartnerConfig, fail failFunc) (jwk.Set, error) {
	switch {
	case pc.JWKSFile != "" && len(pc.JWKS) > 0:
		return nil, fail("jwks", "set jwks or jwks_file, not both")
	case pc.JWKSFile != "":
		kb, err := os.ReadFile(pc.JWKSFile)
		if err != nil {
			return nil, fail("jwks_file", "%v", err)
		}
		keys, err := ParsePublicJWKS(kb)
		if err != nil {
			return nil, fail("jwks_file", "%v", err)
		}
		return keys, nil
	case len(pc.JWKS) > 0:
		keys, err := ParsePublicJWKS(pc.JWKS)
		if err != nil {
			return nil, fail("jwks", "%v", err)
		}
		return keys, nil
	case pc.Kind != partner.KindAgency:
		return nil, fail("jwks", "is required (or jwks_file)")
	}
	return jwk.NewSet(), nil // agencies sign with X.509 (WS-Security), not JWS
}

// scope sets what a partner may report for: its UENs (and, as an agent,
// others' or "*" for any), and its insurer codes ("*" for any).
func scope(p *partner.Partner, pc PartnerConfig, fail failFunc) error {
	for _, l := range []struct {
		field string
		uens  []string
	}{{"uens", pc.UENs}, {"agent_for_uens", pc.AgentForUENs}} {
		for _, u := range l.uens {
			switch {
			case u == "*" && l.field == "agent_for_uens":
				p.AnyUEN = true
			case reUEN.MatchString(u):
				p.UENs[u] = true
			default:
				return fail(l.field, "%q is not a UEN", u)
			}
		}
	}
	p.InsurerCodes = map[string]bool{}
	for _, code := range pc.InsurerCodes {
		switch {
		case code == "*":
			p.AnyInsurer = true
		case reInsurerCode.MatchString(code):
			p.InsurerCodes[code] = true
		default:
			return fail("insurer_codes", "%q is not an insurer code", code)
		}
	}
	return nil
}

// agencySigning sets an agency's institution and what its WS-Security
// signatures must chain to (its signing CA file) or be pinned to.
func agencySigning(p *partner.Partner, pc PartnerConfig, fail failFunc) error {
	if !reInstitution.MatchString(pc.Institution) {
		return fail("institution", "an agency needs an institution id such as TH:SSO")
	}
	if pc.SigningCAFile == "" {
		return fail("signing_ca_file", "an agency needs the CA of its WS-Security signing certificates")
	}
	cas, err := certs.LoadCertificates(pc.SigningCAFile)
	if err != nil {
		return fail("signing_ca_file", "%v", err)
	}
	p.Institution, p.SigningCAs, p.SigningCACerts = pc.Institution, x509.NewCertPool(), cas
	for _, c := range cas {
		p.SigningCAs.AddCert(c)
	}
	p.SigningPins = map[string]bool{}
	for _, f := range pc.SigningCertSHA256 {
		if !reSHA256.MatchString(f) {
			return fail("signing_cert_sha256", "%q is not 64 hex digits", f)
		}
		p.SigningPins[strings.ToLower(f)] = true
	}
	if p.SigningCRLs, err = certs.LoadCRLs(pc.SigningCRLFiles, cas); err != nil {
		return fail("signing_crl_files", "%v", err)
	}
	p.SigningCRLFiles, p.SigningRevoked = pc.SigningCRLFiles, certs.NewRevocations(p.SigningCRLs)
	return nil
}

// MinResponseBytes and MaxResponseBytes bound an endpoint's
// max_response_bytes: an answer is read whole into memory (and a SOAP
// one parsed and canonicalised, a few times its size), once for each
// attempt under way.
const (
	MinResponseBytes = 64 << 10
	MaxResponseBytes = 256 << 20
)

// loadEndpoint checks a partner's delivery endpoint and policy; fail
// locates an error in the partner's entry.
func loadEndpoint(e *EndpointConfig, kind string, fail failFunc) (*partner.Endpoint, error) {
	if !strings.HasPrefix(e.URL, "https://") {
		return nil, fail("endpoint.url", "must be an https URL")
	}
	if e.Protocol != "json" && e.Protocol != "soap" {
		return nil, fail("endpoint.protocol", "must be json or soap")
	}
	if e.Protocol == "soap" && kind != partner.KindAgency {
		return nil, fail("endpoint.protocol", "soap is for agencies")
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"max_attempts", e.MaxAttempts}, {"concurrency", e.Concurrency}, {"breaker_failures", e.BreakerFailures}} {
		if n.v < 0 {
			return nil, fail("endpoint."+n.field, "must be positive (or absent for the default)")
		}
	}
	if e.MaxResponseBytes != 0 && (e.MaxResponseBytes < MinResponseBytes || e.MaxResponseBytes > MaxResponseBytes) {
		return nil, fail("endpoint.max_response_bytes", "must be %d to %d (or absent for the default)", MinResponseBytes, MaxResponseBytes)
	}
	ep := partner.Endpoint{URL: e.URL, Protocol: e.Protocol, Timeout: time.Duration(e.Timeout), MaxAttempts: e.MaxAttempts,
		BaseBackoff: time.Duration(e.BaseBackoff), MaxBackoff: time.Duration(e.MaxBackoff), Concurrency: e.Concurrency,
		BreakerFailures: e.BreakerFailures, BreakerCooldown: time.Duration(e.BreakerCooldown), MaxResponseBytes: e.MaxResponseBytes}
	// Compared as they will apply, defaults filled in: a base_backoff over
	// the default max_backoff would be cut to it without a word.
	if eff := ep.WithDefaults(); eff.MaxBackoff < eff.BaseBackoff {
		return nil, fail("endpoint.max_backoff", "%s must not be shorter than base_backoff %s (absent: the default)", eff.MaxBackoff, eff.BaseBackoff)
	}
	if e.CAFile != "" {
		cas, err := certs.LoadCertificates(e.CAFile)
		if err != nil {
			return nil, fail("endpoint.ca_file", "%v", err)
		}
		ep.RootCAs, ep.CACerts = x509.NewCertPool(), cas
		for _, c := range cas {
			ep.RootCAs.AddCert(c)
		}
	}
	if len(e.CRLFiles) > 0 && e.CAFile == "" {
		return nil, fail("endpoint.crl_files", "needs ca_file: a CRL is taken from a CA named there")
	}
	var err error
	if ep.CRLs, err = certs.LoadCRLs(e.CRLFiles, ep.CACerts); err != nil {
		return nil, fail("endpoint.crl_files", "%v", err)
	}
	ep.CRLFiles, ep.Revoked = e.CRLFiles, certs.NewRevocations(ep.CRLs)
	switch {
	case e.ClientCertFile == "" && e.ClientKeyFile == "":
	case e.ClientCertFile == "":
		return nil, fail("endpoint.client_cert_file", "required with client_key_file")
	case e.ClientKeyFile == "":
		return nil, fail("endpoint.client_key_file", "required with client_cert_file")
	default:
		c, err := certs.LoadKeyPair(e.ClientCertFile, e.ClientKeyFile)
		if err != nil {
			return nil, fail("endpoint.client_cert_file", "%v", err)
		}
		ep.ClientCert = &c
	}
	return &ep, nil
}

// ParsePublicJWKS reads a partner's JWKS: public keys only, each with a
// unique kid, of a type the intake accepts (EC P-256/P-384, Ed25519, RSA of
// at least 2048 bits).
func ParsePublicJWKS(b []byte) (jwk.Set, error) {
	// A key with a member given twice (two "x", two "kid") is two keys to
	// two readers; jwk.Parse takes the last without a word.
	if _, err := jsondoc.Parse(b, 0); err != nil {
		return nil, errors.New("not a JWKS: " + jsondoc.Reason(err))
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	kids := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			return nil, fmt.Errorf("key %d has no kid", i)
		}
		if kids[kid] {
			return nil, fmt.Errorf("kid %q appears twice", kid)
		}
		kids[kid] = true
		if _, err := jwk.PublicRawKeyOf(k); err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		if isPrivate(k) {
			return nil, fmt.Errorf("key %q is a private key; register only public keys", kid)
		}
		if !jwsin.ForSignatures(k) {
			return nil, fmt.Errorf("key %q is not for verifying signatures (its use or key_ops says otherwise)", kid)
		}
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		switch rk := raw.(type) {
		case *rsa.PublicKey:
			if rk.N.BitLen() < 2048 {
				return nil, fmt.Errorf("key %q: RSA key of %d bits; at least 2048 required", kid, rk.N.BitLen())
			}
		case *ecdsa.PublicKey:
			if n := rk.Curve.Params().Name; n != "P-256" && n != "P-384" {
				return nil, fmt.Errorf("key %q: curve %s not accepted", kid, n)
			}
		case ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("key %q: key type %T not accepted", kid, raw)
		}
	}
	return set, nil
}

func isPrivate(k jwk.Key) bool {
	switch k.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey, jwk.SymmetricKey:
		return true
	}
	return false
}
