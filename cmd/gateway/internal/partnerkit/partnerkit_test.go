package partnerkit_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

// busyGateway starts a gateway with a 64 KiB in-flight budget, a client of
// partner employer-a, and a request holding 63 KiB of the budget until
// finish, so that anything over 1 KiB is refused with 503 (a notice is
// about 4 KiB).
func busyGateway(t *testing.T) (env *gatewaytest.Env, c *partnerkit.Client, finish func()) {
	t.Helper()
	env = gatewaytest.Start(t, gatewaytest.Options{MaxInflightBytes: 64 << 10})
	caFile, certFile, keyFile, _ := env.WriteFiles(t, "employer-a")
	c, err := partnerkit.NewClient(env.Server.URL, caFile, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := env.Client(&env.Partners["employer-a"].TLS)
	finish = env.HoldBudget(t, "employer-a", 63<<10, func() int {
		r, err := hc.Post(env.Server.URL+"/v1/injury-notices", "application/jose", bytes.NewReader(bytes.Repeat([]byte("x"), 2<<10)))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	})
	return env, c, finish
}

// TestSubmitRetriesBusy: a submission answered 503 with Retry-After (the
// gateway's in-flight budget spent) is sent again and accepted once the
// budget has room; other answers are returned as they are.
func TestSubmitRetriesBusy(t *testing.T) {
	env, c, finish := busyGateway(t)
	key := env.Partners["employer-a"].SigningKey
	notice, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	var retried []int
	c.OnRetry = func(status, attempt int) { retried = append(retried, status, attempt) }
	go func() {
		time.Sleep(1500 * time.Millisecond)
		finish()
	}()
	start := time.Now()
	resp, err := c.Submit("/v1/injury-notices", notice, key, partnerkit.Compact)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusAccepted {
		t.Fatalf("HTTP %d: %s", resp.Status, resp.Body)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("accepted after %v: the budget was not held", waited)
	}
	if len(retried) < 2 || retried[0] != http.StatusServiceUnavailable || retried[1] != 1 {
		t.Fatalf("OnRetry heard %v, want 503 after the first send", retried)
	}

	// An answer other than 503 is not retried: the same notice again is a
	// duplicate at once, and garbage is refused at once.
	if resp, err = c.Submit("/v1/injury-notices", notice, key, partnerkit.Compact); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("again: %v %+v", err, resp)
	}
	if resp, err = c.Raw("POST", "/v1/injury-notices", map[string]string{"Content-Type": "application/jose"}, []byte("x")); err != nil || resp.Status != http.StatusUnauthorized {
		t.Fatalf("garbage: %v %+v", err, resp)
	}
}

// TestSubmitGivesUpWhenBusy: a gateway busy throughout is asked
// 1 + Retries times; OnRetry hears each retry (attempts 1 to Retries, not
// the last send, after which nothing follows), and the caller gets the
// last 503 as it was.
func TestSubmitGivesUpWhenBusy(t *testing.T) {
	_, c, finish := busyGateway(t)
	defer finish()
	var retried []int
	c.OnRetry = func(status, attempt int) { retried = append(retried, status, attempt) }
	resp, err := c.Raw("POST", "/v1/injury-notices", map[string]string{"Content-Type": "application/jose"}, bytes.Repeat([]byte("x"), 2<<10))
	if err != nil || resp.Status != http.StatusServiceUnavailable {
		t.Fatalf("busy throughout: %v %+v, want the 503", err, resp)
	}
	if want := []int{503, 1, 503, 2, 503, 3}; !slices.Equal(retried, want) || partnerkit.Retries != 3 {
		t.Fatalf("OnRetry heard %v, want %v", retried, want)
	}
}

