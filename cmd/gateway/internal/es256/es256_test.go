package es256

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"testing"

	"filippo.io/nistec"
)

// sig is R ‖ S as JWS writes it.
func sig(r, s *big.Int) []byte {
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func scalar(x *big.Int) []byte {
	b := make([]byte, 32)
	new(big.Int).Mod(x, order).FillBytes(b)
	return b
}

func mod(x *big.Int) *big.Int { return x.Mod(x, order) }

func inv(x *big.Int) *big.Int { return new(big.Int).ModInverse(x, order) }

func randScalar(t testing.TB) *big.Int {
	for {
		k, err := rand.Int(rand.Reader, order)
		if err != nil {
			t.Fatal(err)
		}
		if k.Sign() > 0 {
			return k
		}
	}
}

func hashOf(e *big.Int) *[32]byte {
	var h [32]byte
	e.FillBytes(h[:])
	return &h
}

// stdVerify is the standard library's verdict, the one Verify must give.
func stdVerify(pub *ecdsa.PublicKey, hash *[32]byte, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	return ecdsa.Verify(pub, hash[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

type vector struct {
	name string
	pub  *ecdsa.PublicKey
	hash *[32]byte
	sig  []byte
}

// publicOf is the public key of d.
func publicOf(t testing.TB, d *big.Int) *ecdsa.PublicKey {
	p, err := nistec.NewP256Point().ScalarBaseMult(scalar(d))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// xAtLeastN is a valid signature whose R has an x-coordinate of n or more,
// so that r is x - n: a key is solved for from R, r and s.
func xAtLeastN(t testing.TB) vector {
	var R *nistec.P256Point
	x := new(big.Int).Set(order)
	for R == nil {
		x.Add(x, big.NewInt(1))
		enc := append([]byte{2}, scalar32(x)...)
		if p, err := nistec.NewP256Point().SetBytes(enc); err == nil {
			R = p
		}
	}
	r := new(big.Int).Sub(x, order)
	s, e := randScalar(t), randScalar(t)
	w := inv(s)
	u1 := mod(new(big.Int).Mul(e, w))
	u2 := mod(new(big.Int).Mul(r, w))
	// Q = u2⁻¹ · (R - u1·G)
	u1G, _ := nistec.NewP256Point().ScalarBaseMult(scalar(u1))
	diff := nistec.NewP256Point().Add(R, nistec.NewP256Point().Negate(u1G))
	q, err := nistec.NewP256Point().ScalarMult(diff, scalar(inv(u2)))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), q.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return vector{"ok/x-of-R-at-least-n", pub, hashOf(e), sig(r, s)}
}

// scalar32 is x in 32 bytes, unreduced (x < 2^256).
func scalar32(x *big.Int) []byte { b := make([]byte, 32); x.FillBytes(b); return b }

func vectors(t testing.TB) []vector {
	d := randScalar(t)
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar(d))
	if err != nil {
		t.Fatal(err)
	}
	pub := &priv.PublicKey
	other := publicOf(t, randScalar(t))
	h := sha256.Sum256([]byte(`{"noticeId":"X-1"}`))
	r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	plus := func(x *big.Int, k int64) *big.Int { return new(big.Int).Add(x, big.NewInt(k)) }
	flipped := h
	flipped[31] ^= 1

	// A signature whose two products are the same point, so that the last
	// addition is a doubling: e = r·d, s = 2·r·d / k.
	k := randScalar(t)
	kG, _ := nistec.NewP256Point().ScalarBaseMult(scalar(k))
	kx, _ := kG.BytesX()
	rd := mod(new(big.Int).SetBytes(kx))
	sd := mod(new(big.Int).Mul(new(big.Int).Mul(big.NewInt(2), mod(new(big.Int).Mul(rd, d))), inv(k)))
	ed := mod(new(big.Int).Mul(rd, d))

	// e = -r·d makes u1·G + u2·Q the point at infinity.
	ri, si := randScalar(t), randScalar(t)
	ei := mod(new(big.Int).Neg(new(big.Int).Mul(ri, d)))

	allFF := make([]byte, 64)
	for i := range allFF {
		allFF[i] = 0xff
	}
	return []vector{
		{"ok/valid", pub, &h, sig(r, s)},
		{"ok/high-s", pub, &h, sig(r, new(big.Int).Sub(order, s))},
		{"ok/final-addition-doubles", pub, hashOf(ed), sig(rd, sd)},
		xAtLeastN(t),
		{"fail/hash-changed", pub, &flipped, sig(r, s)},
		{"fail/r-changed", pub, &h, sig(plus(r, 1), s)},
		{"fail/s-changed", pub, &h, sig(r, plus(s, 1))},
		{"fail/other-key", other, &h, sig(r, s)},
		{"fail/r-zero", pub, &h, sig(new(big.Int), s)},
		{"fail/s-zero", pub, &h, sig(r, new(big.Int))},
		{"fail/r-is-n", pub, &h, sig(order, s)},
		{"fail/s-is-n", pub, &h, sig(r, order)},
		{"fail/r-above-n", pub, &h, sig(plus(order, 1), s)},
		{"fail/s-above-n", pub, &h, sig(r, plus(order, 1))},
		{"fail/all-ones", pub, &h, allFF},
		{"fail/sum-is-infinity", pub, hashOf(ei), sig(ri, si)},
		{"fail/short", pub, &h, sig(r, s)[:63]},
		{"fail/long", pub, &h, append(sig(r, s), 0)},
		{"fail/empty", pub, &h, nil},
	}
}

func TestVerify(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			want := v.name[:3] == "ok/"
			if got := stdVerify(v.pub, v.hash, v.sig); got != want {
				t.Fatalf("crypto/ecdsa says %v; the vector is wrong", got)
			}
			k, err := NewKey(v.pub)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Verify(v.hash, v.sig); got != want {
				t.Fatalf("Verify = %v, want %v", got, want)
			}
		})
	}
}

