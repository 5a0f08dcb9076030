package interop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

// TestJoseAgreesWithJwsin: what the gateway's JWS check (jwsin) accepts,
// npm jose, an independent implementation, verifies too, over a corpus of
// signatures by ES256, EdDSA, RS256 and PS256 keys in the three agreed
// forms, with protected headers of every shape (duplicate, escaped and
// unknown members, crit, b64, embedded keys, other algorithms) and
// encodings (padding, the standard alphabet, bits past the data,
// whitespace, DER and high-S ECDSA signatures). jwsin may refuse what jose
// accepts (it is narrower by design: an allowlist, a required kid, strict
// base64url); it must not accept what jose refuses.
func TestJoseAgreesWithJwsin(t *testing.T) {
	dir := nodeModules(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	for kid, pub := range map[string]any{"k-ec": &ec.PublicKey, "k-ed": ed.Public(), "k-rsa": &rk.PublicKey, "k-ec-enc": &ec.PublicKey, "k-ec-ops": &ec.PublicKey} {
		k, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		switch kid { // the same key registered for encryption, twice over
		case "k-ec-enc":
			_ = k.Set(jwk.KeyUsageKey, "enc")
		case "k-ec-ops":
			_ = k.Set(jwk.KeyOpsKey, []string{"encrypt"})
		}
		_ = set.AddKey(k)
	}

	b64 := base64.RawURLEncoding.EncodeToString
	body := []byte(`{"noticeId":"TPE-2026-0042","note":"a.b"}`)
	// sign signs header (JSON text, as it is) over payload: compact, or
	// detached with the payload base64url or, "b64":false, as it is.
	sign := func(alg, header string, detached, unencoded bool) string {
		h := b64([]byte(header))
		p := b64(body)
		if unencoded {
			p = string(body)
		}
		sum := sha256.Sum256([]byte(h + "." + p))
		var sig []byte
		switch alg {
		case "ES256":
			r, s, _ := ecdsa.Sign(rand.Reader, ec, sum[:])
			sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
		case "EdDSA":
			sig = ed25519.Sign(ed, []byte(h+"."+p))
		case "RS256":
			sig, _ = rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, sum[:])
		case "PS256":
			sig, _ = rsa.SignPSS(rand.Reader, rk, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if detached {
			return h + ".." + b64(sig)
		}
		return h + "." + p + "." + b64(sig)
	}

	type jwsCase struct {
		name     string
		jws      string
		detached bool
	}
	var cases []jwsCase
	add := func(name, jws string, detached bool) { cases = append(cases, jwsCase{name, jws, detached}) }
	for alg, kid := range map[string]string{"ES256": "k-ec", "EdDSA": "k-ed", "RS256": "k-rsa", "PS256": "k-rsa"} {
		h := `{"alg":"` + alg + `","kid":"` + kid + `"}`
		add(alg+"/compact", sign(alg, h, false, false), false)
		add(alg+"/detached", sign(alg, h, true, false), true)
		add(alg+"/unencoded", sign(alg, `{"alg":"`+alg+`","kid":"`+kid+`","b64":false,"crit":["b64"]}`, true, true), true)
	}
	for _, h := range []string{
		`{"alg":"ES256","kid":"k-ec","alg":"ES256"}`,
		`{"alg":"ES256","kid":"k-ed","kid":"k-ec"}`,
		`{"alg":"ES256"}`,
		`{"alg":"ES256","kid":"k-ec","crit":["exp"],"exp":1}`,
		`{"alg":"ES256","kid":"k-ec","crit":[]}`,
		`{"alg":"ES256","kid":"k-ec","crit":["b64"]}`,
		`{"alg":"ES256","kid":"k-ec","b64":true,"crit":["b64"]}`,
		`{"alg":"ES256","kid":"k-ec","b64":false,"crit":["b64"]}`,
		`{"alg":"ES256","kid":"k-ec","b64":false}`,
		`{"alg":"ES256","kid":"k-ec","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`,
		`{"alg":"ES256","kid":"k-ec","x5u":"https://example.org/k.pem","jku":"https://example.org/jwks"}`,
		`{"alg":"ES256","kid":"k-ec","typ":"JWT","cty":"json","unknown":{"a":[1,2]}}`,
		`{"\u0061lg":"ES256","k\u0069d":"k-ec"}`,
		"\ufeff" + `{"alg":"ES256","kid":"k-ec"}`,
		` {"alg":"ES256","kid":"k-ec"} `,
		`{"alg": "ES256", "kid": "k-ec"}`, // Python's json.dumps
		`{"alg": "ES256", "kid": "k-ec", "b64": false, "crit": ["b64"]}`,
		"{\n  \"alg\": \"ES256\",\n  \"kid\": \"k-ec\"\n}",
		`{"alg":"ES256","kid":"k-ec",}`,
		`{"alg":"es256","kid":"k-ec"}`,
		`{"alg":"ES256 ","kid":"k-ec"}`,
		`{"alg":"ES256","kid":1}`,
		`{"alg":"ES256","kid":""}`,
		`{"alg":"ES256","kid":"k-ed"}`,
		`{"alg":"ES384","kid":"k-ec"}`,
		`{"alg":"ES256","kid":"k-ec","alg":"none"}`,
		`["alg","ES256"]`,
		`{"alg":"ES256","kid":"k-ec","nested":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		add("header/compact "+h, sign("ES256", h, false, false), false)
		add("header/detached "+h, sign("ES256", h, true, strings.Contains(strings.ReplaceAll(h, " ", ""), `"b64":false`)), true)
	}
	for _, kid := range []string{"k-ec-enc", "k-ec-ops"} {
		add("key-not-for-signatures/"+kid, sign("ES256", `{"alg":"ES256","kid":"`+kid+`"}`, false, false), false)
	}
	for _, h := range []string{`{"alg":"EdDSA","kid":"k-ec"}`, `{"alg":"RS256","kid":"k-ec"}`, `{"alg":"PS256","kid":"k-ed"}`} {
		alg := h[8:13]
		if alg == "EdDSA" {
			add("alg-for-another-key "+h, sign("EdDSA", h, false, false), false)
		} else {
			add("alg-for-another-key "+h, sign(alg, h, false, false), false)
		}
	}
	add("alg-none", b64([]byte(`{"alg":"none","kid":"k-ec"}`))+"."+b64(body)+".", false)

	// good's signature is random; one in about 15 has neither '-' nor '_',
	// which made "encoding/standard-alphabet" the valid JWS itself.
	good := sign("ES256", `{"alg":"ES256","kid":"k-ec"}`, false, false)
	for !strings.ContainsAny(good, "-_") {
		good = sign("ES256", `{"alg":"ES256","kid":"k-ec"}`, false, false)
	}
	parts := strings.Split(good, ".")
	h, p, s := parts[0], parts[1], parts[2]
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	r, sv := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	highS := new(big.Int).Sub(elliptic.P256().Params().N, sv)
	der := func() []byte { // ASN.1 SEQUENCE of two INTEGERs, as X.509 signatures are
		var buf bytes.Buffer
		for _, n := range []*big.Int{r, sv} {
			v := n.Bytes()
			if v[0]&0x80 != 0 {
				v = append([]byte{0}, v...)
			}
			buf.WriteByte(0x02)
			buf.WriteByte(byte(len(v)))
			buf.Write(v)
		}
		return append([]byte{0x30, byte(buf.Len())}, buf.Bytes()...)
	}()
	// bitsPast changes the unused low bits of a base64url string's last
	// character: the same bytes, another encoding.
	bitsPast := func(x string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, x[len(x)-1])
		return x[:len(x)-1] + string(alphabet[i^1])
	}
	for name, jws := range map[string]string{
		"encoding/header-padded":         h + "=." + p + "." + s,
		"encoding/signature-padded":      h + "." + p + "." + s + "==",
		"encoding/standard-alphabet":     strings.NewReplacer("-", "+", "_", "/").Replace(good),
		"encoding/header-bits-past":      bitsPast(h) + "." + p + "." + s,
		"encoding/payload-bits-past":     h + "." + bitsPast(p) + "." + s,
		"encoding/signature-bits-past":   h + "." + p + "." + bitsPast(s),
		"encoding/space-before":          " " + good,
		"encoding/newline-after":         good + "\n",
		"encoding/newline-inside":        h + ".\n" + p + "." + s,
		"encoding/four-parts":            good + ".x",
		"encoding/two-parts":             h + "." + p,
		"encoding/empty-signature":       h + "." + p + ".",
		"signature/der":                  h + "." + p + "." + b64(der),
		"signature/high-s":               h + "." + p + "." + b64(append(r.FillBytes(make([]byte, 32)), highS.FillBytes(make([]byte, 32))...)),
		"signature/truncated":            h + "." + p + "." + s[:len(s)-4],
		"signature/of-another-payload":   h + "." + b64([]byte(`{}`)) + "." + s,
		"json-serialization":             `{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`,
		"detached-with-payload-part-set": h + "." + p + "." + s,
	} {
		add(name, jws, name == "detached-with-payload-part-set")
	}
	// Payload parts encoded as RFC 7515 §2 does not allow, signed as
	// written: jwx's decoder read them, jwsin refuses them.
	signAsSent := func(p string) string {
		sum := sha256.Sum256([]byte(h + "." + p))
		r, s, _ := ecdsa.Sign(rand.Reader, ec, sum[:])
		return h + "." + p + "." + b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
	}
	add("encoding/payload-padded-signed-as-sent", signAsSent(base64.URLEncoding.EncodeToString(body)), false)
	add("detached/another-body", sign("ES256", `{"alg":"ES256","kid":"k-ec"}`, true, false), true) // sent with another body below

	// mustVerify: signatures in the agreed forms, whatever whitespace or
	// escapes their header's JSON holds, and with header members the
	// gateway ignores. jwsin refused a detached one whose header began with
	// a space.
	mustVerify := map[string]bool{}
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		for _, form := range []string{"/compact", "/detached", "/unencoded"} {
			mustVerify[alg+form] = true
		}
	}
	for _, h := range []string{` {"alg":"ES256","kid":"k-ec"} `, `{"alg": "ES256", "kid": "k-ec"}`, "{\n  \"alg\": \"ES256\",\n  \"kid\": \"k-ec\"\n}",
		`{"\u0061lg":"ES256","k\u0069d":"k-ec"}`, `{"alg":"ES256","kid":"k-ec","x5u":"https://example.org/k.pem","jku":"https://example.org/jwks"}`} {
		mustVerify["header/compact "+h], mustVerify["header/detached "+h] = true, true
	}
	mustVerify["header/detached "+`{"alg": "ES256", "kid": "k-ec", "b64": false, "crit": ["b64"]}`] = true
	mustVerify["signature/high-s"] = true

	in := make([]joseCase, len(cases))
	bodies := make([][]byte, len(cases))
	for i, c := range cases {
		in[i].JWS = c.jws
		if c.detached {
			b := body
			if c.name == "detached/another-body" {
				b = []byte(`{"noticeId":"TPE-2026-0043","note":"a.b"}`)
			}
			bodies[i] = b
			str := string(b)
			in[i].Body = &str
		}
	}
	jose := joseVerify(t, dir, set, in)

	both, stricter := 0, 0
	for i, c := range cases {
		m := jwsin.Message{Form: jwsin.FormCompact, JWS: c.jws}
		if c.detached {
			m = jwsin.Message{Form: jwsin.FormDetached, JWS: c.jws, Body: bodies[i]}
		}
		v, verr := jwsin.Verify(m, set)
		switch {
		case verr == nil && jose[i] != "ok":
			t.Errorf("%s: jwsin accepts (payload %q), jose refuses: %s", c.name, v.Payload, jose[i])
		case verr == nil:
			both++
			if !bytes.Equal(v.Payload, body) {
				t.Errorf("%s: jwsin accepts with payload %q", c.name, v.Payload)
			}
		case jose[i] == "ok":
			stricter++
			t.Logf("%s: jose accepts, jwsin refuses: %v", c.name, verr)
		}
		if mustVerify[c.name] && (verr != nil || jose[i] != "ok") {
			t.Errorf("%s: jwsin %v, jose %s; both must verify it", c.name, verr, jose[i])
		}
	}
	t.Logf("%d cases: %d accepted by both, %d by jose alone", len(cases), both, stricter)
}

// joseCase is a JWS for jose-verify.mjs: compact, or detached with Body.
type joseCase struct {
	JWS  string  `json:"jws"`
	Body *string `json:"body,omitempty"`
}

// joseVerify verifies each case with npm jose against set: "ok", or jose's
// error code.
func joseVerify(t *testing.T, dir string, set jwk.Set, cases []joseCase) []string {
	t.Helper()
	tmp := t.TempDir()
	casesFile, jwksFile := filepath.Join(tmp, "cases.json"), filepath.Join(tmp, "jwks.json")
	cb, _ := json.Marshal(cases)
	jb, _ := json.Marshal(set)
	if err := errors.Join(os.WriteFile(casesFile, cb, 0o644), os.WriteFile(jwksFile, jb, 0o644)); err != nil {
		t.Fatal(err)
	}
	out := runNode(t, dir, []string{"CASES=" + casesFile, "JWKS=" + jwksFile}, "jose-verify.mjs")
	var verdicts []string
	if err := json.Unmarshal(out, &verdicts); err != nil || len(verdicts) != len(cases) {
		t.Fatalf("jose's verdicts: %v (%d for %d cases)\n%s", err, len(verdicts), len(cases), out)
	}
	return verdicts
}

// TestJoseVerifiesOutbound: the detached JWS the gateway sends with a
// delivery to a JSON partner (X-JWS-Signature) verifies with npm jose
// against the gateway's published JWKS, and not with another body.
func TestJoseVerifiesOutbound(t *testing.T) {
	dir := nodeModules(t)
	key, err := receipt.NewES256Key("gw-1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "receipt.jwk")
	b, _ := json.Marshal(key)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := receipt.LoadSigner(file)
	if err != nil {
		t.Fatal(err)
	}
	body, other := `{"messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1"}`, `{"messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-2"}`
	sig, err := signer.SignDetached([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := joseVerify(t, dir, signer.JWKS(), []joseCase{{sig, &body}, {sig, &other}})
	if got[0] != "ok" || got[1] == "ok" {
		t.Fatalf("jose: %v; want the body verified and the other refused", got)
	}
}
