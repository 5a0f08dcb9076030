package wssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Verifier checks the WS-Security header of a received envelope.
type Verifier struct {
	Now    func() time.Time
	Skew   time.Duration // default 120 s
	MaxTTL time.Duration // longest Expires - Created, default 300 s
	// Trust decides whether the signing certificate belongs to the sender
	// (chains to its CA, within validity, bound to the mTLS partner).
	Trust func(*x509.Certificate) error
}

// Result is a verified envelope.
type Result struct {
	*Envelope
	Cert             *x509.Certificate
	Created, Expires time.Time
}

// Verify checks, in the order of agency-soap/v1 §8.1: the structure, the
// presence of the security elements, the Timestamp window, the certificate,
// then the references and the signature. The first failure is returned.
func (v *Verifier) Verify(doc *etree.Document) (*Result, *Error) {
	env, err := Inspect(doc)
	if err != nil {
		return nil, err
	}
	idmap, unique := ids(env.Root)

	// 2. Security header, token, timestamp, signature present.
	var sec *etree.Element
	if env.Header != nil {
		for _, h := range env.Header.ChildElements() {
			if is(h, NSWsse, "Security") {
				if sec != nil {
					return nil, fail(CodeSignature, "more than one wsse:Security header")
				}
				sec = h
				continue
			}
			if mu, _ := attrNS(h, env.SOAP, "mustUnderstand"); mu == "1" || mu == "true" {
				return nil, fail(CodeMustUnderstand, "header block {%s}%s is not understood", ns(h), h.Tag)
			}
		}
	}
	if sec == nil {
		return nil, fail(CodeMissing, "no wsse:Security header")
	}
	bsts := children(sec, NSWsse, "BinarySecurityToken")
	tss := children(sec, NSWsu, "Timestamp")
	sigs := children(sec, NSDs, "Signature")
	if len(tss) == 0 || len(sigs) == 0 {
		return nil, fail(CodeMissing, "wsse:Security lacks a Timestamp or a Signature")
	}
	if len(tss) > 1 || len(sigs) > 1 || len(bsts) > 1 {
		return nil, fail(CodeSignature, "exactly one token, Timestamp and Signature are accepted")
	}
	ts, sig := tss[0], sigs[0]

	// 3. Timestamp window.
	created, expires, terr := v.timestamp(ts)
	if terr != nil {
		return nil, terr
	}

	// 4. Certificate: from the referenced token, or X509Data.
	cert, cerr := certificate(sig, idmap, bsts)
	if cerr != nil {
		return nil, cerr
	}
	if v.Trust != nil {
		if err := v.Trust(cert); err != nil {
			return nil, fail(CodeUntrusted, "%v", err)
		}
	}

	// 5. References and signature.
	if !unique {
		return nil, fail(CodeSignature, "an id is used by more than one element")
	}
	if err := verifySignature(sig, idmap, env.Body, ts, cert); err != nil {
		return nil, err
	}
	return &Result{Envelope: env, Cert: cert, Created: created, Expires: expires}, nil
}

func (v *Verifier) timestamp(ts *etree.Element) (time.Time, time.Time, *Error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew, maxTTL := v.Skew, v.MaxTTL
	if skew <= 0 {
		skew = 120 * time.Second
	}
	if maxTTL <= 0 {
		maxTTL = 300 * time.Second
	}
	get := func(local string) (time.Time, bool) {
		els := children(ts, NSWsu, local)
		if len(els) != 1 {
			return time.Time{}, false
		}
		s := strings.TrimSpace(els[0].Text())
		if !strings.HasSuffix(s, "Z") {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	c, ok1 := get("Created")
	e, ok2 := get("Expires")
	if !ok1 || !ok2 {
		return c, e, fail(CodeTimestamp, "Timestamp needs one Created and one Expires in UTC (Z)")
	}
	t := now()
	switch {
	case !e.After(c):
		return c, e, fail(CodeTimestamp, "Expires is not after Created")
	case e.Sub(c) > maxTTL:
		return c, e, fail(CodeTimestamp, "Expires - Created is over %s", maxTTL)
	case c.After(t.Add(skew)):
		return c, e, fail(CodeTimestamp, "Created is in the future")
	case !e.After(t.Add(-skew)):
		return c, e, fail(CodeTimestamp, "the message has expired")
	}
	return c, e, nil
}

func certificate(sig *etree.Element, idmap map[string]*etree.Element, bsts []*etree.Element) (*x509.Certificate, *Error) {
	ki := children(sig, NSDs, "KeyInfo")
	if len(ki) != 1 {
		return nil, fail(CodeMissing, "Signature has no KeyInfo")
	}
	var der string
	if strs := children(ki[0], NSWsse, "SecurityTokenReference"); len(strs) == 1 {
		refs := children(strs[0], NSWsse, "Reference")
		if len(refs) != 1 {
			return nil, fail(CodeMissing, "SecurityTokenReference has no Reference")
		}
		uri := refs[0].SelectAttrValue("URI", "")
		tok, ok := idmap[strings.TrimPrefix(uri, "#")]
		if !strings.HasPrefix(uri, "#") || !ok || len(bsts) != 1 || tok != bsts[0] {
			return nil, fail(CodeMissing, "the token reference does not name the BinarySecurityToken")
		}
		if tok.SelectAttrValue("ValueType", "") != ValueTypeX509 {
			return nil, fail(CodeUntrusted, "token is not an X509v3 certificate")
		}
		der = tok.Text()
	} else if xds := children(ki[0], NSDs, "X509Data"); len(xds) == 1 {
		cs := children(xds[0], NSDs, "X509Certificate")
		if len(cs) != 1 {
			return nil, fail(CodeMissing, "X509Data has no single X509Certificate")
		}
		der = cs[0].Text()
	} else {
		return nil, fail(CodeMissing, "KeyInfo names no certificate")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(der), ""))
	if err != nil {
		return nil, fail(CodeUntrusted, "certificate is not base64")
	}
	cert, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, fail(CodeUntrusted, "certificate does not parse")
	}
	return cert, nil
}

