import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { murmur3x64_128 } from '../src/index'

const MASK = (1n << 64n) - 1n

/** A direct BigInt transcription of MurmurHash3_x64_128, used only to check the 32-bit one. */
function reference(data: Uint8Array, seed: number): [bigint, bigint] {
  const c1 = 0x87c37b91114253d5n
  const c2 = 0x4cf5ad432745937fn
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & MASK
  const fmix = (k: bigint) => {
    k ^= k >> 33n
    k = (k * 0xff51afd7ed558ccdn) & MASK
    k ^= k >> 33n
    k = (k * 0xc4ceb9fe1a85ec53n) & MASK
    return k ^ (k >> 33n)
  }
  const word = (at: number, n: number) => {
    let v = 0n
    for (let j = n - 1; j >= 0; j--) v = (v << 8n) | BigInt(data[at + j]!)
    return v
  }
  let h1 = BigInt(seed >>> 0)
  let h2 = h1
  const nblocks = Math.floor(data.length / 16)
  for (let b = 0; b < nblocks; b++) {
    let k1 = word(b * 16, 8)
    let k2 = word(b * 16 + 8, 8)
    k1 = (rotl((k1 * c1) & MASK, 31n) * c2) & MASK
    h1 ^= k1
    h1 = (rotl(h1, 27n) + h2) & MASK
    h1 = (h1 * 5n + 0x52dce729n) & MASK
    k2 = (rotl((k2 * c2) & MASK, 33n) * c1) & MASK
    h2 ^= k2
    h2 = (rotl(h2, 31n) + h1) & MASK
    h2 = (h2 * 5n + 0x38495ab5n) & MASK
  }
  const rest = data.length & 15
  const tail = nblocks * 16
  if (rest > 8) h2 ^= (rotl((word(tail + 8, rest - 8) * c2) & MASK, 33n) * c1) & MASK
  if (rest > 0) h1 ^= (rotl((word(tail, Math.min(rest, 8)) * c1) & MASK, 31n) * c2) & MASK
  h1 ^= BigInt(data.length)
  h2 ^= BigInt(data.length)
  h1 = (h1 + h2) & MASK
  h2 = (h2 + h1) & MASK
  h1 = fmix(h1)
  h2 = fmix(h2)
  h1 = (h1 + h2) & MASK
  h2 = (h2 + h1) & MASK
  return [h1, h2]
}

function digestBytes([h1, h2]: [bigint, bigint]): Uint8Array {
  const out = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    out[i] = Number((h1 >> BigInt(8 * i)) & 0xffn)
    out[8 + i] = Number((h2 >> BigInt(8 * i)) & 0xffn)
  }
  return out
}

describe('murmur3x64_128', () => {
  it("passes SMHasher's verification test (0x6384BA69)", () => {
    // SMHasher VerificationTest: hash keys {}, {0}, {0,1}, ..., {0..254} with seed 256 - n,
    // concatenate the 16-byte digests, hash that with seed 0 and read the first 4 bytes (LE).
    const key = new Uint8Array(256)
    const hashes = new Uint8Array(256 * 16)
    for (let n = 0; n < 256; n++) {
      key[n] = n
      hashes.set(digestBytes(murmur3x64_128(key.subarray(0, n), 256 - n)), n * 16)
    }
    const final = digestBytes(murmur3x64_128(hashes, 0))
    const verification =
      (final[0]! | (final[1]! << 8) | (final[2]! << 16) | (final[3]! << 24)) >>> 0
    expect(verification.toString(16)).toBe('6384ba69')
  })

  it('hashes the well-known pangram to 6c1b07bc7bbc4be347939ac4a93c437a (byte order)', () => {
    const bytes = digestBytes(murmur3x64_128('The quick brown fox jumps over the lazy dog', 0))
    expect(Buffer.from(bytes).toString('hex')).toBe('6c1b07bc7bbc4be347939ac4a93c437a')
  })

  it('hashes the empty input with seed 0 to zero', () => {
    expect(murmur3x64_128(new Uint8Array(0), 0)).toEqual([0n, 0n])
  })

  it('equals a BigInt transcription for any bytes and seed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 0xffffffff }), (data, seed) => {
        expect(murmur3x64_128(data, seed)).toEqual(reference(data, seed))
      }),
      { numRuns: 500 },
    )
  })

  it('hashes strings as UTF-8', () => {
    expect(murmur3x64_128('é', 7)).toEqual(reference(new Uint8Array([0xc3, 0xa9]), 7))
  })
})
