package app

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// watched is what /metrics and /readyz report on: the certificates whose
// expiry matters and the CRLs whose next update does. It is never changed
// once published; a reload (SIGHUP) builds a new one and swaps it whole,
// while /readyz and the metrics refresh read the old one.
type watched struct {
	certs map[string]*x509.Certificate
	crls  map[string]namedCRL
}

// namedCRL is a CRL with the file it was read from.
type namedCRL struct {
	path string
	crl  *x509.RevocationList
}

// listenerTLS is what the partner listener's TLS is made of, read from the
// configuration by New and again by Reload: the client CA file is read once
// for the listener, the CRLs' signatures and the expiry gauges.
type listenerTLS struct {
	cert tls.Certificate
	cas  []*x509.Certificate // the client CAs
	crls []*x509.RevocationList
}

func loadListenerTLS(cfg *config.Config) (*listenerTLS, error) {
	cert, err := certs.LoadKeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	cas, err := certs.LoadCertificates(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	l := &listenerTLS{cert: cert, cas: cas}
	if l.crls, err = certs.LoadCRLs(cfg.File.TLS.CRLFiles, cas); err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	return l, nil
}

// identities are the gateway's own certificates for what it sends: the
// SOAP signing certificate and the outbound client certificate (each nil
// when not configured). New and Reload read them the same way.
type identities struct {
	soap     *soapSigning
	outbound *tls.Certificate
}

// soapSigning is the WS-Security signing certificate with its key.
type soapSigning struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func loadIdentities(cfg *config.Config) (*identities, error) {
	ids := &identities{}
	if sc := cfg.File.SOAP; sc.SigningCertFile != "" {
		cs, err := certs.LoadCertificates(sc.SigningCertFile)
		if err != nil {
			return nil, fmt.Errorf("soap signing certificate: %w", err)
		}
		key, err := certs.LoadKey(sc.SigningKeyFile)
		if err == nil {
			err = wssec.CheckCredential(cs[0], key)
		}
		if err != nil {
			return nil, fmt.Errorf("soap signing key: %w", err)
		}
		ids.soap = &soapSigning{cert: cs[0], key: key}
	}
	if oc := cfg.File.Outbound; oc.ClientCertFile != "" {
		c, err := certs.LoadKeyPair(oc.ClientCertFile, oc.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("outbound client certificate: %w", err)
		}
		ids.outbound = &c
	}
	return ids, nil
}

// loadKafkaCerts reads the certificates of kafka.tls, if set, by the names
// newWatched gives them.
func loadKafkaCerts(k *config.KafkaTLS) (map[string]*x509.Certificate, error) {
	if k == nil {
		return nil, nil
	}
	named := map[string]*x509.Certificate{}
	cas, err := certs.LoadCertificates(k.CAFile)
	if err != nil {
		return nil, fmt.Errorf("kafka tls: %w", err)
	}
	for i, c := range cas {
		named[fmt.Sprintf("kafka-ca-%d", i)] = c
	}
	if k.CertFile != "" {
		cs, err := certs.LoadCertificates(k.CertFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		named["kafka-client"] = cs[0]
	}
	return named, nil
}

// newWatched names the certificates in use (the server's, the client CAs',
// the operators' CAs', the partners' signing CAs', Kafka's, the gateway's
// own for what it sends) and the CRLs.
func newWatched(cfg *config.Config, f *files) *watched {
	l, ids := f.lt, f.ids
	w := &watched{certs: map[string]*x509.Certificate{}, crls: map[string]namedCRL{}}
	for i, c := range f.operatorCAs {
		w.certs[fmt.Sprintf("operator-ca-%d", i)] = c
	}
	for i, crl := range f.operatorCRLs {
		paths := cfg.File.Operator.CRLFiles
		w.crls[OperatorCRLPrefix+CRLName(paths, i)] = namedCRL{path: paths[i], crl: crl}
	}
	for name, c := range f.kafkaCerts {
		w.certs[name] = c
	}
	if ids.soap != nil {
		w.certs["soap-signing"] = ids.soap.cert
	}
	if ids.outbound != nil {
		w.certs["outbound-client"] = ids.outbound.Leaf
	}
	if l.cert.Leaf != nil {
		w.certs["server"] = l.cert.Leaf
	} else if leaf, err := x509.ParseCertificate(l.cert.Certificate[0]); err == nil {
		w.certs["server"] = leaf
	}
	for i, c := range l.cas {
		w.certs[fmt.Sprintf("client-ca-%d", i)] = c
	}
	for _, p := range cfg.Partners.All() {
		for i, c := range p.SigningCACerts { // read once, by config.Load
			w.certs[fmt.Sprintf("signing-ca:%s:%d", p.ID, i)] = c
		}
		for i, crl := range p.SigningCRLs {
			w.crls[SigningCRLPrefix(p.ID)+CRLName(p.SigningCRLFiles, i)] = namedCRL{path: p.SigningCRLFiles[i], crl: crl}
		}
		if ep := p.Endpoint; ep != nil {
			if ep.ClientCert != nil {
				w.certs["outbound-client:"+p.ID] = ep.ClientCert.Leaf
			}
			for i, c := range ep.CACerts {
				w.certs[fmt.Sprintf("endpoint-ca:%s:%d", p.ID, i)] = c
			}
			for i, crl := range ep.CRLs {
				w.crls[EndpointCRLPrefix(p.ID)+CRLName(ep.CRLFiles, i)] = namedCRL{path: ep.CRLFiles[i], crl: crl}
			}
		}
	}
	for i, crl := range l.crls {
		w.crls[CRLName(cfg.File.TLS.CRLFiles, i)] = namedCRL{path: cfg.File.TLS.CRLFiles[i], crl: crl}
	}
	return w
}

// OperatorCRLPrefix begins the name of an operators' CA's CRL in its gauge
// and readiness check; CRLName ends it.
const OperatorCRLPrefix = "operator:"

// SigningCRLPrefix begins the name of an agency's signing CA's CRL in its
// gauge and readiness check; CRLName ends it.
func SigningCRLPrefix(partnerID string) string { return "signing:" + partnerID + ":" }

// EndpointCRLPrefix begins the name of a partner endpoint's CA's CRL in
// its gauge and readiness check; CRLName ends it.
func EndpointCRLPrefix(partnerID string) string { return "endpoint:" + partnerID + ":" }

// CRLName names the i-th of the CRL files in its gauge and readiness check:
// its base name, or its path when an earlier file has the same base name.
func CRLName(paths []string, i int) string {
	name := filepath.Base(paths[i])
	for _, p := range paths[:i] {
		if filepath.Base(p) == name {
			return paths[i]
		}
	}
	return name
}

// checks are the readiness checks of the certificates and CRLs in use:
// a certificate must be valid now, a CRL not past its next update.
func (w *watched) checks(now time.Time) map[string]Check {
	checks := map[string]Check{}
	for name, c := range w.crls {
		ch := checkCRL(c, now)
		ch.Partner = partnerOf(name)
		checks["crl:"+name] = ch
	}
	for name, c := range w.certs {
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			checks["certificate:"+name] = Check{Detail: "not valid now (until " + c.NotAfter.UTC().Format(time.RFC3339) + ")", Partner: partnerOf(name)}
		} else {
			checks["certificate:"+name] = Check{OK: true, Detail: "valid until " + c.NotAfter.UTC().Format(time.RFC3339), Partner: partnerOf(name)}
		}
	}
	return checks
}

// partnerOf is the partner whose material a watched name names
// (signing-ca:P:N, outbound-client:P, endpoint-ca:P:N, signing:P:FILE,
// endpoint:P:FILE), "" for the gateway's own.
func partnerOf(name string) string {
	for _, prefix := range []string{"signing-ca:", "outbound-client:", "endpoint-ca:", "signing:", "endpoint:"} {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			p, _, _ := strings.Cut(rest, ":")
			return p
		}
	}
	return ""
}

