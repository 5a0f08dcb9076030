package jwsin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/es256"
)

// tableKey is a P-256 key with one signature of hash.
type tableKey struct {
	pub *ecdsa.PublicKey
	sig []byte
}

var tableHash = sha256.Sum256([]byte("notice"))

func tableKeys(t *testing.T, n int) []tableKey {
	t.Helper()
	ks := make([]tableKey, n)
	for i := range ks {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r, s, err := ecdsa.Sign(rand.Reader, priv, tableHash[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		ks[i] = tableKey{&priv.PublicKey, sig}
	}
	return ks
}

// countingTables is a keyTables that counts the tables it builds.
func countingTables(max, earn uint32, window uint64) (*keyTables, *atomic.Int64) {
	c, built := newKeyTables(max, earn, window), new(atomic.Int64)
	c.build = func(pub *ecdsa.PublicKey) (*es256.Key, error) {
		built.Add(1)
		return es256.NewKey(pub)
	}
	return c, built
}

// TestKeyTables: a key earns a table by its uses; a long tail of keys
// that sign a few times each builds none; a key used twice as much as the
// least used displaces it, keys used alike do not displace each other; the
// counts are forgotten; every signature verifies with a table or without.
func TestKeyTables(t *testing.T) {
	ks := tableKeys(t, 200)
	verify := func(t *testing.T, c *keyTables, k tableKey, times int) {
		t.Helper()
		for range times {
			if !c.verify(k.pub, &tableHash, k.sig) {
				t.Fatal("a valid signature was refused")
			}
		}
	}
	for _, tc := range []struct {
		name      string
		max, earn uint32
		window    uint64
		run       func(t *testing.T, c *keyTables)
		built     int // -1: any number
	}{
		{"ok/earned-on-the-16th-use", 64, 16, 1 << 20, func(t *testing.T, c *keyTables) {
			verify(t, c, ks[0], 15)
			if c.keys[ks[0].pub].table.Load() != nil {
				t.Fatal("a table after 15 uses")
			}
			verify(t, c, ks[0], 100)
		}, 1},
		{"ok/long-tail-builds-none", 64, 16, 1024, func(t *testing.T, c *keyTables) {
			for range 30 {
				for _, k := range ks {
					verify(t, c, k, 1)
				}
			}
		}, 0},
		{"ok/twice-as-used-displaces", 2, 16, 1 << 20, func(t *testing.T, c *keyTables) {
			verify(t, c, ks[0], 16)
			verify(t, c, ks[1], 16)
			verify(t, c, ks[2], 31)
			if c.keys[ks[2].pub].table.Load() != nil {
				t.Fatal("admitted below twice the least used")
			}
			verify(t, c, ks[2], 1)
			if c.keys[ks[2].pub].table.Load() == nil || c.held != 2 {
				t.Fatalf("not admitted at twice the least used (%d held)", c.held)
			}
		}, 3},
		{"ok/least-used-displaced", 2, 16, 1 << 20, func(t *testing.T, c *keyTables) {
			verify(t, c, ks[0], 64)
			verify(t, c, ks[1], 16)
			verify(t, c, ks[2], 32) // twice ks[1]'s uses, half ks[0]'s
			for i, want := range []bool{true, false, true} {
				if got := c.keys[ks[i].pub].table.Load() != nil; got != want {
					t.Fatalf("key %d holds a table: %v, want %v (the least used gives its place)", i, got, want)
				}
			}
		}, 3},
		{"ok/alike-keep-their-places", 2, 16, 1 << 20, func(t *testing.T, c *keyTables) {
			for range 500 {
				for _, k := range ks[:3] {
					verify(t, c, k, 1)
				}
			}
		}, 2},
		{"ok/quiet-key-displaced", 1, 16, 64, func(t *testing.T, c *keyTables) {
			verify(t, c, ks[0], 16)
			verify(t, c, ks[1], 64*8) // halved to 0 and forgotten ks[0]'s uses
		}, 2},
		{"ok/counts-forgotten", 64, 16, 100, func(t *testing.T, c *keyTables) {
			for _, k := range ks {
				verify(t, c, k, 1)
			}
			if len(c.keys) > 100 {
				t.Fatalf("%d keys counted after 200 single uses with a window of 100", len(c.keys))
			}
		}, 0},
		{"ok/concurrent", 2, 16, 64, func(t *testing.T, c *keyTables) {
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 200 {
						k := ks[(g+i)%4]
						if !c.verify(k.pub, &tableHash, k.sig) {
							t.Error("a valid signature was refused")
							return
						}
					}
				})
			}
			wg.Wait()
			if c.held > 2 {
				t.Fatalf("%d tables held, at most 2", c.held)
			}
		}, -1},
		{"fail/other-signature", 64, 1, 1 << 20, func(t *testing.T, c *keyTables) {
			for _, sig := range [][]byte{ks[1].sig, ks[0].sig[:63], nil} {
				if c.verify(ks[0].pub, &tableHash, sig) {
					t.Fatal("another key's, a short or no signature verified")
				}
			}
			if c.keys[ks[0].pub].table.Load() == nil {
				t.Fatal("no table")
			}
			if c.verify(ks[0].pub, &tableHash, ks[1].sig) {
				t.Fatal("another key's signature verified with the table")
			}
		}, 1},
		{"fail/other-signature-without-table", 64, 16, 1 << 20, func(t *testing.T, c *keyTables) {
			if c.verify(ks[0].pub, &tableHash, ks[1].sig) {
				t.Fatal("another key's signature verified")
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, built := countingTables(tc.max, tc.earn, tc.window)
			tc.run(t, c)
			if tc.built >= 0 && built.Load() != int64(tc.built) {
				t.Fatalf("%d tables built, want %d", built.Load(), tc.built)
			}
		})
	}
}

// TestKeyTableBuildFails: a key whose table cannot be built is verified
// without one, and gives its place back, so another key earns it.
func TestKeyTableBuildFails(t *testing.T) {
	ks := tableKeys(t, 2)
	c := newKeyTables(1, 1, 1<<20)
	c.build = func(pub *ecdsa.PublicKey) (*es256.Key, error) {
		if pub == ks[0].pub {
			return nil, errors.New("no table")
		}
		return es256.NewKey(pub)
	}
	for _, k := range ks {
		if !c.verify(k.pub, &tableHash, k.sig) {
			t.Fatal("a valid signature was refused")
		}
	}
	if c.keys[ks[0].pub].table.Load() != nil || c.keys[ks[1].pub].table.Load() == nil || c.held != 1 {
		t.Fatalf("the failed key's place was not given back: %d held", c.held)
	}
}
