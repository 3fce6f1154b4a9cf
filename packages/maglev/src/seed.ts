import { describe, MaglevError, MaglevErrorCode } from './errors'

/**
 * Cilium's default cluster-wide Maglev seed (`--bpf-lb-maglev-hash-seed`): 12 random bytes in
 * standard base64.
 */
export const DEFAULT_SEED = 'JLfvgnHc2kaSUFaI'

/** The three 32-bit seeds packed in a Maglev seed. */
export interface DecodedSeed {
  /** Bytes 0..3 (big-endian): the MurmurHash3 seed for backend permutations. */
  murmur: number
  /** Bytes 4..7 (big-endian): the jhash seed of IPv4 flow hashing (Cilium's HASH_INIT4_SEED). */
  jhash0: number
  /** Bytes 8..11 (big-endian): the jhash seed of IPv6 flow hashing (Cilium's HASH_INIT6_SEED). */
  jhash1: number
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const VALUES = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]))

/** Strict standard base64 (RFC 4648 §4, padded); undefined when `text` is not. */
function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0
  const bytes = new Uint8Array((text.length / 4) * 3 - pad)
  let out = 0
  for (let i = 0; i < text.length; i += 4) {
    let acc = 0
    for (let j = 0; j < 4; j++) {
      const c = text[i + j]!
      const last = i + 4 === text.length
      let v: number | undefined
      if (c === '=' && last && j >= 4 - pad) v = 0
      else v = VALUES.get(c)
      if (v === undefined) return undefined
      acc = (acc << 6) | v
    }
    for (let k = 2; k >= 0; k--) {
      if (out + (2 - k) < bytes.length) bytes[out + (2 - k)] = (acc >>> (k * 8)) & 0xff
    }
    out += 3
  }
  return bytes
}

/**
 * Decode a Maglev seed the way Cilium does: standard base64 that must decode to exactly 12
 * bytes, split into three big-endian uint32 seeds.
 *
 * @throws MaglevError `INVALID_SEED` when the text is not base64 or not 12 bytes long.
 * @example decodeSeed('JLfvgnHc2kaSUFaI').murmur // 0x24b7ef82
 */
export function decodeSeed(seed: string = DEFAULT_SEED): DecodedSeed {
  if (typeof seed !== 'string')
    throw new MaglevError(
      MaglevErrorCode.INVALID_SEED,
      `expected a base64 string, got ${describe(seed)}`,
      {
        path: 'seed',
      },
    )
  const d = decodeBase64(seed)
  if (!d)
    throw new MaglevError(
      MaglevErrorCode.INVALID_SEED,
      `${describe(seed)} is not standard base64 (expected 16 characters of A-Z a-z 0-9 + /, e.g. ${DEFAULT_SEED})`,
      { path: 'seed' },
    )
  if (d.length !== 12)
    throw new MaglevError(
      MaglevErrorCode.INVALID_SEED,
      `${describe(seed)} decodes to ${d.length} bytes, expected exactly 12`,
      { path: 'seed' },
    )
  const be32 = (i: number) =>
    ((d[i]! << 24) | (d[i + 1]! << 16) | (d[i + 2]! << 8) | d[i + 3]!) >>> 0
  return { murmur: be32(0), jhash0: be32(4), jhash1: be32(8) }
}
