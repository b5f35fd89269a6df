package ike

import (
	"crypto/ecdh"
	"fmt"
	"io"
	"math/big"
	"sync"
)

// The MODP primes of RFC 2409 §6 and RFC 3526 are p = 2^n - 2^(n-64) - 1 +
// 2^64 * (floor(2^(n-130) * pi) + k); we compute them from pi (Machin's formula) instead of
// carrying kilobytes of hex, and TestMODPPrimes checks each is a safe prime.
var modpK = map[Group]struct{ bits, k int64 }{
	MODP768: {768, 149686}, MODP1024: {1024, 129093}, MODP1536: {1536, 741804},
	MODP2048: {2048, 124476}, MODP3072: {3072, 1690314}, MODP4096: {4096, 240904},
	MODP6144: {6144, 929484}, MODP8192: {8192, 4743158},
}

var (
	modpOnce   sync.Once
	modpPrimes map[Group]*big.Int
)

// piFixed returns floor(pi * 2^bits).
func piFixed(bits uint) *big.Int {
	const guard = 64
	one := new(big.Int).Lsh(big.NewInt(1), bits+guard)
	atan := func(x int64) *big.Int { // arctan(1/x) * 2^(bits+guard)
		sum := new(big.Int)
		xx := big.NewInt(x * x)
		term := new(big.Int).Div(one, big.NewInt(x))
		t := new(big.Int)
		for k := int64(0); term.Sign() != 0; k++ {
			t.Div(term, big.NewInt(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, t)
			} else {
				sum.Sub(sum, t)
			}
			term.Div(term, xx)
		}
		return sum
	}
	pi := new(big.Int).Mul(atan(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(atan(239), big.NewInt(4)))
	return pi.Rsh(pi, guard)
}

// MODPPrime returns the prime of a MODP group, nil for other groups.
func MODPPrime(g Group) *big.Int {
	modpOnce.Do(func() {
		modpPrimes = map[Group]*big.Int{}
		pi := piFixed(8192 - 130 + 8)
		for grp, c := range modpK {
			n := uint(c.bits)
			f := new(big.Int).Rsh(pi, uint(8192-130+8)-(n-130)) // floor(2^(n-130) * pi)
			f.Add(f, big.NewInt(c.k))
			p := new(big.Int).Lsh(f, 64)
			p.Add(p, new(big.Int).Lsh(big.NewInt(1), n))
			p.Sub(p, new(big.Int).Lsh(big.NewInt(1), n-64))
			p.Sub(p, big.NewInt(1))
			modpPrimes[grp] = p
		}
	})
	return modpPrimes[g]
}

// KeyExchange returns a real public value for group g, of g.PublicLen() bytes, from a fresh
// private key read from rand: X25519 and the NIST curves through crypto/ecdh (x || y for
// ECP, RFC 5903), 2^x mod p for the MODP groups. Curve448 gets 56 random bytes (every
// 56-byte string is a valid X448 public value). The private key is thrown away: a probe
// never completes the exchange.
func KeyExchange(g Group, rand io.Reader) ([]byte, error) {
	var curve ecdh.Curve
	switch g {
	case Curve25519:
		curve = ecdh.X25519()
	case ECP256:
		curve = ecdh.P256()
	case ECP384:
		curve = ecdh.P384()
	case ECP521:
		curve = ecdh.P521()
	case Curve448:
		b := make([]byte, 56)
		if _, err := io.ReadFull(rand, b); err != nil {
			return nil, fmt.Errorf("ike: key exchange %s: %w", g, err)
		}
		return b, nil
	}
	if curve != nil {
		k, err := curve.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("ike: key exchange %s: %w", g, err)
		}
		pub := k.PublicKey().Bytes()
		if g != Curve25519 {
			pub = pub[1:] // drop the 0x04 uncompressed-point prefix
		}
		return pub, nil
	}
	p := MODPPrime(g)
	if p == nil {
		return nil, fmt.Errorf("ike: key exchange: unsupported group %s", g)
	}
	xb := make([]byte, 32)
	if _, err := io.ReadFull(rand, xb); err != nil {
		return nil, fmt.Errorf("ike: key exchange %s: %w", g, err)
	}
	x := new(big.Int).SetBytes(xb)
	x.SetBit(x, 255, 1) // never tiny
	y := new(big.Int).Exp(big.NewInt(2), x, p)
	return y.FillBytes(make([]byte, g.PublicLen())), nil
}
