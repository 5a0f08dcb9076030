package wssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/certs"
)

// Signer adds a wsse:Security header to envelopes.
type Signer struct {
	Cert *x509.Certificate
	Key  crypto.Signer // RSA (>= 2048 bits) or ECDSA P-256
	TTL  time.Duration // Expires - Created; default and maximum 300 s
	Now  func() time.Time
	// renewed is what Replace swapped in; when set it stands for Cert and
	// Key. A running gateway shares one Signer between its SOAP endpoint and
	// its outbound agency clients, so a reload renews both at once.
	renewed atomic.Pointer[credential]
}

// credential is a signing certificate with its key.
type credential struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// Replace makes later signatures use cert and key. Signatures under way
// finish with the certificate they started with.
func (s *Signer) Replace(cert *x509.Certificate, key crypto.Signer) {
	s.renewed.Store(&credential{cert: cert, key: key})
}

func (s *Signer) current() *credential {
	if c := s.renewed.Load(); c != nil {
		return c
	}
	return &credential{cert: s.Cert, key: s.Key}
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func signatureMethod(key crypto.Signer) (string, error) {
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("wssec: RSA key under 2048 bits")
		}
		return AlgRSASHA256, nil
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name != "P-256" {
			return "", errors.New("wssec: ECDSA key not on P-256")
		}
		return AlgECDSA256, nil
	}
	return "", errors.New("wssec: key type not supported")
}

// CheckCredential reports whether key can sign for cert: a key of an
// allowed kind (RSA of 2048 bits or more, ECDSA on P-256) whose public half
// is the certificate's. A key that is not the certificate's signs envelopes
// that no receiver verifies, so the configuration is refused instead.
func CheckCredential(cert *x509.Certificate, key crypto.Signer) error {
	if _, err := signatureMethod(key); err != nil {
		return err
	}
	if !certs.IsKeyOf(key, cert) {
		return errors.New("wssec: the key is not the certificate's")
	}
	return nil
}

// Sign signs the envelope in place: it gives the Body a wsu:Id and adds, as
// the first Header block, wsse:Security with the token, a Timestamp and the
// Signature over Body and Timestamp.
//
// It also sets how doc is written: a carriage return in text, and a tab,
// line feed or carriage return in an attribute, as character references.
// Written as they are, the receiver's parser reads them as a line feed and
// as spaces (XML's end-of-line and attribute-value normalization), so what
// it canonicalizes is not what was signed: a decision's Reason with CRLF
// line ends failed its digest at xmlsec1 (TestXmlsecCanonicalForms).
func (s *Signer) Sign(doc *etree.Document) error {
	doc.WriteSettings.CanonicalText = true
	doc.WriteSettings.CanonicalAttrVal = true
	cred := s.current()
	method, err := signatureMethod(cred.key)
	if err != nil {
		return err
	}
	env, ferr := Inspect(doc)
	if ferr != nil {
		return ferr
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl <= 0 || ttl > 300*time.Second {
		ttl = 300 * time.Second
	}
	root := env.Root
	soapPrefix := root.Space
	if soapPrefix == "" {
		soapPrefix = "soapenv"
		root.CreateAttr("xmlns:soapenv", env.SOAP)
	}
	root.CreateAttr("xmlns:wsu", NSWsu)
	if env.Header == nil {
		env.Header = etree.NewElement(soapPrefix + ":Header")
		root.InsertChildAt(0, env.Header)
	}
	bodyID := newID("BODY")
	env.Body.RemoveAttr("wsu:Id")
	env.Body.CreateAttr("wsu:Id", bodyID)

	sec := etree.NewElement("wsse:Security")
	sec.CreateAttr("xmlns:wsse", NSWsse)
	sec.CreateAttr(soapPrefix+":mustUnderstand", "1")
	env.Header.InsertChildAt(0, sec)

	tokID := newID("X509")
	bst := sec.CreateElement("wsse:BinarySecurityToken")
	bst.CreateAttr("EncodingType", EncodingB64)
	bst.CreateAttr("ValueType", ValueTypeX509)
	bst.CreateAttr("wsu:Id", tokID)
	bst.SetText(base64.StdEncoding.EncodeToString(cred.cert.Raw))

	tsID := newID("TS")
	ts := sec.CreateElement("wsu:Timestamp")
	ts.CreateAttr("wsu:Id", tsID)
	created := now().UTC().Truncate(time.Second)
	ts.CreateElement("wsu:Created").SetText(created.Format("2006-01-02T15:04:05Z"))
	ts.CreateElement("wsu:Expires").SetText(created.Add(ttl).Format("2006-01-02T15:04:05Z"))

	sig := sec.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NSDs)
	sig.CreateAttr("Id", newID("SIG"))
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", AlgExcC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", method)
	for _, ref := range []struct {
		id string
		el *etree.Element
	}{{tsID, ts}, {bodyID, env.Body}} {
		c, err := canon(ref.el, "")
		if err != nil {
			return err
		}
		sum := sha256.Sum256(c)
		r := si.CreateElement("ds:Reference")
		r.CreateAttr("URI", "#"+ref.id)
		r.CreateElement("ds:Transforms").CreateElement("ds:Transform").CreateAttr("Algorithm", AlgExcC14N)
		r.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
		r.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(sum[:]))
	}
	c, err := canon(si, "")
	if err != nil {
		return err
	}
	value, err := signBytes(cred.key, c)
	if err != nil {
		return err
	}
	sig.CreateElement("ds:SignatureValue").SetText(base64.StdEncoding.EncodeToString(value))
	ref := sig.CreateElement("ds:KeyInfo").CreateElement("wsse:SecurityTokenReference").CreateElement("wsse:Reference")
	ref.CreateAttr("URI", "#"+tokID)
	ref.CreateAttr("ValueType", ValueTypeX509)
	return nil
}

func signBytes(key crypto.Signer, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		// XML Signature carries ECDSA values as r || s, not DER (RFC 4050).
		der, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
		if err != nil {
			return nil, err
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		rs.R.FillBytes(out[:32])
		rs.S.FillBytes(out[32:])
		return out, nil
	default:
		return key.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
}
