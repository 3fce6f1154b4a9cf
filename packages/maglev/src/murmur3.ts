import { murmur3Into } from './internal/murmur3'

const encoder = new TextEncoder()

/**
 * MurmurHash3 x64_128 (little-endian words, as Cilium's pkg/murmur3 on x86/arm64) of `data`
 * (a string is hashed as UTF-8) with a 32-bit seed, returned as [h1, h2].
 *
 * @example murmur3x64_128('', 0) // [0n, 0n]
 */
export function murmur3x64_128(data: Uint8Array | string, seed = 0): [bigint, bigint] {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data
  const out = new Uint32Array(4)
  murmur3Into(bytes, bytes.length, seed >>> 0, out)
  const big = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo)
  return [big(out[0]!, out[1]!), big(out[2]!, out[3]!)]
}
