package script

import "unicode/utf16"

// arc4 is the generator of the seedrandom library GenieACS seeds
// Math.random with: RC4 keyed by the seed string, its first 256 outputs
// dropped, each number built from 52 bits of output. Being the same
// algorithm, a script draws the same numbers for a device as under
// GenieACS: the "inform" provision derives a device's connection request
// password from Math.random, and a migrated device keeps it.
type arc4 struct {
	i, j uint8
	s    [256]uint8
}

// newARC4 seeds a generator as seedrandom(seed) does for a string seed.
func newARC4(seed string) *arc4 {
	// mixkey: fold the seed's UTF-16 code units into a key of at most
	// 256 bytes.
	var key [256]int
	keyLen := 0
	smear := 0
	for j, c := range utf16.Encode([]rune(seed)) {
		k := j & 255
		smear ^= key[k] * 19
		key[k] = (smear + int(c)) & 255
		keyLen = max(keyLen, k+1)
	}
	if keyLen == 0 {
		keyLen = 1 // the empty key is [0]
	}
	a := &arc4{}
	for i := range a.s {
		a.s[i] = uint8(i)
	}
	var j uint8
	for i := 0; i < 256; i++ {
		t := a.s[i]
		j += uint8(key[i%keyLen]) + t
		a.s[i], a.s[j] = a.s[j], t
	}
	a.g(256)
	return a
}

// g returns the next count outputs as one big-endian number (count ≤ 6
// keeps it exact in a float64).
func (a *arc4) g(count int) float64 {
	r := 0.0
	i, j := a.i, a.j
	for ; count > 0; count-- {
		i++
		t := a.s[i]
		j += t
		a.s[i] = a.s[j]
		a.s[j] = t
		r = r*256 + float64(a.s[a.s[i]+t])
	}
	a.i, a.j = i, j
	return r
}

// float returns a number in [0, 1) with 52 significant bits, as
// seedrandom's prng() does.
func (a *arc4) float() float64 {
	const (
		startDenom   = 1 << 48
		significance = 1 << 52
		overflow     = 1 << 53
	)
	n := a.g(6)
	d := float64(startDenom)
	x := 0.0
	for n < significance {
		n = (n + x) * 256
		d *= 256
		x = a.g(1)
	}
	for n >= overflow {
		n /= 2
		d /= 2
		x = float64(uint32(x) >> 1)
	}
	return (n + x) / d
}
