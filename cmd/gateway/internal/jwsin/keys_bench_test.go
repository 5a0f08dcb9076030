package jwsin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// BenchmarkVerifyKeys verifies ES256 notices signed by n partners' keys in
// turn: one partner sending everything, and many partners sending a few
// each, as a registry of employers does; "agent" is 1,000 keys with every
// other notice signed by one more (a submitting agent's).
func BenchmarkVerifyKeys(b *testing.B) {
	for _, c := range []struct {
		name  string
		n     int
		agent bool
	}{{"keys=1", 1, false}, {"keys=64", 64, false}, {"keys=1000", 1000, false}, {"agent", 1000, true}} {
		b.Run(c.name, func(b *testing.B) {
			msgs, sets := signedByKeys(b, c.n+1)
			i, turn := 0, 0
			for b.Loop() {
				k := i
				if c.agent && turn%2 == 0 {
					k = c.n
				} else {
					i = (i + 1) % c.n
				}
				turn++
				if _, err := Verify(msgs[k], sets[k]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// signedByKeys is n messages, each signed by a P-256 key of its own, and
// the key sets that hold each.
func signedByKeys(t testing.TB, n int) ([]Message, []jwk.Set) {
	msgs, sets := make([]Message, n), make([]jwk.Set, n)
	for i := range n {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := newSigner(t, fmt.Sprintf("k%d", i), priv, jwa.ES256())
		sets[i] = jwk.NewSet()
		if err := sets[i].AddKey(s.public(t)); err != nil {
			t.Fatal(err)
		}
		msgs[i] = Message{Form: FormCompact, JWS: s.sign(t, payload, nil, false)}
	}
	return msgs, sets
}