// files are what a configuration names that the gateway reads when it
// starts and again on SIGHUP, the store apart: New, Reload and CheckConfig read
// them alike; Kafka's certificates (kafkaCerts) only New and CheckConfig,
// since the Kafka clients read them once.
type files struct {
	lt          *listenerTLS
	ids         *identities
	signer      *receipt.Signer
	operatorCAs []*x509.Certificate // nil without an operator listener
	// operatorCRLs are the operators' CAs' CRLs (operator.crl_files).
	operatorCRLs []*x509.RevocationList
	// kafkaCerts are Kafka's CA (kafka-ca-N) and client (kafka-client)
	// certificates, when kafka.tls is set. The Kafka client reads them once,
	// at start: a reload keeps the running ones in view (Gateway.kafkaCerts).
	kafkaCerts map[string]*x509.Certificate
}

// operatorPool is the pool of the operators' CAs.
func (f *files) operatorPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range f.operatorCAs {
		p.AddCert(c)
	}
	return p
}

func loadFiles(cfg *config.Config) (*files, error) {
	lt, err := loadListenerTLS(cfg)
	if err != nil {
		return nil, err
	}
	ids, err := loadIdentities(cfg)
	if err != nil {
		return nil, err
	}
	signer, err := receipt.LoadSigner(cfg.ReceiptKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("receipt key: %w (gateway certs rotate-receipt-key --config FILE makes the first)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	f := &files{lt: lt, ids: ids, signer: signer}
	if oc := cfg.File.Operator; oc.Listen != "" {
		if f.operatorCAs, err = certs.LoadCertificates(oc.ClientCAFile); err != nil {
			return nil, fmt.Errorf("operator client CA: %w", err)
		}
		if f.operatorCRLs, err = certs.LoadCRLs(oc.CRLFiles, f.operatorCAs); err != nil {
			return nil, fmt.Errorf("operator crl: %w", err)
		}
	}
	return f, nil
}

// CheckConfig reads a configuration and every file it names as the gateway does
// when it starts, and checks its certificates and CRLs as /readyz does,
// without opening the store or listening: serve --check, before a start or
// a SIGHUP. The error names the first failure; the checks are all listed.
func CheckConfig(cfg *config.Config, now time.Time) (map[string]Check, error) {
	f, err := loadFiles(cfg)
	if err != nil {
		return nil, err
	}
	if f.kafkaCerts, err = loadKafkaCerts(cfg.File.Kafka.TLS); err != nil {
		return nil, err
	}
	if len(cfg.File.Kafka.Brokers) > 0 {
		if _, err := kafkaclient.New(cfg.File.Kafka); err != nil {
			return nil, err
		}
	}
	checks := newWatched(cfg, f).checks(now)
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		if c := checks[name]; !c.OK {
			return checks, fmt.Errorf("%s: %s", name, c.Detail)
		}
	}
	return checks, nil
}

// checkCRL is a CRL's readiness: a CRL past its next update still refuses
// what it lists, but certificates revoked since are not known to the
// gateway, so it is not ready until a fresh CRL is installed (SIGHUP). This
// is stricter than ignoring the date and gentler than OpenSSL's default,
// which fails every handshake against an expired CRL.
func checkCRL(c namedCRL, now time.Time) Check {
	next := c.crl.NextUpdate
	switch {
	case next.IsZero():
		return Check{OK: true, Detail: c.path + ": no next update given"}
	case now.After(next):
		return Check{Detail: c.path + ": stale since " + next.UTC().Format(time.RFC3339) +
			"; certificates revoked since then are not known: install a fresh CRL from its issuer and reload (SIGHUP)"}
	default:
		return Check{OK: true, Detail: c.path + ": next update due " + next.UTC().Format(time.RFC3339)}
	}
}
