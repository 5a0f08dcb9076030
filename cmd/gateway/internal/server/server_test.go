package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

func example(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// response is an answer of the gateway, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send sends req with c and returns the answer, read whole; a request that
// gets no answer, or an answer that cannot be read, fails the test.
func send(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL.Path, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func post(t testing.TB, c *http.Client, url, contentType string, body []byte, hdr map[string]string) response {
	t.Helper()
	h := http.Header{"Content-Type": {contentType}}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return postHeader(t, c, url, body, h)
}

// postHeader posts a notice with the headers h, each value as given (a
// header may repeat).
func postHeader(t testing.TB, c *http.Client, url string, body []byte, h http.Header) response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/injury-notices", bytes.NewReader(body))
	req.Header = h
	return send(t, c, req)
}

func sign(t testing.TB, doc []byte, key jwk.Key, form partnerkit.Form) string {
	t.Helper()
	s, err := partnerkit.Sign(doc, key, form)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func count(t testing.TB, env *gatewaytest.Env, q string) int {
	t.Helper()
	var n int
	if err := env.Store.DB().QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAcceptExamples(t *testing.T) {
	for name, target := range pgtest.Targets(t) {
		t.Run(name, func(t *testing.T) { testAcceptExamples(t, target(t)) })
	}
}

func testAcceptExamples(t *testing.T, storeTarget string) {
	env := gatewaytest.Start(t, gatewaytest.Options{Store: storeTarget})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	tests := []struct {
		name, file string
		form       partnerkit.Form
		recordID   string
	}{
		{"ok/example-a-compact", "example-a.in.json", partnerkit.Compact, "b0867b30-be3c-5595-a939-c4d47c281950"},
		{"ok/example-b-detached", "example-b.in.json", partnerkit.Detached, "49608558-04ae-5d7c-a934-d2dd79fe3682"},
		{"ok/example-c-unencoded", "example-c.in.json", partnerkit.DetachedUnencoded, "1dbebe23-7e2a-5f97-93b8-aa32c700f991"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := example(t, tc.file)
			var r response
			if tc.form == partnerkit.Compact {
				r = post(t, c, env.Server.URL, "application/jose", []byte(sign(t, doc, a.SigningKey, tc.form)), nil)
			} else {
				r = post(t, c, env.Server.URL, "application/json", doc, map[string]string{"X-JWS-Signature": sign(t, doc, a.SigningKey, tc.form)})
			}
			if r.status != 202 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.header.Get(server.CorrelationHeader) == "" {
				t.Fatal("no correlation id")
			}
			if loc := r.header.Get("Location"); loc != "/v1/injury-notices/"+tc.recordID {
				t.Fatalf("Location %q, want the record's", loc)
			}
			var acc partnerkit.Accepted
			if err := json.Unmarshal(r.body, &acc); err != nil || acc.Status != "ACCEPTED" || acc.RecordID != tc.recordID {
				t.Fatalf("body %s", r.body)
			}
			rc, err := receipt.Verify(acc.Receipt, env.Receipts.JWKS())
			if err != nil {
				t.Fatalf("receipt: %v", err)
			}
			if rc.RecordID != tc.recordID || rc.PartnerID != "employer-a" || rc.PayloadSHA256 == "" || rc.NoticeID == "" || rc.ReceivedAt == "" {
				t.Fatalf("receipt payload %+v", rc)
			}
			// The record as logged (and published) keeps every rule of the
			// canonical record, received when the receipt says.
			var canonical []byte
			q := sqldialect.Rebind(`SELECT canonical FROM message_log WHERE record_id = ?`, store.IsPostgres(storeTarget))
			if err := env.Store.DB().QueryRow(q, tc.recordID).Scan(&canonical); err != nil {
				t.Fatal(err)
			}
			var rec schema.Record
			if err := json.Unmarshal(canonical, &rec); err != nil {
				t.Fatal(err)
			}
			at, _ := time.Parse(time.RFC3339, rc.ReceivedAt)
			adaptertest.CheckRecord(t, &rec, adaptertest.Source{Format: sgemployer.Format, ReceivedAt: at, Rates: mapping.ExampleRates})

			// The same notice again: 200 DUPLICATE with the first receipt.
			r2 := post(t, c, env.Server.URL, "application/jose", []byte(sign(t, doc, a.SigningKey, partnerkit.Compact)), nil)
			var dup partnerkit.Accepted
			if err := json.Unmarshal(r2.body, &dup); err != nil {
				t.Fatal(err)
			}
			if r2.status != 200 || dup.Status != "DUPLICATE" || dup.Receipt != acc.Receipt || r2.header.Get("Location") != "" {
				t.Fatalf("duplicate: %d %s (Location %q)", r2.status, r2.body, r2.header.Get("Location"))
			}

			// GET by the sender: status and receipt; by another partner: 404.
			get := func(cl *http.Client) (int, []byte) {
				resp, err := cl.Get(env.Server.URL + "/v1/injury-notices/" + tc.recordID)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp.StatusCode, b
			}
			if st, b := get(c); st != 200 || !bytes.Contains(b, []byte(acc.Receipt)) {
				t.Fatalf("GET by sender: %d %s", st, b)
			}
			b := env.Partners["employer-b"]
			if st, body := get(env.Client(&b.TLS)); st != 404 || bytes.Contains(body, []byte(tc.recordID+`","receipt`)) {
				t.Fatalf("GET by another partner: %d %s", st, body)
			}
		})
	}
	if n := count(t, env, `SELECT count(*) FROM records`); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
	if rep, err := env.Store.Verify(t.Context(), nil); err != nil || rep.BrokenSeq != 0 || rep.Entries != 6 {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

func TestConflict(t *testing.T) {
	for name, target := range pgtest.Targets(t) {
		t.Run(name, func(t *testing.T) { testConflict(t, target(t)) })
	}
}

func testConflict(t *testing.T, storeTarget string) {
	env := gatewaytest.Start(t, gatewaytest.Options{Store: storeTarget})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	doc := example(t, "example-a.in.json")
	if r := post(t, c, env.Server.URL, "application/jose", []byte(sign(t, doc, a.SigningKey, partnerkit.Compact)), nil); r.status != 202 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	changed := bytes.Replace(doc, []byte(`"mcDays": 21`), []byte(`"mcDays": 22`), 1)
	r := post(t, c, env.Server.URL, "application/jose", []byte(sign(t, changed, a.SigningKey, partnerkit.Compact)), nil)
	assertProblem(t, r, problem.Conflict, `[{"pointer":"/noticeId","code":"DUPLICATE"}]`)
	if n := count(t, env, `SELECT count(*) FROM records`); n != 1 {
		t.Fatalf("%d records", n)
	}
	if n := count(t, env, `SELECT count(*) FROM message_log WHERE status = 409 AND outcome = 'REJECTED'`); n != 1 {
		t.Fatalf("conflict logged %d times", n)
	}
}

// assertProblem checks an RFC 9457 response: media type, type URI, status,
// instance = correlation id, and the problems (pointer and code).
func assertProblem(t testing.TB, r response, kind problem.Kind, wantProblems string) {
	t.Helper()
	if r.status != kind.Status() {
		t.Fatalf("status %d, want %d: %s", r.status, kind.Status(), r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var doc struct {
		Type, Title, Detail, Instance string
		Status                        int
		Problems                      []struct{ Pointer, Code, Message string }
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Type != kind.TypeURI() || doc.Status != kind.Status() || doc.Title == "" || doc.Detail == "" {
		t.Fatalf("problem document %s", r.body)
	}
	if doc.Instance == "" || doc.Instance != r.header.Get(server.CorrelationHeader) {
		t.Fatalf("instance %q, header %q", doc.Instance, r.header.Get(server.CorrelationHeader))
	}
	if wantProblems != "" {
		type pc struct {
			Pointer string `json:"pointer"`
			Code    string `json:"code"`
		}
		got, want := []pc{}, []pc{}
		for _, p := range doc.Problems {
			got = append(got, pc{p.Pointer, p.Code})
		}
		if err := json.Unmarshal([]byte(wantProblems), &want); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if !bytes.Equal(gb, wb) {
			t.Fatalf("problems %s, want %s", gb, wb)
		}
	}
	if strings.Contains(string(r.body), "goroutine") || strings.Contains(string(r.body), ".go:") {
		t.Fatalf("internals in the response: %s", r.body)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// compactWith builds a compact JWS with an arbitrary header, signed by key
// under alg (or with sig given).
func compactWith(t testing.TB, hdr map[string]any, payload []byte, alg jwa.SignatureAlgorithm, key any) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	input := b64(h) + "." + b64(payload)
	if key == nil {
		return input + "."
	}
	sig, err := jwsbb.Sign(key, alg.String(), []byte(input), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

func rawKey(t testing.TB, k jwk.Key) any {
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestHostile(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{MaxBodyBytes: 1 << 20})
	a, b := env.Partners["employer-a"], env.Partners["employer-b"]
	c := env.Client(&a.TLS)
	doc := example(t, "example-a.in.json")
	kidA, _ := a.SigningKey.KeyID()
	aKey := rawKey(t, a.SigningKey)

	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	attackerJWK, _ := jwk.Import(attacker.Public())
	pubA, _ := jwk.PublicKeyOf(a.SigningKey)
	pubABytes, _ := json.Marshal(pubA)

	sigOnly := func(form partnerkit.Form) string { return sign(t, doc, b.SigningKey, form) }
	tampered := func() []byte {
		p := strings.Split(sign(t, doc, a.SigningKey, partnerkit.Compact), ".")
		p[1] = b64(bytes.Replace(doc, []byte("21"), []byte("22"), 1))
		return []byte(strings.Join(p, "."))
	}
	twoSigs := func() []byte {
		hb := jws.NewHeaders()
		_ = hb.Set(jws.KeyIDKey, kidA)
		out, err := jws.Sign(doc, jws.WithJSON(),
			jws.WithKey(jwa.ES256(), a.SigningKey, jws.WithProtectedHeaders(hb)),
			jws.WithKey(jwa.ES256(), b.SigningKey))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	deep := []byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000))
	big := bytes.Repeat([]byte("x"), 300000)
	otherUEN := bytes.Replace(doc, []byte("201912345K"), []byte("200000001A"), 1)
	invalid := bytes.Replace(doc, []byte(`"G5123456T"`), []byte(`"G5123456X"`), 1)

	sigProblem := `[{"pointer":"","code":"SIGNATURE"}]`
	tests := []struct {
		name        string
		contentType string
		body        []byte
		header      map[string]string
		kind        problem.Kind
		problems    string
	}{
		{"fail/alg-none", "application/jose", []byte(compactWith(t, map[string]any{"alg": "none", "kid": kidA}, doc, jwa.NoSignature(), nil)), nil, problem.Signature, sigProblem},
		{"fail/hs256-keyed-with-public-key", "application/jose", []byte(compactWith(t, map[string]any{"alg": "HS256", "kid": kidA}, doc, jwa.HS256(), pubABytes)), nil, problem.Signature, sigProblem},
		{"fail/partner-b-key-on-a-connection", "application/jose", []byte(sigOnly(partnerkit.Compact)), nil, problem.Signature, sigProblem},
		{"fail/partner-b-key-relabelled-with-a-kid", "application/jose", []byte(compactWith(t, map[string]any{"alg": "ES256", "kid": kidA}, doc, jwa.ES256(), rawKey(t, b.SigningKey))), nil, problem.Signature, sigProblem},
		{"fail/tampered-payload", "application/jose", tampered(), nil, problem.Signature, sigProblem},
		{"fail/unknown-kid", "application/jose", []byte(compactWith(t, map[string]any{"alg": "ES256", "kid": "nobody"}, doc, jwa.ES256(), aKey)), nil, problem.Signature, sigProblem},
		{"fail/embedded-jwk-attacker", "application/jose", []byte(compactWith(t, map[string]any{"alg": "ES256", "kid": kidA, "jwk": attackerJWK}, doc, jwa.ES256(), attacker)), nil, problem.Signature, sigProblem},
		{"fail/two-signatures-json", "application/jose", twoSigs(), nil, problem.Signature, sigProblem},
		{"fail/unknown-crit", "application/jose", []byte(compactWith(t, map[string]any{"alg": "ES256", "kid": kidA, "crit": []string{"urn:x"}, "urn:x": 1}, doc, jwa.ES256(), aKey)), nil, problem.Signature, sigProblem},
		{"fail/detached-missing-header", "application/json", doc, nil, problem.Signature, sigProblem},
		{"fail/detached-over-other-body", "application/json", doc, map[string]string{"X-JWS-Signature": sign(t, otherUEN, a.SigningKey, partnerkit.Detached)}, problem.Signature, sigProblem},
		{"fail/oversize-body", "application/jose", bytes.Repeat([]byte("a"), 1<<20+1), nil, problem.TooLarge, `[{"pointer":"","code":"RANGE"}]`},
		{"fail/oversize-payload", "application/json", big, map[string]string{"X-JWS-Signature": sign(t, big, a.SigningKey, partnerkit.Detached)}, problem.TooLarge, `[{"pointer":"","code":"RANGE"}]`},
		{"fail/1000-deep-nesting", "application/jose", []byte(sign(t, deep, a.SigningKey, partnerkit.Compact)), nil, problem.Invalid, `[{"pointer":"","code":"SYNTAX"}]`},
		{"fail/not-authorised-for-uen", "application/jose", []byte(sign(t, otherUEN, a.SigningKey, partnerkit.Compact)), nil, problem.NotAuthorised, `[{"pointer":"/employer/uen","code":"NOT_AUTHORISED"}]`},
		{"fail/invalid-document", "application/jose", []byte(sign(t, invalid, a.SigningKey, partnerkit.Compact)), nil, problem.Invalid, `[{"pointer":"/worker/idNo","code":"CHECKSUM"}]`},
		{"fail/media-type", "text/plain", []byte(sign(t, doc, a.SigningKey, partnerkit.Compact)), nil, problem.UnsupportedMediaType, `[]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, env, `SELECT count(*) FROM message_log WHERE outcome = 'REJECTED'`)
			r := post(t, c, env.Server.URL, tc.contentType, tc.body, tc.header)
			assertProblem(t, r, tc.kind, tc.problems)
			if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
				t.Fatalf("%d records accepted", n)
			}
			if after := count(t, env, `SELECT count(*) FROM message_log WHERE outcome = 'REJECTED'`); after != before+1 {
				t.Fatalf("rejection not logged (%d -> %d)", before, after)
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	env := gatewaytest.Start(t, gatewaytest.Options{Metrics: m})
	otherCA, _ := certs.NewCA("someone else")
	stranger := gatewaytest.NewPartner(t, otherCA, "employer-a", nil) // right name, wrong CA
	unregistered := gatewaytest.NewPartner(t, env.CA, "employer-z", nil)
	tests := []struct {
		name, reason string
		cert         *tls.Certificate
	}{
		{"fail/no-client-certificate", "no-certificate", nil},
		// Sent whatever CAs the server names (see sending).
		{"fail/certificate-from-another-ca", "untrusted", &stranger.TLS},
		{"fail/unregistered-certificate", "refused", &unregistered.TLS}, // by the partner check
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := gatewaytest.HandshakeFailures(t, m, "partner")
			cl := env.Client(nil)
			if tc.cert != nil {
				cl = sending(env, tc.cert)
			}
			resp, err := cl.Get(env.Server.URL + "/healthz")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("handshake accepted: %d", resp.StatusCode)
			}
			gatewaytest.RefusedFor(t, m, "partner", tc.reason, before)
		})
	}
	t.Run("fail/tls-1.1", func(t *testing.T) {
		a := env.Partners["employer-a"]
		cl := env.Client(&a.TLS)
		cl.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS10
		cl.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
		before := gatewaytest.HandshakeFailures(t, m, "partner")
		if resp, err := cl.Get(env.Server.URL + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatal("TLS 1.1 accepted")
		}
		gatewaytest.RefusedFor(t, m, "partner", "protocol", before)
	})
	t.Run("ok/tls-1.3", func(t *testing.T) {
		a := env.Partners["employer-a"]
		resp, err := env.Client(&a.TLS).Get(env.Server.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("negotiated %x", resp.TLS.Version)
		}
		// A partner learns that the gateway is up, nothing about its volumes or internals.
		if resp.StatusCode != http.StatusOK || string(body) != "{\"status\":\"ok\"}\n" {
			t.Fatalf("/healthz for a partner: %d %s", resp.StatusCode, body)
		}
	})
	if n := count(t, env, `SELECT count(*) FROM message_log`); n != 0 {
		t.Fatalf("%d entries logged for refused handshakes", n)
	}
}

func TestRoutes(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	for _, tc := range []struct {
		name, method, path string
		kind               problem.Kind
	}{
		{"fail/unknown-route", "GET", "/v2/nothing", problem.NotFound},
		{"fail/wrong-method", "DELETE", "/v1/injury-notices", problem.MethodNotAllowed},
		{"fail/wrong-method-on-record", "DELETE", "/v1/injury-notices/00000000-0000-5000-8000-000000000000", problem.MethodNotAllowed},
		{"fail/unknown-route-below-record", "DELETE", "/v1/injury-notices/00000000-0000-5000-8000-000000000000/x", problem.NotFound},
		{"fail/bad-record-id", "GET", "/v1/injury-notices/NOT-A-UUID", problem.BadRequest},
		{"fail/unknown-record", "GET", "/v1/injury-notices/00000000-0000-5000-8000-000000000000", problem.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, env.Server.URL+tc.path, nil)
			assertProblem(t, send(t, c, req), tc.kind, "")
		})
	}
	t.Run("ok/jwks", func(t *testing.T) {
		resp, err := c.Get(env.Server.URL + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		set, err := jwk.Parse(b)
		if err != nil || set.Len() != 1 || bytes.Contains(b, []byte(`"d"`)) {
			t.Fatalf("jwks %s (%v)", b, err)
		}
	})
}

// sending is a client of env that presents cert whatever CAs the server
// names in its request for one (a Go client presents only a certificate
// they issued, and would send none; curl sends it).
func sending(env *gatewaytest.Env, cert *tls.Certificate) *http.Client {
	cl := env.Client(nil)
	cl.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	return cl
}