// TestVerifyAgreesOnRandomSignatures signs many hashes with several keys
// and checks each signature, and each with one bit of it flipped, as
// crypto/ecdsa does.
func TestVerifyAgreesOnRandomSignatures(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 20
	}
	for range 4 {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKey(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			h := sha256.Sum256(fmt.Appendf(nil, "notice %d", i))
			good, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
			if err != nil {
				t.Fatal(err)
			}
			r, s := parseASN1(t, good)
			b := sig(r, s)
			if !k.Verify(&h, b) {
				t.Fatalf("a valid signature refused (%d)", i)
			}
			bad := append([]byte(nil), b...)
			bad[i%64] ^= 1 << (i % 8)
			if got, want := k.Verify(&h, bad), stdVerify(&priv.PublicKey, &h, bad); got != want {
				t.Fatalf("flipped bit %d: Verify = %v, crypto/ecdsa = %v", i%64*8+i%8, got, want)
			}
		}
	}
}

func parseASN1(t testing.TB, der []byte) (r, s *big.Int) {
	// SEQUENCE { INTEGER r, INTEGER s }, short lengths (P-256 fits).
	read := func(b []byte) (*big.Int, []byte) {
		if b[0] != 2 {
			t.Fatalf("not an INTEGER: %x", der)
		}
		n := int(b[1])
		return new(big.Int).SetBytes(b[2 : 2+n]), b[2+n:]
	}
	r, rest := read(der[2:])
	s, _ = read(rest)
	return r, s
}

// TestDigits checks that the signed digits add up to the scalar and stay
// within a row.
func TestDigits(t *testing.T) {
	max := new(big.Int).Sub(order, big.NewInt(1))
	scalars := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(32), big.NewInt(33), big.NewInt(63), big.NewInt(64), max}
	for range 1000 {
		scalars = append(scalars, randScalar(t))
	}
	for _, u := range scalars {
		var b [32]byte
		u.FillBytes(b[:])
		sum := new(big.Int)
		for i, d := range digits(&b) {
			if d < -rowLen || d > rowLen {
				t.Fatalf("digit %d of %x is %d", i, b, d)
			}
			sum.Add(sum, new(big.Int).Lsh(big.NewInt(int64(d)), uint(window*i)))
		}
		if sum.Cmp(u) != 0 {
			t.Fatalf("digits of %x add up to %x", b, sum)
		}
	}
}

func TestNewKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]*ecdsa.PublicKey{"fail/p384": &p384.PublicKey, "fail/nil": nil} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewKey(pub); err == nil {
				t.Fatal("NewKey accepted it")
			}
		})
	}
}

// FuzzVerify holds Verify to crypto/ecdsa on any hash and signature, for
// the keys of the seed vectors.
func FuzzVerify(f *testing.F) {
	vs := vectors(f)
	keys := make([]*Key, len(vs))
	for i, v := range vs {
		k, err := NewKey(v.pub)
		if err != nil {
			f.Fatal(err)
		}
		keys[i] = k
		f.Add(uint8(i), v.hash[:], v.sig)
	}
	f.Fuzz(func(t *testing.T, i uint8, hash, sig []byte) {
		n := int(i) % len(vs)
		var h [32]byte
		copy(h[:], hash)
		if got, want := keys[n].Verify(&h, sig), stdVerify(vs[n].pub, &h, sig); got != want {
			t.Fatalf("Verify = %v, crypto/ecdsa = %v", got, want)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("notice"))
	r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("table", func(b *testing.B) {
		k, err := NewKey(&priv.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		sg := sig(r, s)
		for b.Loop() {
			if !k.Verify(&h, sg) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&priv.PublicKey, h[:], r, s) {
				b.Fatal("refused")
			}
		}
	})
}

func BenchmarkNewKey(b *testing.B) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := NewKey(&priv.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}
