// MurmurHash3 x64_128 (Austin Appleby's public-domain design) in 32-bit arithmetic, so it runs
// anywhere JavaScript does and does not allocate BigInts on the hot path. A 64-bit lane is a pair
// of uint32 numbers (hi, lo). Input words are read little-endian, as on the x86/arm64 hosts that
// Cilium runs on (its Go implementation reads native-endian words).

// mul64 and the mixers return through a typed array: writing a uint32 above 2^31 to a
// module-level `let` boxes it (a heap allocation per write), a Uint32Array element does not.
const R = new Uint32Array(2)

/** (ah:al) * (bh:bl) mod 2^64 into R[0]:R[1]. */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff
  const a1 = al >>> 16
  const b0 = bl & 0xffff
  const b1 = bl >>> 16
  // al*bl as a full 64-bit product from 16-bit limbs: every partial fits a double exactly.
  const mid = a0 * b1 + a1 * b0
  const lo = a0 * b0 + (mid % 0x10000) * 0x10000
  const carry = Math.floor(lo / 0x100000000)
  const hi = a1 * b1 + Math.floor(mid / 0x10000) + carry
  R[1] = lo >>> 0
  R[0] = (hi + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0
}

// C1 = 0x87c37b91114253d5, C2 = 0x4cf5ad432745937f
const C1H = 0x87c37b91
const C1L = 0x114253d5
const C2H = 0x4cf5ad43
const C2L = 0x2745937f

/** fmix64 of hi:lo into R[0]:R[1]. */
function fmix64(hi: number, lo: number): void {
  lo = (lo ^ (hi >>> 1)) >>> 0 // k ^= k >>> 33
  mul64(hi, lo, 0xff51afd7, 0xed558ccd)
  hi = R[0]!
  lo = (R[1]! ^ (R[0]! >>> 1)) >>> 0
  mul64(hi, lo, 0xc4ceb9fe, 0x1a85ec53)
  R[1] = (R[1]! ^ (R[0]! >>> 1)) >>> 0
}

/** k1 = rotl64(k1 * C1, 31) * C2, into R[0]:R[1]. */
function mixK1(hi: number, lo: number): void {
  mul64(hi, lo, C1H, C1L)
  // rotl 31
  const h = ((R[0]! << 31) | (R[1]! >>> 1)) >>> 0
  const l = ((R[1]! << 31) | (R[0]! >>> 1)) >>> 0
  mul64(h, l, C2H, C2L)
}

/** k2 = rotl64(k2 * C2, 33) * C1, into R[0]:R[1]. */
function mixK2(hi: number, lo: number): void {
  mul64(hi, lo, C2H, C2L)
  // rotl 33 = swap halves, then rotl 1
  const h = ((R[1]! << 1) | (R[0]! >>> 31)) >>> 0
  const l = ((R[0]! << 1) | (R[1]! >>> 31)) >>> 0
  mul64(h, l, C1H, C1L)
}

function le32(data: Uint8Array, i: number): number {
  return (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) >>> 0
}

/**
 * MurmurHash3 x64_128 of `data[0..length)` with a 32-bit seed. Writes h1 and h2 into `out` as
 * [h1 hi, h1 lo, h2 hi, h2 lo] (uint32 each).
 */
