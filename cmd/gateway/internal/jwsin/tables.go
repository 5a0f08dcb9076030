package jwsin

import (
	"crypto/ecdsa"
	"math/big"
	"sync"
	"sync/atomic"

	"github.com/perkeso/jambatan/cmd/gateway/internal/es256"
)

// keyTables decides which P-256 keys verify with an es256 table.
//
// A table saves about 40 µs a verification but costs about 0.7 ms to
// build and 132 KB to keep, so it pays only for a key that signs often.
// A registry of many employers has a long tail of keys that sign a few
// notices a day beside a few submitting agents that sign most of them.
// An earlier cache built a table for every key on first use and, when
// 64 were held, dropped them all: with 1,000 keys signing in turn every
// verification built a table under the cache's lock, 0.68 ms where
// crypto/ecdsa takes 0.08 (BenchmarkVerifyKeys).
//
// So each key's uses are counted, the counts halved every window uses (a
// key that stops signing loses its claim), and a key earns a table once
// its count reaches earn; when max tables are held it takes the place of
// the least used only if it is used at least twice as much, so that keys
// used alike do not displace each other. A key without a table is
// verified by crypto/ecdsa.
type keyTables struct {
	max, earn uint32
	window    uint64
	build     func(*ecdsa.PublicKey) (*es256.Key, error)

	uses atomic.Uint64 // verifications, for the halving
	mu   sync.RWMutex
	keys map[*ecdsa.PublicKey]*keyUse
	held uint32 // keys with a table, built or being built
}

// keyUse is one key's count and table.
type keyUse struct {
	n     atomic.Uint32
	table atomic.Pointer[es256.Key]
	held  bool // a table is built or being built for it (under mu)
}

func newKeyTables(max, earn uint32, window uint64) *keyTables {
	return &keyTables{max: max, earn: earn, window: window, build: es256.NewKey, keys: map[*ecdsa.PublicKey]*keyUse{}}
}

// tables: 64 tables are 8.4 MB; a count window of 4,096 verifications is
// under a second at full intake.
var tables = newKeyTables(64, 16, 4096)

// verify reports whether sig (R ‖ S) is pub's signature of hash.
func (c *keyTables) verify(pub *ecdsa.PublicKey, hash *[32]byte, sig []byte) bool {
	u, n := c.use(pub)
	if t := u.table.Load(); t != nil {
		return t.Verify(hash, sig)
	}
	// Admission is tried as the count passes 16, 32, 64, …: a key kept out
	// by hotter ones does not take the lock on each verification.
	if n >= c.earn && n&(n-1) == 0 && c.admit(u) {
		if t, err := c.build(pub); err == nil {
			u.table.Store(t)
			return t.Verify(hash, sig)
		}
		c.mu.Lock()
		u.held, c.held = false, c.held-1
		c.mu.Unlock()
	}
	if len(sig) != 64 {
		return false
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, hash[:], r, s)
}

// use counts a verification with pub and returns its entry and count.
func (c *keyTables) use(pub *ecdsa.PublicKey) (*keyUse, uint32) {
	c.mu.RLock()
	u := c.keys[pub]
	c.mu.RUnlock()
	if u == nil {
		c.mu.Lock()
		if u = c.keys[pub]; u == nil {
			u = &keyUse{}
			c.keys[pub] = u
		}
		c.mu.Unlock()
	}
	n := u.n.Add(1)
	if c.uses.Add(1)%c.window == 0 {
		c.age()
	}
	return u, n
}

// age halves every count and forgets the keys whose count reaches 0 and
// that hold no table, so the map holds about the keys of the last two
// windows (keys replaced by a reload included).
func (c *keyTables) age() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, u := range c.keys {
		n := u.n.Load() / 2
		u.n.Store(n)
		if n == 0 && !u.held {
			delete(c.keys, k)
		}
	}
}

// admit reserves a table for u, taking the place of the least used key
// with a built table if max are held and u is used at least twice as much.
func (c *keyTables) admit(u *keyUse) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.held {
		return false // being built by another verification
	}
	if c.held >= c.max {
		var victim *keyUse
		for _, v := range c.keys {
			if v.held && v.table.Load() != nil && (victim == nil || v.n.Load() < victim.n.Load()) {
				victim = v
			}
		}
		if victim == nil || u.n.Load() < 2*victim.n.Load() {
			return false
		}
		victim.table.Store(nil)
		victim.held, c.held = false, c.held-1
	}
	u.held, c.held = true, c.held+1
	return true
}