// TestVerifyWith: a partner's receipt is held to the rules the gateway
// applies to what partners send it, not to what its header asks for.
func TestVerifyWith(t *testing.T) {
	ec, err := receipt.NewES256Key("ec-1")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := receipt.NewES256Key("ec-2") // not in the set
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = rsa2048.Set(jwk.KeyIDKey, "rsa-1")
	set := jwk.NewSet()
	for _, k := range []jwk.Key{ec, rsa2048} {
		pub, _ := jwk.PublicKeyOf(k)
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(alg jwa.SignatureAlgorithm, key jwk.Key, kid string) string {
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, kid)
		b, err := jws.Sign([]byte(`{"status":"RECEIVED"}`), jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name    string
		compact string
		ok      bool
	}{
		{"ok/ES256", sign(jwa.ES256(), ec, "ec-1"), true},
		{"ok/RS256", sign(jwa.RS256(), rsa2048, "rsa-1"), true},
		{"fail/alg-outside-allowlist", sign(jwa.RS512(), rsa2048, "rsa-1"), false},
		{"fail/unknown-kid", sign(jwa.ES256(), stranger, "ec-2"), false},
		{"fail/alg-none", "eyJhbGciOiJub25lIiwia2lkIjoiZWMtMSJ9.e30.", false},
		{"fail/json-serialization", `{"payload":"e30","signatures":[]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload, err := partnerkit.VerifyWith(tc.compact, set)
			if tc.ok && (err != nil || string(payload) != `{"status":"RECEIVED"}`) {
				t.Fatalf("VerifyWith = %q, %v; want the signed payload", payload, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("VerifyWith accepted it: %q", payload)
			}
		})
	}
}

// FuzzVerifyWith: a partner's receipt, in its answer to a delivery, is
// foreign input. Whatever its bytes, VerifyWith does not panic, and what
// verifies is what the registered key signed: no change to a signed
// receipt (its header, its payload, its signature) verifies with another
// payload.
func FuzzVerifyWith(f *testing.F) {
	key, err := receipt.NewES256Key("partner-1")
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := jwk.PublicKeyOf(key)
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		f.Fatal(err)
	}
	signed := map[string]bool{}
	for _, payload := range []string{`{"received":"req-1","status":"RECEIVED"}`, `{}`} {
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, "partner-1")
		b, err := jws.Sign([]byte(payload), jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := partnerkit.VerifyWith(string(b), set); err != nil {
			f.Fatalf("a receipt the key signed: %v", err)
		}
		f.Add(string(b))
		signed[payload] = true
	}
	f.Add("eyJhbGciOiJub25lIiwia2lkIjoicGFydG5lci0xIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6InBhcnRuZXItMSJ9.e30.c2ln")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, compact string) {
		payload, err := partnerkit.VerifyWith(compact, set)
		if err == nil && !signed[string(payload)] {
			t.Fatalf("%q verified with a payload the key never signed: %q", compact, payload)
		}
	})
}

// TestReadJWKS: a JWKS file loads; one over 1 MiB is refused by its size,
// not read to its end or reported as broken JSON where the read stopped.
func TestReadJWKS(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := jwk.Import(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(k)
	valid, _ := json.Marshal(set)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
		err     string // "" for a set of one key
	}{
		{"ok/one-key", valid, ""},
		{"ok/just-under-the-bound", append(bytes.Repeat([]byte(" "), 1<<20-len(valid)), valid...), ""},
		{"fail/over-1-mib", append(bytes.Repeat([]byte(" "), 1<<20), valid...), "a JWKS over 1048576 bytes"},
		{"fail/not-json", []byte("keys"), "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-"))
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := partnerkit.ReadJWKS(path)
			if tc.err == "" {
				if err != nil || got.Len() != 1 {
					t.Fatalf("ReadJWKS: %v (%v)", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ReadJWKS: %v, want an error with %q", err, tc.err)
			}
		})
	}
}

// TestAnswerBound: the partner tools read at most 1 MiB of an answer; a
// JWKS URL that answers more is refused by its size.
func TestAnswerBound(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	caFile, certFile, keyFile, _ := env.WriteFiles(t, "employer-a")
	srvCert, err := env.CA.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{{"ok/small", 100, true}, {"fail/over-1-mib", 1<<20 + 1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			big := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(`{"keys":[]}`))
				_, _ = w.Write(bytes.Repeat([]byte(" "), tc.size))
			}))
			big.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Cert.Raw}, PrivateKey: srvCert.Key}}}
			big.StartTLS()
			defer big.Close()
			c, err := partnerkit.NewClient(big.URL, caFile, certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.FetchJWKS(big.URL + "/.well-known/jwks.json")
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, resty.ErrResponseBodyTooLarge) {
				t.Fatalf("FetchJWKS: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestRedirectNotFollowed: the partner tools do not follow a redirect (a
// gateway URL that points somewhere else): the notice is not sent again to
// where it points, plain HTTP above all, and the caller sees the 3xx.
func TestRedirectNotFollowed(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	_, certFile, keyFile, _ := env.WriteFiles(t, "employer-a")
	var elsewhere int
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere++ }))
	defer plain.Close()
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plain.URL+r.URL.Path, status)
		}))
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, pemOf(srv.Certificate().Raw), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := partnerkit.NewClient(srv.URL, caFile, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Raw("POST", "/v1/injury-notices", map[string]string{"Content-Type": "application/jose"}, []byte("a.b.c"))
		srv.Close()
		if err != nil || resp.Status != status || elsewhere != 0 {
			t.Fatalf("redirect %d: %v %+v; %d requests where it pointed", status, err, resp, elsewhere)
		}
	}
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
