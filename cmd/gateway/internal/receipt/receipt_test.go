package receipt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

func signer(t *testing.T, name, kid string) *Signer {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := GenerateKeyFile(path, kid); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attached is an attestation as written before they were detached: the
// record embedded as the JWS payload. Events of that form may still sit on
// the verified topic and must keep verifying.
func attached(t *testing.T, s *Signer, record []byte) string {
	t.Helper()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, s.kid)
	_ = h.Set(jws.TypeKey, AttestationType)
	out, err := jws.Sign(record, jws.WithKey(jwa.ES256(), s.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestVerifyAttestation(t *testing.T) {
	gw := signer(t, "gw.json", "gw-1")
	other := signer(t, "other.json", "gw-1") // same kid, a key the JWKS does not hold
	rotated := signer(t, "rotated.json", "gw-2")
	record := []byte(`{"recordId":"r-1","mcDays":21}`)
	detached, err := gw.Attest(record)
	if err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(detached, "."); len(parts) != 3 || parts[1] != "" {
		t.Fatalf("attestation %q is not a detached compact JWS", detached)
	}
	receiptJWS, _ := gw.Sign(Receipt{RecordID: "r-1"})
	forged, _ := other.Attest(record)
	unknownKid, _ := rotated.Attest(record)
	for _, tc := range []struct {
		name, att string
		record    []byte
		want      string // attested bytes, or the error's start
	}{
		{"ok/detached", detached, record, string(record)},
		{"ok/attached-legacy", attached(t, gw, record), record, string(record)},
		{"ok/attached-legacy-returns-embedded-record", attached(t, gw, record), []byte(`{}`), string(record)},
		{"fail/record-changed", detached, []byte(`{"recordId":"r-1","mcDays":2}`), "attestation signature does not verify"},
		{"fail/other-key-same-kid", forged, record, "attestation signature does not verify"},
		{"fail/unknown-kid", unknownKid, record, `no key "gw-2"`},
		{"fail/receipt-is-not-an-attestation", receiptJWS, record, "attestation typ"},
		{"fail/not-a-jws", "abc", record, "attestation is not a compact JWS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyAttestation(tc.att, tc.record, gw.JWKS())
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q...", err, tc.want)
			}
		})
	}
}

// TestCompactVerifiesWithJWX: receipts and detached signatures built on the
// fast path verify with jwx's general verifier.
func TestCompactVerifiesWithJWX(t *testing.T) {
	gw := signer(t, "gw.json", "gw-1")
	rc, err := gw.Sign(Receipt{Issuer: Issuer, RecordID: "r-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(rc, gw.JWKS())
	if err != nil || got.RecordID != "r-1" {
		t.Fatalf("receipt: %+v, %v", got, err)
	}
	body := []byte(`{"a":1}`)
	det, err := gw.SignDetached(body)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := gw.JWKS().Key(0)
	if _, err := jws.Verify([]byte(det), jws.WithKey(jwa.ES256(), key), jws.WithDetachedPayload(body)); err != nil {
		t.Fatalf("detached: %v", err)
	}
	if _, err := jws.Verify([]byte(det), jws.WithKey(jwa.ES256(), key), jws.WithDetachedPayload([]byte(`{"a":2}`))); err == nil {
		t.Fatal("detached signature verified over other bytes")
	}
}

func BenchmarkSign(b *testing.B) {
	dir := b.TempDir()
	_ = GenerateKeyFile(filepath.Join(dir, "k.json"), "gw-1")
	s, _ := LoadSigner(filepath.Join(dir, "k.json"))
	r := Receipt{Issuer: Issuer, Status: "ACCEPTED", RecordID: "0b0f3c1e-4b8a-5d2e-9b6c-2f1d3e4a5b6c", PartnerID: "demo-employer",
		Format: "sg-employer-notice/v1", SourceKey: "SG_UEN:201912345K:TPE-2026-0042", NoticeID: "TPE-2026-0042",
		PayloadSHA256: strings.Repeat("ab", 32), ReceivedAt: "2026-03-10T01:02:03Z", CorrelationID: "c-1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRotateKeyFile: each rotation puts a key with a kid of its own in
// front, also three within one second; the retired keys stay in the JWKS,
// and a receipt signed before each rotation still verifies after the last.
func TestRotateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipt.json")
	if err := GenerateKeyFile(path, "perkeso-receipt-dev-1"); err != nil {
		t.Fatal(err)
	}
	var receipts []string
	kids := map[string]bool{}
	for i := 0; i < 4; i++ {
		s, err := LoadSigner(path)
		if err != nil {
			t.Fatal(err)
		}
		kids[s.kid] = true
		rc, err := s.Sign(Receipt{Issuer: Issuer, Status: "ACCEPTED", RecordID: "r" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, rc)
		if i < 3 {
			if _, _, err := RotateKeyFile(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	last, _ := LoadSigner(path)
	if len(kids) != 4 || last.JWKS().Len() != 4 {
		t.Fatalf("%d distinct kids over 4 keys, JWKS of %d: %v", len(kids), last.JWKS().Len(), kids)
	}
	for i, rc := range receipts {
		if r, err := Verify(rc, last.JWKS()); err != nil || r.RecordID != "r"+strconv.Itoa(i) {
			t.Fatalf("receipt %d no longer verifies after the rotations: %v", i, err)
		}
	}
}

// TestLoadSignerForms: a receipt key file is one private JWK or a JWK Set
// whose first key signs, a set of one included (an operator who drops the
// retired keys by hand leaves one); anything else is refused with the file
// named.
func TestLoadSignerForms(t *testing.T) {
	dir := t.TempDir()
	single := filepath.Join(dir, "single.json")
	if err := GenerateKeyFile(single, "gw-1"); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(single)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path string
		want       string // the error's text after the path, or "" for the signer's kid gw-1
	}{
		{"ok/one-jwk", single, ""},
		{"ok/set-of-one", write("one.json", `{"keys":[`+string(key)+`]}`), ""},
		{"fail/empty-set", write("empty.json", `{"keys":[]}`), "a JWK Set with no key"},
		{"fail/two-keys-one-kid", write("twice.json", `{"keys":[`+string(key)+`,`+string(key)+`]}`), `two keys under kid "gw-1"`},
		{"fail/member-twice", write("member.json", `{"keys":[`+string(key)+`],"keys":[]}`), `not a JWK or JWK Set: duplicate member name "keys"`},
		{"fail/second-value", write("second.json", string(key)+`{}`), "not a JWK or JWK Set: data after the document"},
		{"fail/not-json", write("text.json", `receipt key`), "not a JWK or JWK Set"},
		{"fail/public-key", write("public.json", `{"kty":"EC","crv":"P-256","kid":"gw-1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`), "receipt key must be a private EC P-256 JWK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSigner(tc.path)
			if tc.want == "" {
				if err != nil || s.KeyID() != "gw-1" || s.JWKS().Len() != 1 {
					t.Fatalf("signer %v, %v; want gw-1 alone in its JWKS", s, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.path+": "+tc.want) {
				t.Fatalf("error %v, want %q", err, tc.path+": "+tc.want)
			}
		})
	}
}

// TestRotateKeyFileNames: the new kid names the rotation's second; more
// rotations within it count on from -2, each a kid of its own. A file with
// no key is not rotated (there would be nothing to retire and no receipt
// key to have been serving).
func TestRotateKeyFileNames(t *testing.T) {
	at := time.Date(2026, 11, 27, 23, 59, 58, 0, time.FixedZone("MYT", 8*3600))
	now = func() time.Time { return at }
	t.Cleanup(func() { now = time.Now })
	path := filepath.Join(t.TempDir(), "receipt.json")
	if err := GenerateKeyFile(path, "perkeso-receipt-dev-1"); err != nil {
		t.Fatal(err)
	}
	const base = "perkeso-receipt-20261127T155958Z"
	for _, want := range []string{base, base + "-2", base + "-3"} {
		kid, first, err := RotateKeyFile(path)
		if err != nil || kid != want || first {
			t.Fatalf("rotated to %q, %v; want %q", kid, err, want)
		}
	}
	s, err := LoadSigner(path)
	if err != nil || s.KeyID() != base+"-3" || s.JWKS().Len() != 4 {
		t.Fatalf("after three rotations: signer %v, %v", s, err)
	}
	// A path with no file yet gets its first key, its owner's alone.
	fresh := filepath.Join(t.TempDir(), "fresh.json")
	if kid, first, err := RotateKeyFile(fresh); err != nil || !first || kid != base {
		t.Fatalf("ok/first: %q, first %v, %v", kid, first, err)
	}
	if s, err := LoadSigner(fresh); err != nil || s.KeyID() != base || s.JWKS().Len() != 1 {
		t.Fatalf("ok/first: signer %v, %v", s, err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ok/first: %v, %v; want mode 0600", fi, err)
	}
	empty := filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(empty, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if kid, _, err := RotateKeyFile(empty); err == nil || !strings.Contains(err.Error(), "a JWK Set with no key") {
		t.Fatalf("an empty JWK Set rotated to %q: %v", kid, err)
	}
}

// TestWritePublicJWKS: the file holds the current and retired keys' public
// halves only, readable by the ingest's user, and each verifies what its
// key signed.
func TestWritePublicJWKS(t *testing.T) {
	dir := t.TempDir()
	keyFile, out := filepath.Join(dir, "receipt.json"), filepath.Join(dir, "jwks.json")
	if err := GenerateKeyFile(keyFile, "gw-1"); err != nil {
		t.Fatal(err)
	}
	old, _ := LoadSigner(keyFile)
	rc, _ := old.Sign(Receipt{Issuer: Issuer, RecordID: "r-1"})
	if _, _, err := RotateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := WritePublicJWKS(keyFile, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(out)
	if strings.Contains(string(b), `"d"`) || fi.Mode().Perm() != 0o644 {
		t.Fatalf("JWKS file (mode %v) holds a private member or is not 0644:\n%s", fi.Mode().Perm(), b)
	}
	set, err := jwk.Parse(b)
	if err != nil || set.Len() != 2 {
		t.Fatalf("JWKS of %v keys, %v; want the current and the retired", set, err)
	}
	if r, err := Verify(rc, set); err != nil || r.RecordID != "r-1" {
		t.Fatalf("a receipt of the retired key: %v", err)
	}
	if err := WritePublicJWKS(filepath.Join(dir, "missing.json"), out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no key file: %v, want it named missing", err)
	}
}

// TestStatementReceipts: a case message's and an event's receipts verify
// against the gateway's JWKS under their own typ only, so that one kind of
// statement cannot be passed off as another, and not against another key.
func TestStatementReceipts(t *testing.T) {
	gw := signer(t, "gw.json", "gw-1")
	other := signer(t, "other.json", "gw-1")
	cm := CaseMessage{Issuer: Issuer, Operation: "NotifyInjury", CaseID: "BN-1", Sender: "bn-spk", MessageID: "m-1",
		ReceivedAt: "2026-11-27T00:00:00Z", BodySHA256: strings.Repeat("0", 64)}
	caseJWS, err := gw.SignCaseMessage(cm)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := VerifyCaseMessage(caseJWS, gw.JWKS()); err != nil || *got != cm {
		t.Fatalf("case message: %+v, %v", got, err)
	}
	statusJWS, _ := gw.SignEvent(DeliveryStatusType, []byte(`{"id":"o-1","state":"delivered"}`))
	if got, err := VerifyEvent(statusJWS, gw.JWKS(), DeliveryStatusType); err != nil || string(got) != `{"id":"o-1","state":"delivered"}` {
		t.Fatalf("delivery status: %s, %v", got, err)
	}
	forged, _ := other.SignEvent(DeliveryStatusType, []byte(`{}`))
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"fail/status-as-rejection", "rejection receipt typ", second(VerifyEvent(statusJWS, gw.JWKS(), RejectionType))},
		{"fail/status-as-case-message", "case message receipt typ", second(VerifyCaseMessage(statusJWS, gw.JWKS()))},
		{"fail/case-message-as-status", "delivery-status receipt typ", second(VerifyEvent(caseJWS, gw.JWKS(), DeliveryStatusType))},
		{"fail/other-key", "delivery-status receipt signature does not verify", second(VerifyEvent(forged, gw.JWKS(), DeliveryStatusType))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.HasPrefix(tc.err.Error(), tc.want) {
				t.Fatalf("error %v, want %q...", tc.err, tc.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

// TestSignES256RFC6979 checks the receipt signature against RFC 6979's own
// example (appendix A.2.5: P-256, SHA-256, message "sample"): the nonce is
// the RFC's, and R and S are laid out as JWS wants them (RFC 7518 §3.4).
func TestSignES256RFC6979(t *testing.T) {
	d, _ := new(big.Int).SetString("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", 16)
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	const want = "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716" +
		"F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
	for range 2 { // the same bytes each time
		sig, err := signES256(key, []byte("sample"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ToUpper(hex.EncodeToString(sig)); got != want {
			t.Fatalf("signature\n got %s\nwant %s", got, want)
		}
	}
}
