package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// TLS holds the listener's mutual-TLS configuration: TLS 1.2 at least (1.3
// preferred by Go's negotiation), a client certificate required and verified
// against the client CA, and refused in the handshake unless it names
// exactly one registered partner and no CRL of its issuer revokes it. A
// reload (SIGHUP) swaps the certificate, client CAs and CRLs for new
// handshakes without closing the connections already open.
type TLS struct {
	partners *partner.Registry
	cur      atomic.Pointer[tls.Config]
	revoked  atomic.Pointer[certs.Revocations]
	anchors  atomic.Pointer[map[string]*x509.Certificate] // the client CAs by anchorKey
}

// NewTLS builds the holder.
func NewTLS(cert tls.Certificate, clientCAs []*x509.Certificate, crls []*x509.RevocationList, partners *partner.Registry) *TLS {
	t := &TLS{partners: partners}
	t.Set(cert, clientCAs, crls)
	return t
}

// Set swaps the certificate, client CAs and CRLs.
func (t *TLS) Set(cert tls.Certificate, cas []*x509.Certificate, crls []*x509.RevocationList) {
	clientCAs, anchors := x509.NewCertPool(), map[string]*x509.Certificate{}
	for _, ca := range cas {
		clientCAs.AddCert(ca)
		anchors[anchorKey(ca)] = ca
	}
	c := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        clientCAs,
		CipherSuites:     certs.Suites(),
		VerifyConnection: t.verify,
	}
	revoked := certs.NewRevocations(crls)
	t.revoked.Store(&revoked)
	t.anchors.Store(&anchors)
	t.cur.Store(c)
}

func (t *TLS) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("client certificate required")
	}
	_, err := t.check(cs.PeerCertificates[0], cs.VerifiedChains)
	return err
}

// check is the partner a connection's client certificate names, refused if
// the current CRLs revoke it, or an issuing CA in each of its verified
// chains, or it names no registered partner: the handshake's check, which
// requests repeat.
func (t *TLS) check(leaf *x509.Certificate, chains [][]*x509.Certificate) (*partner.Partner, error) {
	if err := revokedIn(*t.revoked.Load(), leaf, chains); err != nil {
		return nil, err
	}
	p, ok := t.partners.ByCertificate(leaf)
	if !ok {
		return nil, errors.New("client certificate does not belong to a registered partner")
	}
	return p, nil
}

// revokedIn refuses a connection whose client certificate the CRLs list,
// or whose every verified chain holds a listed CA between the certificate
// and the chain's anchor: a partner CA that issues through an intermediate
// is revoked by its root's CRL (the anchor itself is distrusted by taking
// it out of the bundle). Only the client certificate was looked up before.
func revokedIn(revoked certs.Revocations, leaf *x509.Certificate, chains [][]*x509.Certificate) error {
	if len(revoked) == 0 {
		return nil
	}
	if revoked.Lists(leaf) {
		return errors.New("client certificate revoked")
	}
	if len(chains) == 0 || revoked.Spares(chains) {
		return nil
	}
	return errors.New("an issuing CA of the client certificate is revoked")
}

// CheckConnection is check for a request on an open connection, whose
// handshake may predate the current material: its client certificate must
// chain to a current client CA, as a new handshake's would. A connection
// opened before a reload that took its CA out of the bundle was served on
// until it closed; a client certificate that expired while its connection
// stayed open, likewise. Most requests settle it with a lookup (chainsTo);
// when the bundle changed so that the handshake's chains no longer reach it
// (an issuing CA replaced by its root), the chain is verified again, so
// that no connection a new handshake would let in is refused (a 403, which
// a partner's client does not retry).
func (t *TLS) CheckConnection(cs *tls.ConnectionState, now time.Time) (*partner.Partner, error) {
	chains := cs.VerifiedChains
	if !chainsTo(chains, *t.anchors.Load(), now) {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		var err error
		chains, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: t.cur.Load().ClientCAs, Intermediates: inter,
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return nil, errors.New("client certificate no longer chains to a trusted client CA, or is outside its validity")
		}
	}
	return t.check(cs.PeerCertificates[0], chains)
}

// chainsTo reports whether one of chains, each verified in a handshake,
// passes through a CA of anchors (by anchorKey), every certificate below it
// and the CA as the bundle has it now valid at now. The chain's signatures
// were checked then; that it reaches a CA still trusted is a lookup.
// (crypto/tls asks the same of a session it resumes, of the chain's last
// certificate.)
func chainsTo(chains [][]*x509.Certificate, anchors map[string]*x509.Certificate, now time.Time) bool {
	invalid := func(c *x509.Certificate) bool { return now.Before(c.NotBefore) || now.After(c.NotAfter) }
	for _, chain := range chains {
		for i, c := range chain {
			if a := anchors[anchorKey(c)]; a != nil {
				if !invalid(a) && !slices.ContainsFunc(chain[:i], invalid) {
					return true
				}
				break
			}
		}
	}
	return false
}

// anchorKey names a CA by its subject and public key, not its DER: a CA
// certificate issued again for the same key (renewed) verifies what the
// old one did, and a reload that brings it must not refuse the
// connections made under the old one (each would have been answered 403,
// a refusal a partner's client does not retry).
func anchorKey(c *x509.Certificate) string {
	return string(c.RawSubject) + "\x00" + string(c.RawSubjectPublicKeyInfo)
}

// Certificate is the server certificate as the last Set gave it (the
// operator listener presents it too).
func (t *TLS) Certificate() *tls.Certificate { return &t.cur.Load().Certificates[0] }

// Config is the listener's tls.Config: every handshake takes the current one.
func (t *TLS) Config() *tls.Config {
	base := t.cur.Load().Clone()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.cur.Load(), nil }
	return base
}
