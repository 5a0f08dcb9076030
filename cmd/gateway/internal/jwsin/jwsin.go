// Package jwsin verifies the JWS that carries a partner's JSON document
// (RFC 7515), in the two agreed forms: a compact JWS as the request body, or
// a detached compact JWS over the body (RFC 7515 appendix F), base64url or
// unencoded (RFC 7797, "b64": false with "crit": ["b64"]).
//
// The checks are deliberately narrower than the RFCs allow: exactly one
// signature in compact form, an algorithm allowlist bound to the key type,
// RSA of at least 2048 bits, a required kid resolved only in the
// authenticated partner's JWKS. Header parameters that could carry a key
// (jwk, jku, x5u, x5c) are never consulted.
package jwsin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/perkeso/jambatan/adapters/jsondoc"
)

// Allowed algorithms (sg-employer-notice/v1 transport rules).
var allowed = map[string]jwa.SignatureAlgorithm{
	"ES256": jwa.ES256(),
	"ES384": jwa.ES384(),
	"EdDSA": jwa.EdDSA(),
	"PS256": jwa.PS256(),
	"RS256": jwa.RS256(),
}

// MinRSABits is the smallest RSA modulus accepted.
const MinRSABits = 2048

// maxHeaderBytes bounds the decoded protected header.
const maxHeaderBytes = 4096

// Form is how the signature travelled.
type Form string

// The two agreed forms.
const (
	FormCompact  Form = "compact"
	FormDetached Form = "detached"
)

// Message is the signed request as received.
type Message struct {
	Form Form
	// Compact: the body. Detached: the X-JWS-Signature header value.
	JWS string
	// Detached only: the body, which is the payload.
	Body []byte
}

// Verified is a message whose signature checked out.
type Verified struct {
	Payload []byte
	Alg     string
	Kid     string
	B64     bool
}

// Error explains why a signature is refused. Reason is safe to show the
// sender; Kind classes it for the operators' metrics.
type Error struct {
	Kind   Kind
	Reason string
}

func (e *Error) Error() string { return "jws: " + e.Reason }

// Kind is the class of a refusal: a small, fixed set of values, the label
// of jambatan_verification_failures_total.
type Kind string

// The kinds of refusal.
const (
	KindAbsent            Kind = "absent"             // no JWS at all
	KindJSONSerialization Kind = "json-serialization" // JWS JSON serialization instead of compact
	KindMalformed         Kind = "malformed"          // not three base64url parts, or a header that is not a JSON object of strings
	KindAlg               Kind = "alg"                // alg absent, not accepted, or not the key's
	KindKid               Kind = "kid"                // kid absent or not registered for the partner
	KindKey               Kind = "key"                // the registered key may not verify this (use, key_ops, its alg, its size)
	KindTyp               Kind = "typ"                // typ other than JOSE
	KindCty               Kind = "cty"                // cty other than json
	KindB64               Kind = "b64"                // b64 not a boolean, or false where it may not be
	KindCrit              Kind = "crit"               // crit other than ["b64"] with b64
	KindSignature         Kind = "signature"          // the signature does not verify, or does not cover the body
	KindMultiple          Kind = "multiple"           // more than one signature (X-JWS-Signature sent twice; the server refuses it before Verify)
)

// Kinds lists every kind of refusal.
func Kinds() []Kind {
	return []Kind{KindAbsent, KindJSONSerialization, KindMalformed, KindAlg, KindKid, KindKey, KindTyp, KindCty, KindB64,
		KindCrit, KindSignature, KindMultiple}
}

