// Package certs issues and loads the X.509 material of the gateway: a
// development CA with server and partner client certificates, PEM files on
// disk, and the identity of a partner read from its TLS client certificate.
//
// Production deployments bring their own certificates; only dev mode and the
// tests issue any.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"time"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Issued is a certificate with its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// now is the clock seam of the package.
var now = time.Now

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

// NewCA creates a self-signed ECDSA P-256 root valid for ten years.
func NewCA(commonName string) (*CA, error) {
	return createCA(&x509.Certificate{
		Subject:        pkix.Name{CommonName: commonName, Organization: []string{"Jambatan development"}},
		NotAfter:       now().AddDate(10, 0, 0),
		MaxPathLenZero: true,
	}, nil)
}

// NewCAChain creates a root and an issuing CA below it, ECDSA P-256, for
// tests of chains through an intermediate, the shape of many partners'
// PKIs: NewCA's roots issue no CA.
func NewCAChain(rootCN, issuingCN string) (root, issuing *CA, err error) {
	if root, err = newCA(rootCN, nil); err != nil {
		return nil, nil, err
	}
	issuing, err = newCA(issuingCN, root)
	return root, issuing, err
}

// newCA makes a CA for cn valid for a day, signed by parent (nil:
// self-signed), that may issue CAs.
func newCA(cn string, parent *CA) (*CA, error) {
	return createCA(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotAfter: now().Add(24 * time.Hour)}, parent)
}

// createCA makes a CA of tmpl (its subject, end and path length), with a new
// ECDSA P-256 key, valid from an hour ago, signed by parent (nil:
// self-signed).
func createCA(tmpl *x509.Certificate, parent *CA) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber, tmpl.NotBefore = serial(), now().Add(-time.Hour)
	tmpl.KeyUsage, tmpl.BasicConstraintsValid, tmpl.IsCA = x509.KeyUsageCertSign|x509.KeyUsageCRLSign, true, true
	signer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c, Key: key}, nil
}

// IssueServer issues a TLS server certificate for the given names and IPs.
func (ca *CA) IssueServer(commonName string, dnsNames []string, ips []net.IP) (*Issued, error) {
	return ca.issue(commonName, dnsNames, ips, x509.ExtKeyUsageServerAuth, nil)
}

// IssueClient issues a TLS client certificate (ECDSA P-256) whose subject CN
// and DNS SAN name the partner.
func (ca *CA) IssueClient(commonName string) (*Issued, error) {
	return ca.issue(commonName, []string{commonName}, nil, x509.ExtKeyUsageClientAuth, nil)
}

// IssueSigning issues a certificate for signing documents (e.g. WS-Security)
// with the given key; a nil key means a new ECDSA P-256 key.
func (ca *CA) IssueSigning(commonName string, key crypto.Signer) (*Issued, error) {
	return ca.issue(commonName, nil, nil, 0, key)
}

// IssueRSASigning issues a signing certificate with a new RSA 2048 key: an
// agency's WS-Security certificate, as agencies' PKIs commonly issue them.
func (ca *CA) IssueRSASigning(commonName string) (*Issued, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return ca.IssueSigning(commonName, k)
}

func (ca *CA) issue(cn string, dns []string, ips []net.IP, eku x509.ExtKeyUsage, key crypto.Signer) (*Issued, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key = k
	}
	cert, err := ca.issueFor(cn, dns, ips, eku, key.Public())
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key}, nil
}

// IssueFromCSR issues a certificate to commonName for the key of a
// certificate signing request (PEM), so that the key never leaves its
// owner: a client certificate (eku ExtKeyUsageClientAuth) or a signing one
// (0). The request must be signed by its key (proof of possession), and the
// key one the gateway's TLS and signature policies take: ECDSA P-256 or
// P-384, Ed25519, or RSA of at least 2048 bits. The request's own subject
// and extensions are not copied.
func (ca *CA) IssueFromCSR(commonName string, csrPEM []byte, eku x509.ExtKeyUsage) (*x509.Certificate, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
		return nil, errors.New("not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the request is not signed by its key: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("ECDSA key on %s: P-256 or P-384 only", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048", k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("key type %T: ECDSA, RSA or Ed25519 only", k)
	}
	var dns []string
	if eku == x509.ExtKeyUsageClientAuth {
		dns = []string{commonName}
	}
	return ca.issueFor(commonName, dns, nil, eku, csr.PublicKey)
}