func one(el *etree.Element, space, local string) *etree.Element {
	cs := children(el, space, local)
	if len(cs) != 1 {
		return nil
	}
	return cs[0]
}

func verifySignature(sig *etree.Element, idmap map[string]*etree.Element, body, ts *etree.Element, cert *x509.Certificate) *Error {
	si := one(sig, NSDs, "SignedInfo")
	sv := one(sig, NSDs, "SignatureValue")
	if si == nil || sv == nil {
		return fail(CodeSignature, "Signature lacks SignedInfo or SignatureValue")
	}
	cm := one(si, NSDs, "CanonicalizationMethod")
	sm := one(si, NSDs, "SignatureMethod")
	if cm == nil || sm == nil || cm.SelectAttrValue("Algorithm", "") != AlgExcC14N {
		return fail(CodeSignature, "SignedInfo must use exclusive C14N")
	}
	siPrefixes := ""
	if incl := one(cm, NSExcC14, "InclusiveNamespaces"); incl != nil {
		siPrefixes = incl.SelectAttrValue("PrefixList", "")
	}
	method := sm.SelectAttrValue("Algorithm", "")
	refs := children(si, NSDs, "Reference")
	if len(refs) != 2 {
		return fail(CodeSignature, "exactly two references (Body and Timestamp) are accepted")
	}
	covered := map[*etree.Element]bool{}
	for _, r := range refs {
		uri := r.SelectAttrValue("URI", "")
		target, ok := idmap[strings.TrimPrefix(uri, "#")]
		if !strings.HasPrefix(uri, "#") || !ok || (target != body && target != ts) || covered[target] {
			return fail(CodeSignature, "a reference does not resolve to the Body or the Timestamp")
		}
		covered[target] = true
		trs := one(r, NSDs, "Transforms")
		if trs == nil || len(trs.ChildElements()) != 1 {
			return fail(CodeSignature, "each reference must have exactly one transform")
		}
		tr := one(trs, NSDs, "Transform")
		if tr == nil || tr.SelectAttrValue("Algorithm", "") != AlgExcC14N {
			return fail(CodeSignature, "transform not accepted (only exclusive C14N)")
		}
		prefixes := ""
		if incl := one(tr, NSExcC14, "InclusiveNamespaces"); incl != nil {
			prefixes = incl.SelectAttrValue("PrefixList", "")
		}
		dm := one(r, NSDs, "DigestMethod")
		dv := one(r, NSDs, "DigestValue")
		if dm == nil || dv == nil || dm.SelectAttrValue("Algorithm", "") != AlgSHA256 {
			return fail(CodeSignature, "digest method not accepted (only SHA-256)")
		}
		want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(dv.Text()))
		if err != nil {
			return fail(CodeSignature, "DigestValue is not base64")
		}
		c, err := canon(target, prefixes)
		if err != nil {
			return fail(CodeSignature, "reference cannot be canonicalized")
		}
		got := sha256.Sum256(c)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fail(CodeSignature, "digest of the %s does not match", map[bool]string{true: "Body", false: "Timestamp"}[target == body])
		}
	}
	c, err := canon(si, siPrefixes)
	if err != nil {
		return fail(CodeSignature, "SignedInfo cannot be canonicalized")
	}
	value, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv.Text()), ""))
	if err != nil {
		return fail(CodeSignature, "SignatureValue is not base64")
	}
	sum := sha256.Sum256(c)
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if method != AlgRSASHA256 || pub.N.BitLen() < 2048 {
			return fail(CodeSignature, "algorithm not accepted for an RSA key (rsa-sha256, at least 2048 bits)")
		}
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], value) != nil {
			return fail(CodeSignature, "signature value does not verify")
		}
	case *ecdsa.PublicKey:
		if method != AlgECDSA256 || pub.Curve.Params().Name != "P-256" || len(value) != 64 {
			return fail(CodeSignature, "algorithm not accepted for an EC key (ecdsa-sha256 on P-256)")
		}
		r, s := new(big.Int).SetBytes(value[:32]), new(big.Int).SetBytes(value[32:])
		if !ecdsa.Verify(pub, sum[:], r, s) {
			return fail(CodeSignature, "signature value does not verify")
		}
	default:
		return fail(CodeSignature, "key type not accepted")
	}
	return nil
}

// TrustInstitution is a Verifier's Trust for the certificates that chain
// to roots and are issued to institution (subject CN): how a partner's
// tools and tests trust the answers of one institution, Perkeso's
// (MY:PERKESO) among them.
func TrustInstitution(roots *x509.CertPool, institution string) func(*x509.Certificate) error {
	return func(c *x509.Certificate) error {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return err
		}
		if c.Subject.CommonName != institution {
			return fmt.Errorf("the signing certificate is issued to %q, not %s", c.Subject.CommonName, institution)
		}
		return nil
	}
}