func fail(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// Verify checks a message against the partner's keys and returns the payload.
func Verify(m Message, keys jwk.Set) (*Verified, error) {
	s := m.JWS
	if s == "" {
		return nil, fail(KindAbsent, "no JWS")
	}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		return nil, fail(KindJSONSerialization, "JWS JSON serialization is not accepted; send exactly one signature in compact form")
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, fail(KindMalformed, "a compact JWS has three parts separated by '.'")
	}
	hdr, err := b64(parts[0])
	if err != nil || len(parts[0]) == 0 {
		return nil, fail(KindMalformed, "protected header is not base64url")
	}
	if len(hdr) > maxHeaderBytes {
		return nil, fail(KindMalformed, "protected header is over %d bytes", maxHeaderBytes)
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	if m.Form == FormDetached {
		if parts[1] != "" {
			return nil, fail(KindMalformed, "a detached JWS has an empty payload part")
		}
	} else if !h.b64 {
		return nil, fail(KindB64, `"b64": false is accepted only with a detached signature`)
	}
	sig, err := b64(parts[2])
	if err != nil || parts[2] == "" {
		return nil, fail(KindMalformed, "signature is not base64url")
	}
	payload := m.Body
	if m.Form == FormCompact {
		// Strictly, as the other parts: jwx also reads padded and
		// standard-alphabet base64, which RFC 7515 §2 rules out.
		if payload, err = b64(parts[1]); err != nil {
			return nil, fail(KindMalformed, "payload is not base64url")
		}
	}

	key, ok := keys.LookupKeyID(h.kid)
	if !ok {
		return nil, fail(KindKid, "unknown kid %q", h.kid)
	}
	alg := allowed[h.alg]
	raw, err := keyFitsAlg(key, h.alg)
	if err != nil {
		return nil, err
	}

	// A JWS without crit or b64 is verified over its signing input (RFC
	// 7515 §5.2) directly: ES256 with the key's table (es256), the others
	// by jwx's fast path (no message object, fewer allocations); the
	// header was already checked above. A detached one has the body put
	// back as its payload part (RFC 7515 appendix F). Through jws.Verify,
	// a detached JWS whose header JSON began with a space did not verify,
	// though npm jose verified it (TestJoseAgreesWithJwsin).
	if h.b64 && !h.crit {
		payloadPart := parts[1]
		if m.Form == FormDetached {
			payloadPart = base64.RawURLEncoding.EncodeToString(m.Body)
		}
		var verified bool
		if pub, ok := raw.(*ecdsa.PublicKey); ok && h.alg == "ES256" {
			verified = verifyES256(pub, parts[0], payloadPart, sig)
		} else {
			_, err := jws.VerifyCompactFast(raw, []byte(parts[0]+"."+payloadPart+"."+parts[2]), alg)
			verified = err == nil
		}
		if !verified {
			return nil, fail(KindSignature, "signature does not verify with key %q", h.kid)
		}
		return &Verified{Payload: payload, Alg: h.alg, Kid: h.kid, B64: true}, nil
	}

	opts := []jws.VerifyOption{jws.WithKey(alg, key)}
	if m.Form == FormDetached {
		// The library builds the signing input from the body as the header's
		// b64 says: base64url(body), or the body bytes themselves.
		opts = append(opts, jws.WithDetachedPayload(m.Body))
	}
	got, err := jws.Verify([]byte(s), opts...)
	if err != nil {
		return nil, fail(KindSignature, "signature does not verify with key %q", h.kid)
	}
	if !bytes.Equal(got, payload) {
		return nil, fail(KindSignature, "signature does not cover the body")
	}
	return &Verified{Payload: payload, Alg: h.alg, Kid: h.kid, B64: h.b64}, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.Strict().DecodeString(s) }

type header struct {
	alg, kid string
	b64      bool
	crit     bool
}

// parseHeader reads the protected header strictly: one JSON object without
// duplicate names, alg allowed, kid present, crit only ["b64"] with b64.
func parseHeader(b []byte) (*header, error) {
	v, err := jsondoc.Parse(b, 4)
	if err != nil || v.Kind != jsondoc.Object {
		return nil, fail(KindMalformed, "protected header is not one JSON object")
	}
	h := &header{b64: true}
	str := func(name string) (string, bool, error) {
		m, ok := v.Get(name)
		if !ok {
			return "", false, nil
		}
		if m.Kind != jsondoc.String {
			return "", true, fail(KindMalformed, "header %q must be a string", name)
		}
		return m.Str, true, nil
	}
	alg, ok, err := str("alg")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail(KindAlg, "header has no alg")
	}
	if _, allowedAlg := allowed[alg]; !allowedAlg {
		return nil, fail(KindAlg, "alg %q is not accepted (ES256, ES384, EdDSA, PS256, RS256)", alg)
	}
	h.alg = alg
	kid, ok, err := str("kid")
	if err != nil {
		return nil, err
	}
	if !ok || kid == "" {
		return nil, fail(KindKid, "header has no kid")
	}
	h.kid = kid
	if typ, ok, err := str("typ"); err != nil {
		return nil, err
	} else if ok && !strings.EqualFold(typ, "JOSE") && !strings.EqualFold(typ, "application/jose") {
		return nil, fail(KindTyp, `typ %q is not accepted; omit it or send "JOSE"`, typ)
	}
	if cty, ok, err := str("cty"); err != nil {
		return nil, err
	} else if ok && !strings.EqualFold(cty, "json") && !strings.EqualFold(cty, "application/json") {
		return nil, fail(KindCty, `cty %q is not accepted; omit it or send "json"`, cty)
	}
	if bv, ok := v.Get("b64"); ok {
		if bv.Kind != jsondoc.Bool {
			return nil, fail(KindB64, `header "b64" must be a boolean`)
		}
		h.b64 = bv.Bool
	}
	if cv, ok := v.Get("crit"); ok {
		h.crit = true
		if cv.Kind != jsondoc.Array || len(cv.Items) != 1 || cv.Items[0].Kind != jsondoc.String || cv.Items[0].Str != "b64" {
			return nil, fail(KindCrit, `crit must be exactly ["b64"]`)
		}
		if _, ok := v.Get("b64"); !ok {
			return nil, fail(KindCrit, `crit names "b64" but the header has no b64`)
		}
	} else if !h.b64 {
		return nil, fail(KindB64, `"b64": false requires "crit": ["b64"]`)
	}
	return h, nil
}