// issueFor issues a certificate for a public key.
func (ca *CA) issueFor(cn string, dns []string, ips []net.IP, eku x509.ExtKeyUsage, pub crypto.PublicKey) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now().Add(-time.Hour),
		NotAfter:     now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	if eku != 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{eku}
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Fingerprint is the lower-case hex SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// CertPEM encodes a certificate.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes a private key as PKCS #8.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes a certificate (0644) and its key (0600) as PEM.
func WriteFiles(certPath, keyPath string, c *x509.Certificate, k crypto.Signer) error {
	if err := os.WriteFile(certPath, CertPEM(c), 0o644); err != nil {
		return err
	}
	kp, err := KeyPEM(k)
	if err != nil {
		return err
	}
	return os.WriteFile(keyPath, kp, 0o600)
}

// LoadCertificates reads every certificate of a PEM file.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return out, nil
}

// LoadPool reads a PEM bundle into a certificate pool.
func LoadPool(path string) (*x509.CertPool, error) {
	cs, err := LoadCertificates(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p, nil
}

// LoadKey reads the PEM private key of a file (PKCS #8, PKCS #1 or SEC 1).
// It passes over the other blocks OpenSSL writes beside a key, as
// tls.X509KeyPair does: the EC PARAMETERS of `openssl ecparam -genkey`, the
// certificate of a combined file. An encrypted key is refused by name.
func LoadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return nil, fmt.Errorf("%s: no private key (a PEM block PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", path)
		}
		if blk.Type == "ENCRYPTED PRIVATE KEY" || blk.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return nil, fmt.Errorf("%s: the private key is encrypted; write it unencrypted for the gateway (openssl pkey -in KEY -out PLAIN), readable by the gateway alone", path)
		}
		var k any
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New(path + ": key cannot sign")
		}
		return s, nil
	}
}

// LoadKeyPair reads a TLS certificate, with the chain after it in its
// file, and its private key, as tls.LoadX509KeyPair does, but reads the key
// as LoadKey does: an encrypted key is refused by name (the standard
// library says only that it failed to parse it), and so is a key that is
// not the certificate's. Leaf is set.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	cs, err := LoadCertificates(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	k, err := LoadKey(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !IsKeyOf(k, cs[0]) {
		return tls.Certificate{}, fmt.Errorf("%s is not the key of the certificate in %s", keyPath, certPath)
	}
	c := tls.Certificate{PrivateKey: k, Leaf: cs[0]}
	for _, x := range cs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

// LoadCA reads a CA certificate and key written by WriteFiles.
func LoadCA(certPath, keyPath string) (*CA, error) {
	cs, err := LoadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	k, err := LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	// A key that is not the certificate's issues certificates that chain
	// to nothing: refuse it here rather than at each partner's handshake.
	if !IsKeyOf(k, cs[0]) {
		return nil, fmt.Errorf("%s is not the key of the certificate in %s", keyPath, certPath)
	}
	return &CA{Cert: cs[0], Key: k}, nil
}

