// Package es256 verifies ES256 signatures (ECDSA on P-256 with SHA-256,
// RFC 7518 §3.4) with a table of multiples of the public key.
//
// Verification computes u1·G + u2·Q. crypto/ecdsa takes u1·G from a fixed
// table of the generator's multiples, but computes u2·Q afresh: 256
// doublings and about 50 additions, most of the 80-87 µs a verification
// took here and 13 % of the gateway's CPU under load. A partner's key Q is
// registered and used for thousands of notices, so a table of its
// multiples, built once (about 0.7 ms, 132 KB), turns u2·Q into 43
// additions and the verification into 39-40 µs (BenchmarkVerify).
//
// Everything a verification reads is public (the key, the hash, the
// signature), so the table is walked in variable time; the point
// arithmetic is filippo.io/nistec, the standard library's own P-256
// (crypto/internal/fips140/nistec) exported. The tests hold the result
// to crypto/ecdsa.Verify on valid, tampered and constructed signatures,
// and FuzzVerify on any input.
package es256

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"math/big"

	"filippo.io/nistec"
)

const (
	// window is the width of u2's signed digits: each digit d lies in
	// [-32, 32], so a row holds the 32 multiples 1·B … 32·B of its base B
	// and a negative digit adds a negated one.
	window  = 6
	windows = 256/window + 1 // 43: 258 bits, room for the top digit's carry
	rowLen  = 1 << (window - 1)
)

// order is n, the order of P-256's group.
var order = elliptic.P256().Params().N

// Key is one public key with its table.
type Key struct {
	// rows[i][d-1] = d · 2^(window·i) · Q
	rows *[windows][rowLen]nistec.P256Point
}

// NewKey builds the table of pub, a P-256 key.
func NewKey(pub *ecdsa.PublicKey) (*Key, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, errors.New("es256: not a P-256 key")
	}
	b, err := pub.Bytes()
	if err != nil {
		return nil, err
	}
	q, err := nistec.NewP256Point().SetBytes(b)
	if err != nil {
		return nil, err
	}
	k := &Key{rows: new([windows][rowLen]nistec.P256Point)}
	base := q
	for i := range k.rows {
		row := &k.rows[i]
		row[0].Set(base)
		for d := 1; d < rowLen; d++ {
			row[d].Add(&row[d-1], base)
		}
		for range window {
			base.Double(base)
		}
	}
	return k, nil
}

// Verify reports whether sig, the 64 bytes R ‖ S of a JWS signature
// (RFC 7518 §3.4), is valid for hash, the SHA-256 of the signing input.
// It follows SEC 1 v2 §4.1.4 (FIPS 186-5 §6.4.2).
func (k *Key) Verify(hash *[32]byte, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {
		return false
	}
	// With a 256-bit hash and a 256-bit order, e is the hash as an
	// integer; it may exceed n, and is reduced with the product below.
	e := new(big.Int).SetBytes(hash[:])
	w := new(big.Int).ModInverse(s, order)
	u1 := e.Mod(e.Mul(e, w), order)
	u2 := w.Mod(w.Mul(r, w), order)
	var b1, b2 [32]byte
	u1.FillBytes(b1[:])
	u2.FillBytes(b2[:])

	p, err := nistec.NewP256Point().ScalarBaseMult(b1[:])
	if err != nil {
		return false
	}
	p.Add(p, k.mult(&b2))
	x, err := p.BytesX() // fails on the point at infinity
	if err != nil {
		return false
	}
	// x < p < 2n: x mod n is x or x - n.
	v := new(big.Int).SetBytes(x)
	if v.Cmp(order) >= 0 {
		v.Sub(v, order)
	}
	return v.Cmp(r) == 0
}

// mult is u·Q, u a big-endian scalar below n.
func (k *Key) mult(u *[32]byte) *nistec.P256Point {
	acc := nistec.NewP256Point() // the point at infinity
	var neg nistec.P256Point
	for i, d := range digits(u) {
		switch {
		case d > 0:
			acc.Add(acc, &k.rows[i][d-1])
		case d < 0:
			acc.Add(acc, neg.Negate(&k.rows[i][-d-1]))
		}
	}
	return acc
}

// digits writes u in signed base 2^window: u = Σ d[i]·2^(window·i), each
// d[i] in [-2^(window-1), 2^(window-1)].
func digits(u *[32]byte) [windows]int {
	var d [windows]int
	carry := 0
	for i := range d {
		v := bits(u, i*window) + carry
		carry = 0
		if v > rowLen {
			v -= 1 << window
			carry = 1
		}
		d[i] = v
	}
	return d
}

// bits is the window bits of u from bit position pos (0 the least
// significant); bits past the 256th are zero.
func bits(u *[32]byte, pos int) int {
	v := 0
	for j := range window {
		b := pos + j
		if b >= 256 {
			break
		}
		v |= int(u[31-b/8]>>(b%8)&1) << j
	}
	return v
}