// ForSignatures reports whether a JWK may verify signatures: its "use", if
// given, is "sig", and its "key_ops", if given, include "verify" (RFC 7517
// §4.2-4.3). A key published for encryption is not a signing key, and npm
// jose, for one, will not verify with it.
func ForSignatures(k jwk.Key) bool {
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return false
	}
	if ops, ok := k.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return false
	}
	return true
}

// keyFitsAlg binds the algorithm to the key type (and size) and returns
// the raw public key.
func keyFitsAlg(k jwk.Key, alg string) (any, error) {
	if !ForSignatures(k) {
		return nil, fail(KindKey, "key %q is not for verifying signatures", mustKid(k))
	}
	if ka, ok := k.Algorithm(); ok && ka.String() != "" && ka.String() != alg {
		return nil, fail(KindKey, "key %q is registered for %s, not %s", mustKid(k), ka, alg)
	}
	raw, err := export(k)
	if err != nil {
		return nil, fail(KindKey, "key %q is unusable", mustKid(k))
	}
	switch rk := raw.(type) {
	case *ecdsa.PublicKey:
		if (alg == "ES256" && rk.Curve.Params().Name == "P-256") || (alg == "ES384" && rk.Curve.Params().Name == "P-384") {
			return raw, nil
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return raw, nil
		}
	case *rsa.PublicKey:
		if alg == "PS256" || alg == "RS256" {
			if rk.N.BitLen() < MinRSABits {
				return nil, fail(KindKey, "RSA key %q has fewer than %d bits", mustKid(k), MinRSABits)
			}
			return raw, nil
		}
	}
	return nil, fail(KindAlg, "alg %s does not fit key %q", alg, mustKid(k))
}

// exported caches each registered key's raw public key: exporting it on
// every request was 1.2 % of the intake's CPU under load. Entries are keyed
// by the key object itself (the registry never changes a key it loaded), so
// a key replaced on reload gets a new entry and is never served stale.
// A registry of more keys than it holds exports some again after each
// emptying: at worst the 1.2 % it saves.
var exported = bounded[jwk.Key, any]{max: 4096}

func export(k jwk.Key) (any, error) {
	return exported.get(k, func() (any, error) {
		var raw any
		err := jwk.Export(k, &raw)
		return raw, err
	})
}

// verifyES256 checks an ES256 signature over header "." payload, the
// parts as sent.
func verifyES256(pub *ecdsa.PublicKey, header, payload string, sig []byte) bool {
	h := sha256.New()
	io.WriteString(h, header)
	io.WriteString(h, ".")
	io.WriteString(h, payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return tables.verify(pub, &sum, sig)
}

// bounded is a cache of at most max entries; when full it is emptied and
// refilled, so entries for keys a reload replaced do not stay for good.
type bounded[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]V
	max int
}

// get is the entry for k, made by build on the first call for it (once:
// other callers for k wait for it).
func (c *bounded[K, V]) get(k K, build func() (V, error)) (V, error) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok { // made while this caller waited
		return v, nil
	}
	v, err := build()
	if err != nil {
		return v, err
	}
	if len(c.m) >= c.max || c.m == nil {
		c.m = make(map[K]V)
	}
	c.m[k] = v
	return v, nil
}

func mustKid(k jwk.Key) string { s, _ := k.KeyID(); return s }