export function murmur3Into(
  data: Uint8Array,
  length: number,
  seed: number,
  out: Uint32Array,
): void {
  let h1h = 0
  let h1l = seed >>> 0
  let h2h = 0
  let h2l = seed >>> 0
  const nblocks = length >>> 4
  let t = 0
  for (let b = 0; b < nblocks; b++) {
    const i = b << 4
    mixK1(le32(data, i + 4), le32(data, i))
    h1h = (h1h ^ R[0]!) >>> 0
    h1l = (h1l ^ R[1]!) >>> 0
    // h1 = rotl(h1, 27) + h2; h1 = h1*5 + 0x52dce729
    t = ((h1h << 27) | (h1l >>> 5)) >>> 0
    h1l = ((h1l << 27) | (h1h >>> 5)) >>> 0
    h1h = t
    t = h1l + h2l
    h1l = t >>> 0
    h1h = (h1h + h2h + (t > 0xffffffff ? 1 : 0)) >>> 0
    mul64(h1h, h1l, 0, 5)
    t = R[1]! + 0x52dce729
    h1l = t >>> 0
    h1h = (R[0]! + (t > 0xffffffff ? 1 : 0)) >>> 0

    mixK2(le32(data, i + 12), le32(data, i + 8))
    h2h = (h2h ^ R[0]!) >>> 0
    h2l = (h2l ^ R[1]!) >>> 0
    // h2 = rotl(h2, 31) + h1; h2 = h2*5 + 0x38495ab5
    t = ((h2h << 31) | (h2l >>> 1)) >>> 0
    h2l = ((h2l << 31) | (h2h >>> 1)) >>> 0
    h2h = t
    t = h2l + h1l
    h2l = t >>> 0
    h2h = (h2h + h1h + (t > 0xffffffff ? 1 : 0)) >>> 0
    mul64(h2h, h2l, 0, 5)
    t = R[1]! + 0x38495ab5
    h2l = t >>> 0
    h2h = (R[0]! + (t > 0xffffffff ? 1 : 0)) >>> 0
  }

  // Tail: up to 15 bytes, k1 from bytes 0..7, k2 from bytes 8..14 (little-endian).
  const tail = nblocks << 4
  const rest = length & 15
  if (rest > 8) {
    let k2h = 0
    let k2l = 0
    for (let j = rest - 1; j >= 8; j--) {
      const byte = data[tail + j]!
      if (j >= 12) k2h = (k2h | (byte << ((j - 12) * 8))) >>> 0
      else k2l = (k2l | (byte << ((j - 8) * 8))) >>> 0
    }
    mixK2(k2h, k2l)
    h2h = (h2h ^ R[0]!) >>> 0
    h2l = (h2l ^ R[1]!) >>> 0
  }
  if (rest > 0) {
    let k1h = 0
    let k1l = 0
    for (let j = Math.min(rest, 8) - 1; j >= 0; j--) {
      const byte = data[tail + j]!
      if (j >= 4) k1h = (k1h | (byte << ((j - 4) * 8))) >>> 0
      else k1l = (k1l | (byte << (j * 8))) >>> 0
    }
    mixK1(k1h, k1l)
    h1h = (h1h ^ R[0]!) >>> 0
    h1l = (h1l ^ R[1]!) >>> 0
  }

  // Finalisation. The length is < 2^32 here, so it only touches the low words.
  h1l = (h1l ^ length) >>> 0
  h2l = (h2l ^ length) >>> 0
  t = h1l + h2l
  h1l = t >>> 0
  h1h = (h1h + h2h + (t > 0xffffffff ? 1 : 0)) >>> 0
  t = h2l + h1l
  h2l = t >>> 0
  h2h = (h2h + h1h + (t > 0xffffffff ? 1 : 0)) >>> 0
  fmix64(h1h, h1l)
  h1h = R[0]!
  h1l = R[1]!
  fmix64(h2h, h2l)
  h2h = R[0]!
  h2l = R[1]!
  t = h1l + h2l
  h1l = t >>> 0
  h1h = (h1h + h2h + (t > 0xffffffff ? 1 : 0)) >>> 0
  t = h2l + h1l
  h2l = t >>> 0
  h2h = (h2h + h1h + (t > 0xffffffff ? 1 : 0)) >>> 0
  out[0] = h1h
  out[1] = h1l
  out[2] = h2h
  out[3] = h2l
}

/** (hi * 2^32 + lo) mod m for m < 2^21, exactly, in doubles. */
export function mod64(hi: number, lo: number, m: number): number {
  return ((hi % m) * 0x100000000 + lo) % m
}
