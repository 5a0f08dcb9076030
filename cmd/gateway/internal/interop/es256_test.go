package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/es256"
)

// TestNodeAgreesWithES256: the gateway's ES256 verifier (es256, a table of
// each key's multiples) gives OpenSSL's verdict, through Node's crypto, on
// signatures OpenSSL made and on their variants: the high-S twin, a bit
// flipped, another message, r or s zero, n or above, random bytes.
func TestNodeAgreesWithES256(t *testing.T) {
	need(t, "node")
	out := runNode(t, filepath.Join("testdata", "node"), []string{"KEYS=8", "SIGS=200"}, "es256-signatures.mjs")
	var keys []struct {
		X, Y  string
		Cases []struct {
			Name     string
			Msg, Sig []byte
			OK       bool
		}
	}
	if err := json.Unmarshal(out, &keys); err != nil {
		t.Fatalf("node's output: %v", err)
	}
	total, accepted := 0, 0
	names := map[string]bool{}
	for _, k := range keys {
		pub := ecdsaPublic(t, k.X, k.Y)
		table, err := es256.NewKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range k.Cases {
			sum := sha256.Sum256(c.Msg)
			if got := table.Verify(&sum, c.Sig); got != c.OK {
				t.Errorf("%s (key %s, signature %x): es256 says %v, OpenSSL %v", c.Name, k.X, c.Sig, got, c.OK)
			}
			total++
			if c.OK {
				accepted++
				names[c.Name] = true
			}
		}
	}
	if total < 8*200*6 || !names["valid"] || !names["high-s"] {
		t.Fatalf("%d cases, accepted kinds %v: the corpus is not what the script should write", total, names)
	}
	t.Logf("%d signatures by %d keys, %d valid; es256 and OpenSSL agree on each", total, len(keys), accepted)
}

// ecdsaPublic is the P-256 key of a JWK's x and y.
func ecdsaPublic(t *testing.T, x, y string) *ecdsa.PublicKey {
	t.Helper()
	xb, errX := base64.RawURLEncoding.DecodeString(x)
	yb, errY := base64.RawURLEncoding.DecodeString(y)
	if errX != nil || errY != nil || len(xb) != 32 || len(yb) != 32 {
		t.Fatalf("JWK x %q, y %q", x, y)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