// IsKeyOf reports whether key is the private half of cert's public key.
func IsKeyOf(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// Revocations is the set of certificates some CRLs list, each named by its
// issuer and serial number as a CRL names it, so that a certificate is
// looked up in one step however long the CRLs. The nil set lists nothing.
type Revocations map[string]struct{}

// NewRevocations is the set of what crls list.
func NewRevocations(crls []*x509.RevocationList) Revocations {
	r := Revocations{}
	for _, crl := range crls {
		for _, e := range crl.RevokedCertificateEntries {
			r[revocationKey(crl.RawIssuer, e.SerialNumber)] = struct{}{}
		}
	}
	return r
}

// Revokes reports whether the CRLs list a certificate of chain, a chain a
// verification built from a certificate to its anchor, below the anchor:
// the certificate itself or a CA between it and the anchor (a root's CRL
// that lists an intermediate revokes all the intermediate issued).
func (r Revocations) Revokes(chain []*x509.Certificate) bool {
	return len(chain) > 1 && slices.ContainsFunc(chain[:len(chain)-1], r.Lists)
}

// ErrServerRevoked refuses a server whose certificate is revoked.
var ErrServerRevoked = errors.New("the server's certificate, or a CA that issued it, is revoked")

// Spares reports whether some chain of chains (a verification's) holds no
// certificate the CRLs list below its anchor: one is enough, as a chain
// through a revoked intermediate does not refuse a certificate another CA
// vouches for. The listener, the operators' access and the clients to
// partners' servers all decide so.
func (r Revocations) Spares(chains [][]*x509.Certificate) bool {
	return slices.ContainsFunc(chains, func(ch []*x509.Certificate) bool { return !r.Revokes(ch) })
}

// refuseServer is a client's check of the server's verified chains.
func (r Revocations) refuseServer(cs tls.ConnectionState) error {
	if r.Spares(cs.VerifiedChains) {
		return nil
	}
	return ErrServerRevoked
}

// Lists reports whether c is revoked: its issuer's CRL lists its serial.
func (r Revocations) Lists(c *x509.Certificate) bool {
	_, ok := r[revocationKey(c.RawIssuer, c.SerialNumber)]
	return ok
}

func revocationKey(rawIssuer []byte, serial *big.Int) string {
	return string(rawIssuer) + "\x00" + serial.Text(16)
}

// LoadCRLs is LoadCRL of each of paths, in order; the first failure stops it.
func LoadCRLs(paths []string, cas []*x509.Certificate) ([]*x509.RevocationList, error) {
	var crls []*x509.RevocationList
	for _, path := range paths {
		crl, err := LoadCRL(path, cas)
		if err != nil {
			return nil, err
		}
		crls = append(crls, crl)
	}
	return crls, nil
}

// LoadCRL reads a certificate revocation list (PEM or DER) and checks it is
// signed by one of the CAs. A PEM file holding more than one CRL (a bundle,
// as some servers take) is refused: only its first would have been read,
// and the revocations in the others silently not honoured.
func LoadCRL(path string, cas []*x509.Certificate) (*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, rest := pem.Decode(b); blk != nil {
		n := 1
		for next := rest; ; n++ {
			var more *pem.Block
			if more, next = pem.Decode(next); more == nil {
				break
			}
		}
		if n > 1 {
			return nil, fmt.Errorf("%s: %d PEM blocks; give each CRL a file of its own", path, n)
		}
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, ca := range cas {
		if crl.CheckSignatureFrom(ca) == nil {
			return crl, nil
		}
	}
	return nil, fmt.Errorf("%s: not signed by a CA of the CA file it goes with", path)
}

// RevocationList is Revoke's CRL, parsed.
func (ca *CA) RevocationList(number int64, revoked ...*x509.Certificate) (*x509.RevocationList, error) {
	der, err := ca.Revoke(number, revoked...)
	if err != nil {
		return nil, err
	}
	return x509.ParseRevocationList(der)
}

// Revoke issues a CRL by ca revoking the given certificates (dev and tests).
func (ca *CA) Revoke(number int64, revoked ...*x509.Certificate) ([]byte, error) {
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now()})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now(),
		NextUpdate: now().Add(7 * 24 * time.Hour), RevokedCertificateEntries: entries}, ca.Cert, ca.Key)
}

// Suites are the TLS 1.2 cipher suites the gateway accepts on its
// listeners and offers as a client: ECDHE key exchange (forward secrecy)
// with an AEAD cipher. TLS 1.3's suites, all of that kind, are not
// configurable in Go. Each call returns a copy of its own, so that nothing
// can change the policy of every TLS configuration at once.
func Suites() []uint16 { return slices.Clone(suites) }

var suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// HTTPClient is the gateway's HTTP client to a partner's server (JSON and
// SOAP deliveries, the SOAP tool): mutual TLS under ClientConfig, keep-alive,
// the given overall timeout, keeping up to idle connections to a server
// open between requests: a partner endpoint's client keeps as many as its
// concurrency lets attempts run at once, so that each reuses one. Kept
// fewer, the attempts beyond them closed their connections after use and
// the next ones made new ones, a TLS handshake each (400 deliveries at
// concurrency 8 made 155, at 16 made 257).
//
// A server whose certificate, or a CA between it and rootCAs, revoked lists
// is refused in the handshake (nil lists nothing). Redirects are not
// followed.
func HTTPClient(rootCAs *x509.CertPool, revoked Revocations, cert tls.Certificate, timeout time.Duration, idle int) *http.Client {
	tc := ClientConfig(rootCAs, cert)
	if len(revoked) > 0 {
		tc.VerifyConnection = revoked.refuseServer
	}
	return &http.Client{
		Timeout: timeout,
		// A redirect is the answer, not followed: after a 307 or 308 Go
		// would send the body again, to wherever it points, plain HTTP
		// included, without mutual TLS (earlier builds delivered there).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig:       tc,
			MaxIdleConnsPerHost:   max(idle, 1),
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
	}
}

// ClientConfig is the TLS configuration of the gateway's own clients
// (outbound delivery, the SOAP client, Kafka) and of the partner tools: the
// listeners' policy, TLS 1.2 at least and then only with Suites, trusting
// roots (nil: the system's) and presenting certs. Go's default would also
// agree to AES-CBC with SHA-1 with a partner's server that offers nothing
// better, which the gateway refuses to its own partners.
func ClientConfig(roots *x509.CertPool, certs ...tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: Suites(), RootCAs: roots, Certificates: certs}
}
