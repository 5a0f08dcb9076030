package jwsin

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

var payload = []byte(`{"format":"sg-employer-notice/v1","noticeId":"X-1"}`)

type signer struct {
	priv jwk.Key
	kid  string
	alg  jwa.SignatureAlgorithm
}

func newSigner(t testing.TB, kid string, raw any, alg jwa.SignatureAlgorithm) signer {
	t.Helper()
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	return signer{k, kid, alg}
}

func (s signer) public(t testing.TB) jwk.Key {
	p, err := jwk.PublicKeyOf(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (s signer) sign(t testing.TB, body []byte, extra map[string]any, detached bool) string {
	t.Helper()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, s.kid)
	for k, v := range extra {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	opts := []jws.SignOption{jws.WithKey(s.alg, s.priv, jws.WithProtectedHeaders(h))}
	if detached {
		opts = append(opts, jws.WithDetachedPayload(body))
	}
	out, err := jws.Sign(func() []byte {
		if detached {
			return nil
		}
		return body
	}(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// handmade builds a compact JWS from a raw header, for headers a library
// refuses to produce.
func handmade(hdr string, body []byte, sig []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(hdr)) + "." + enc(body) + "." + enc(sig)
}

// handSigned signs a raw header over body with an ES256 key, for headers
// a library writes otherwise; detached leaves the payload part empty.
func handSigned(t *testing.T, key *ecdsa.PrivateKey, hdr string, body []byte, detached bool) string {
	enc := base64.RawURLEncoding.EncodeToString
	compact := signedAsSent(t, key, enc([]byte(hdr)), enc(body))
	if detached {
		return enc([]byte(hdr)) + ".." + compact[strings.LastIndexByte(compact, '.')+1:]
	}
	return compact
}

// signedAsSent signs the header and payload parts as they are written
// (ES256), for parts a library would encode otherwise.
func signedAsSent(t *testing.T, key *ecdsa.PrivateKey, hdrPart, payloadPart string) string {
	input := hdrPart + "." + payloadPart
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

func TestVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	a := newSigner(t, "a-es256", ec, jwa.ES256())
	a384 := newSigner(t, "a-es384", ec384, jwa.ES384())
	aed := newSigner(t, "a-ed", ed, jwa.EdDSA())
	aps := newSigner(t, "a-ps", rs, jwa.PS256())
	ars := newSigner(t, "a-rs", rs, jwa.RS256())
	attacker := newSigner(t, "a-es256", other, jwa.ES256()) // same kid, other key
	b := newSigner(t, "b-es256", other, jwa.ES256())

	keys := jwk.NewSet()
	for _, s := range []signer{a, a384, aed, aps, ars} {
		_ = keys.AddKey(s.public(t))
	}
	_ = keys.AddKey(newSigner(t, "a-rs-pub", rs, jwa.RS256()).public(t))
	for kid, alg := range map[string]jwa.SignatureAlgorithm{"a-rs-only": jwa.RS256(), "a-ps-only": jwa.PS256()} {
		pub := newSigner(t, kid, rs, alg).public(t)
		if err := pub.Set(jwk.AlgorithmKey, alg); err != nil {
			t.Fatal(err)
		}
		_ = keys.AddKey(pub)
	}
	// Keys whose use or key_ops say they are not for verifying signatures,
	// and one whose key_ops say it is.
	enc, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forEnc, opsEnc, opsVerify := newSigner(t, "a-enc", enc, jwa.ES256()), newSigner(t, "a-ops-enc", enc, jwa.ES256()), newSigner(t, "a-ops-verify", enc, jwa.ES256())
	for s, member := range map[signer][2]any{forEnc: {jwk.KeyUsageKey, "enc"}, opsEnc: {jwk.KeyOpsKey, []string{"encrypt"}}, opsVerify: {jwk.KeyOpsKey, []string{"verify"}}} {
		pub := s.public(t)
		if err := pub.Set(member[0].(string), member[1]); err != nil {
			t.Fatal(err)
		}
		_ = keys.AddKey(pub)
	}

	attackerJWK, _ := json.Marshal(attacker.public(t))
	var attackerMap map[string]any
	if err := json.Unmarshal(attackerJWK, &attackerMap); err != nil {
		t.Fatal(err)
	}

	validHdr := `{"alg":"ES256","kid":"a-es256"}`
	hdrPart := base64.RawURLEncoding.EncodeToString([]byte(validHdr))
	// Payload parts encoded otherwise than RFC 7515 §2 says, signed as
	// written: padded, and in the standard alphabet ("???>>>" encodes
	// with '/' and '+').
	padded := base64.URLEncoding.EncodeToString([]byte(`{"noticeId":"X-10"}`))
	standard := base64.RawStdEncoding.EncodeToString([]byte(`{"noticeId":"???>>>"}`))
	if !strings.Contains(padded, "=") || !strings.ContainsAny(standard, "+/") {
		t.Fatalf("the payload parts %q and %q are encoded as RFC 7515 says", padded, standard)
	}
	validSig := strings.Split(a.sign(t, payload, nil, false), ".")[2]
	sigBytes, _ := base64.RawURLEncoding.DecodeString(validSig)

	tests := []struct {
		name string
		msg  Message
		kind Kind // the refusal's; "" for a signature accepted
	}{
		{"ok/compact-es256", Message{Form: FormCompact, JWS: a.sign(t, payload, nil, false)}, ""},
		{"ok/compact-es384", Message{Form: FormCompact, JWS: a384.sign(t, payload, nil, false)}, ""},
		{"ok/compact-eddsa", Message{Form: FormCompact, JWS: aed.sign(t, payload, nil, false)}, ""},
		{"ok/compact-ps256", Message{Form: FormCompact, JWS: aps.sign(t, payload, nil, false)}, ""},
		{"ok/compact-rs256", Message{Form: FormCompact, JWS: ars.sign(t, payload, nil, false)}, ""},
		{"ok/compact-typ-cty", Message{Form: FormCompact, JWS: a.sign(t, payload, map[string]any{"typ": "JOSE", "cty": "json"}, false)}, ""},
		{"ok/detached", Message{Form: FormDetached, JWS: a.sign(t, payload, nil, true), Body: payload}, ""},
		{"ok/detached-unencoded", Message{Form: FormDetached, JWS: a.sign(t, payload, map[string]any{"b64": false, "crit": []string{"b64"}}, true), Body: payload}, ""},
		{"ok/embedded-jwk-ignored", Message{Form: FormCompact, JWS: a.sign(t, payload, map[string]any{"jku": "https://attacker.example/jwks"}, false)}, ""},
		{"ok/detached-header-with-spaces", Message{Form: FormDetached, JWS: handSigned(t, ec, ` {"alg": "ES256", "kid": "a-es256"} `, payload, true), Body: payload}, ""},
		{"ok/compact-header-with-spaces", Message{Form: FormCompact, JWS: handSigned(t, ec, ` {"alg": "ES256", "kid": "a-es256"} `, payload, false)}, ""},
		{"fail/empty", Message{Form: FormCompact}, KindAbsent},
		{"fail/alg-none", Message{Form: FormCompact, JWS: handmade(`{"alg":"none","kid":"a-es256"}`, payload, nil) + ""}, KindAlg},
		{"fail/alg-none-no-sig", Message{Form: FormCompact, JWS: strings.TrimSuffix(handmade(`{"alg":"none","kid":"a-es256"}`, payload, nil), "")}, KindAlg},
		{"fail/hs256-with-public-key", Message{Form: FormCompact, JWS: hs256WithPublicKey(t, a.public(t), payload)}, KindAlg},
		{"fail/other-partner-key", Message{Form: FormCompact, JWS: b.sign(t, payload, nil, false)}, KindKid},
		{"fail/tampered", Message{Form: FormCompact, JWS: tamper(a.sign(t, payload, nil, false))}, KindSignature},
		{"fail/unknown-kid", Message{Form: FormCompact, JWS: newSigner(t, "nope", ec, jwa.ES256()).sign(t, payload, nil, false)}, KindKid},
		{"fail/embedded-jwk-attacker", Message{Form: FormCompact, JWS: attacker.sign(t, payload, map[string]any{"jwk": attacker.public(t)}, false)}, KindSignature},
		{"fail/json-two-signatures", Message{Form: FormCompact, JWS: twoSignatures(t, a, b)}, KindJSONSerialization},
		{"fail/unknown-crit", Message{Form: FormCompact, JWS: handmade(`{"alg":"ES256","kid":"a-es256","crit":["exp"],"exp":1}`, payload, sigBytes)}, KindCrit},
		{"fail/crit-b64-without-b64", Message{Form: FormCompact, JWS: handmade(`{"alg":"ES256","kid":"a-es256","crit":["b64"]}`, payload, sigBytes)}, KindCrit},
		{"fail/b64-false-compact", Message{Form: FormCompact, JWS: handmade(`{"alg":"ES256","kid":"a-es256","b64":false,"crit":["b64"]}`, payload, sigBytes)}, KindB64},
		{"fail/b64-false-without-crit", Message{Form: FormDetached, JWS: strings.Replace(handmade(`{"alg":"ES256","kid":"a-es256","b64":false}`, nil, sigBytes), "..", "..", 1), Body: payload}, KindB64},
		{"fail/duplicate-header-member", Message{Form: FormCompact, JWS: handmade(`{"alg":"ES256","alg":"none","kid":"a-es256"}`, payload, sigBytes)}, KindMalformed},
		{"fail/typ", Message{Form: FormCompact, JWS: a.sign(t, payload, map[string]any{"typ": "JWT"}, false)}, KindTyp},
		{"fail/no-kid", Message{Form: FormCompact, JWS: handmade(`{"alg":"ES256"}`, payload, sigBytes)}, KindKid},
		{"fail/alg-key-mismatch", Message{Form: FormCompact, JWS: handmade(`{"alg":"ES384","kid":"a-es256"}`, payload, sigBytes)}, KindAlg},
		{"fail/detached-other-body", Message{Form: FormDetached, JWS: a.sign(t, payload, nil, true), Body: append([]byte(" "), payload...)}, KindSignature},
		{"fail/detached-with-payload", Message{Form: FormDetached, JWS: a.sign(t, payload, nil, false), Body: payload}, KindMalformed},
		{"fail/not-base64", Message{Form: FormCompact, JWS: "e30.e30.!!!"}, KindAlg},
		{"fail/key-for-encryption", Message{Form: FormCompact, JWS: forEnc.sign(t, payload, nil, false)}, KindKey},
		{"fail/key-ops-without-verify", Message{Form: FormCompact, JWS: opsEnc.sign(t, payload, nil, false)}, KindKey},
		{"ok/key-ops-verify", Message{Form: FormCompact, JWS: opsVerify.sign(t, payload, nil, false)}, ""},
		{"fail/payload-padded", Message{Form: FormCompact, JWS: signedAsSent(t, ec, hdrPart, padded)}, KindMalformed},
		{"fail/payload-standard-alphabet", Message{Form: FormCompact, JWS: signedAsSent(t, ec, hdrPart, standard)}, KindMalformed},
		{"fail/payload-padded-crit-b64", Message{Form: FormCompact, JWS: signedAsSent(t, ec, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"a-es256","b64":true,"crit":["b64"]}`)), padded)}, KindMalformed},
		{"ok/crit-b64-true", Message{Form: FormCompact, JWS: handSigned(t, ec, `{"alg":"ES256","kid":"a-es256","b64":true,"crit":["b64"]}`, payload, false)}, ""},
		{"fail/payload-not-base64", Message{Form: FormCompact, JWS: signedAsSent(t, ec, hdrPart, "e30!")}, KindMalformed},
		// A key registered with an "alg" verifies that algorithm only: the
		// same RSA key, registered for RS256 under one kid and for PS256
		// under another.
		{"ok/rs256-key-signed-rs256", Message{Form: FormCompact, JWS: newSigner(t, "a-rs-only", rs, jwa.RS256()).sign(t, payload, nil, false)}, ""},
		{"fail/rs256-key-signed-ps256", Message{Form: FormCompact, JWS: newSigner(t, "a-rs-only", rs, jwa.PS256()).sign(t, payload, nil, false)}, KindKey},
		{"ok/ps256-key-signed-ps256", Message{Form: FormCompact, JWS: newSigner(t, "a-ps-only", rs, jwa.PS256()).sign(t, payload, nil, false)}, ""},
		{"fail/ps256-key-signed-rs256", Message{Form: FormCompact, JWS: newSigner(t, "a-ps-only", rs, jwa.RS256()).sign(t, payload, nil, false)}, KindKey},
		{"ok/header-of-the-largest-size", Message{Form: FormCompact, JWS: handSigned(t, ec, headerOfSize(t, maxHeaderBytes), payload, false)}, ""},
		{"fail/header-one-byte-over", Message{Form: FormCompact, JWS: handSigned(t, ec, headerOfSize(t, maxHeaderBytes+1), payload, false)}, KindMalformed},
		{"fail/valid-header-trailing-junk", Message{Form: FormCompact, JWS: handmade(validHdr, payload, sigBytes) + ".x"}, KindMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(tc.msg, keys)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if string(v.Payload) != string(payload) {
					t.Fatalf("payload = %q", v.Payload)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify = %v, %v; want *Error", v, err)
			}
			if e.Kind != tc.kind {
				t.Fatalf("refused as %s (%s), want %s", e.Kind, e.Reason, tc.kind)
			}
			if !slices.Contains(Kinds(), e.Kind) {
				t.Fatalf("kind %s is not in Kinds(), which the metrics show from the start", e.Kind)
			}
		})
	}
}

// headerOfSize is a valid protected header for a-es256 of n bytes, padded
// with a header parameter no rule reads.
func headerOfSize(t *testing.T, n int) string {
	h := `{"alg":"ES256","kid":"a-es256","x-pad":""}`
	if n < len(h) {
		t.Fatalf("a header of %d bytes is too small", n)
	}
	return h[:len(h)-2] + strings.Repeat("p", n-len(h)) + `"}`
}

func tamper(compact string) string {
	p := strings.Split(compact, ".")
	body, _ := base64.RawURLEncoding.DecodeString(p[1])
	body = []byte(strings.Replace(string(body), "X-1", "X-2", 1))
	p[1] = base64.RawURLEncoding.EncodeToString(body)
	return strings.Join(p, ".")
}

func hs256WithPublicKey(t *testing.T, pub jwk.Key, body []byte) string {
	b, _ := json.Marshal(pub)
	k, err := jwk.Import(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = k
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, "a-es256")
	out, err := jws.Sign(body, jws.WithKey(jwa.HS256(), b, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func twoSignatures(t *testing.T, a, b signer) string {
	ha, hb := jws.NewHeaders(), jws.NewHeaders()
	_ = ha.Set(jws.KeyIDKey, a.kid)
	_ = hb.Set(jws.KeyIDKey, b.kid)
	out, err := jws.Sign(payload, jws.WithJSON(),
		jws.WithKey(a.alg, a.priv, jws.WithProtectedHeaders(ha)),
		jws.WithKey(b.alg, b.priv, jws.WithProtectedHeaders(hb)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func FuzzVerify(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := newSigner(f, "k", ec, jwa.ES256())
	keys := jwk.NewSet()
	_ = keys.AddKey(s.public(f))
	f.Add(s.sign(f, payload, nil, false), []byte(nil), false)
	f.Add(s.sign(f, payload, map[string]any{"b64": false, "crit": []string{"b64"}}, true), payload, true)
	f.Add("e30..e30", payload, true)
	f.Fuzz(func(t *testing.T, compact string, body []byte, detached bool) {
		m := Message{Form: FormCompact, JWS: compact}
		if detached {
			m = Message{Form: FormDetached, JWS: compact, Body: body}
		}
		v, err := Verify(m, keys)
		if err == nil && v.Kid != "k" {
			t.Fatalf("verified with kid %q", v.Kid)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T", err)
			}
			if !slices.Contains(kinds, e.Kind) {
				t.Fatalf("refused as %q (%s), not one of the kinds", e.Kind, e.Reason)
			}
		}
	})
}

// kinds are the refusals' kinds the README lists.
var kinds = []Kind{KindAbsent, KindJSONSerialization, KindMalformed, KindAlg, KindKid, KindKey, KindTyp, KindCty, KindB64, KindCrit, KindSignature}

// TestReplacedKey: a key replaced under the same kid (a SIGHUP reload of the
// registry) is verified with the new key, never with the old key's cached
// export.
func TestReplacedKey(t *testing.T) {
	keyOf := func() signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return newSigner(t, "k1", k, jwa.ES256())
	}
	setOf := func(s signer) jwk.Set {
		set := jwk.NewSet()
		if err := set.AddKey(s.public(t)); err != nil {
			t.Fatal(err)
		}
		return set
	}
	old, current := keyOf(), keyOf()
	byOld := Message{Form: FormCompact, JWS: old.sign(t, payload, nil, false)}
	byCurrent := Message{Form: FormCompact, JWS: current.sign(t, payload, nil, false)}
	if _, err := Verify(byOld, setOf(old)); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	reloaded := setOf(current)
	// Both keys are k1's: the replaced one's signature is refused as such.
	var e *Error
	if _, err := Verify(byOld, reloaded); !errors.As(err, &e) || e.Kind != KindSignature {
		t.Fatalf("after the reload, a message signed with the replaced key: %v", err)
	}
	if _, err := Verify(byCurrent, reloaded); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
}

// TestBounded: the exported-key cache builds an entry once, holds at
// most its max (emptied, then refilled), and keeps no failed build.
func TestBounded(t *testing.T) {
	c := bounded[int, int]{max: 2}
	builds := 0
	get := func(k int) (int, error) {
		return c.get(k, func() (int, error) {
			builds++
			if k < 0 {
				return 0, errors.New("unusable")
			}
			return 10 * k, nil
		})
	}
	for _, k := range []int{1, 2, 1, 2} {
		if v, err := get(k); err != nil || v != 10*k {
			t.Fatalf("get(%d) = %d, %v", k, v, err)
		}
	}
	if builds != 2 {
		t.Fatalf("%d builds for two keys asked twice each, want 2", builds)
	}
	if _, err := get(3); err != nil || len(c.m) > 2 {
		t.Fatalf("a third key: %v, %d entries held, at most 2", err, len(c.m))
	}
	for range 2 {
		if _, err := get(-1); err == nil {
			t.Fatal("a failed build answered no error")
		}
	}
	if builds != 5 {
		t.Fatalf("%d builds, want 5: a failed build is not kept, so it is tried again", builds)
	}
}
