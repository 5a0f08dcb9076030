package receipt

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
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
			if _, err := RotateKeyFile(path); err != nil {
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
