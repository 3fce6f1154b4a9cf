/**
 * IP addresses and prefixes: the one parser and formatter every Membrane package uses.
 *
 * Rules (those of Go's net/netip, which Cilium uses, and of Kubernetes' validation):
 * - IPv4 is a dotted quad of four decimal octets 0..255 with no leading zeros (`010.0.0.1` is
 *   rejected: some parsers read it as octal).
 * - IPv6 is RFC 4291 text: one `::` at most, groups of 1..4 hex digits, an embedded dotted IPv4
 *   only as the last 32 bits. Zones (`fe80::1%eth0`) and brackets are rejected.
 * - An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) stays IPv6; {@link unmapIp} turns it into
 *   the IPv4 address it holds, the way a dual-stack socket reports IPv4 peers.
 * - Text out is canonical: dotted IPv4; RFC 5952 IPv6 (lower case, the longest run of two or
 *   more zero groups as `::`, the first on a tie) with IPv4-mapped addresses as
 *   `::ffff:a.b.c.d`, exactly as Go's `netip.Addr.String()` prints them.
 *
 * Pure, no Node APIs: addresses are bytes in a `Uint8Array` (a Node `Buffer` is one too).
 */

/** Address family. */
export type IpFamily = 4 | 6

/** A parsed address: 4 (IPv4) or 16 (IPv6) bytes in network order. */
export interface IpAddress {
  readonly family: IpFamily
  readonly bytes: Uint8Array
}

/**
 * A CIDR prefix in canonical form: host bits cleared, `cidr` printed the one canonical way.
 */
export interface Prefix {
  readonly family: IpFamily
  /** The network address as an unsigned integer (32 or 128 bits). */
  readonly address: bigint
  /** Prefix length, 0..32 or 0..128. */
  readonly length: number
  /** Canonical text, e.g. `10.0.0.0/8`, `2001:db8::/32`. */
  readonly cidr: string
}

/** Error codes of {@link AddressError}. Stable: match on `error.code`, not on the message. */
export const AddressErrorCode = {
  /** The text is not an IPv4 or IPv6 address. */
  INVALID_ADDRESS: 'INVALID_ADDRESS',
  /** The text is not a CIDR prefix, or (strict parsing) has host bits set. */
  INVALID_PREFIX: 'INVALID_PREFIX',
} as const

/** A code of {@link AddressErrorCode}. */
export type AddressErrorCode = (typeof AddressErrorCode)[keyof typeof AddressErrorCode]

/** Bad address or prefix text. `input` is the value that was being parsed. */
export class AddressError extends Error {
  readonly code: AddressErrorCode
  readonly input: unknown

  constructor(
    code: AddressErrorCode,
    message: string,
    options: { input?: unknown; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AddressError'
    this.code = code
    this.input = options.input
  }
}

// ---------------------------------------------------------------------------------------------
// IPv4

/**
 * Parse a dotted-quad IPv4 address into an unsigned 32-bit number, or undefined. Allocates
 * nothing (a character loop, no split, no regex): the form to use on hot paths.
 *
 * @example parseIpv4('10.0.0.1') // 167772161
 */
export function parseIpv4(text: string): number | undefined {
  if (typeof text !== 'string') return undefined
  const n = text.length
  if (n < 7 || n > 15) return undefined
  let value = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 0x2e : text.charCodeAt(i)
    if (c === 0x2e) {
      if (digits === 0) return undefined
      value = value * 256 + octet
      if (i < n && ++dots > 3) return undefined
      octet = 0
      digits = 0
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return undefined // leading zero
      octet = octet * 10 + (c - 0x30)
      if (++digits > 3 || octet > 255) return undefined
    } else return undefined
  }
  return dots === 3 ? value : undefined
}

/** Print an unsigned 32-bit number as a dotted IPv4 address. @example formatIpv4(167772161) // '10.0.0.1' */
export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/** True for a valid dotted-quad IPv4 address. @example isIpv4('10.0.0.1') // true */
export function isIpv4(value: unknown): value is string {
  return typeof value === 'string' && parseIpv4(value) !== undefined
}

/** Print 4 network-order bytes at `offset` as a dotted IPv4 address. */
export function formatIpv4Bytes(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`
}

// ---------------------------------------------------------------------------------------------
// IPv6

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}

/**
 * Parse IPv6 text into `out` (16 bytes at `at`). One pass over the characters, no allocation.
 */
function parseIpv6Into(text: string, out: Uint8Array, at: number): boolean {
  const n = text.length
  if (n < 2 || n > 45) return false
  let group = 0 // groups written so far
  let ellipsis = -1 // group index where '::' stood
  let i = 0
  if (text.charCodeAt(0) === 0x3a) {
    if (text.charCodeAt(1) !== 0x3a) return false
    ellipsis = 0
    i = 2
    if (i === n) {
      out.fill(0, at, at + 16)
      return true
    }
  }
  while (i < n) {
    if (group === 8) return false
    let value = 0
    let digits = 0
    const start = i
    while (i < n) {
      const d = hexDigit(text.charCodeAt(i))
      if (d < 0) break
      value = (value << 4) | d
      i++
      if (++digits > 4) return false
    }
    if (i < n && text.charCodeAt(i) === 0x2e) {
      // An embedded IPv4 address: the last 32 bits.
      if (group > 6) return false
      const v4 = parseIpv4(text.slice(start))
      if (v4 === undefined) return false
      out[at + group * 2] = v4 >>> 24
      out[at + group * 2 + 1] = (v4 >>> 16) & 255
      out[at + group * 2 + 2] = (v4 >>> 8) & 255
      out[at + group * 2 + 3] = v4 & 255
      group += 2
      i = n
      break
    }
    if (digits === 0) return false
    out[at + group * 2] = value >> 8
    out[at + group * 2 + 1] = value & 255
    group++
    if (i === n) break
    if (text.charCodeAt(i) !== 0x3a) return false
    i++
    if (i === n) return false // trailing single ':'
    if (text.charCodeAt(i) === 0x3a) {
      if (ellipsis >= 0) return false
      ellipsis = group
      i++
      if (i === n) break
    }
  }
  if (ellipsis < 0) return group === 8
  if (group === 8) return false // '::' must stand for at least one zero group
  // Move the groups after '::' to the end and zero the gap.
  const after = group - ellipsis
  const src = at + ellipsis * 2
  const dst = at + 16 - after * 2
  out.copyWithin(dst, src, src + after * 2)
  out.fill(0, src, dst)
  return true
}

/**
 * Print 16 network-order bytes at `offset` as canonical IPv6 text (RFC 5952; IPv4-mapped as
 * `::ffff:a.b.c.d`, as Go's netip prints it). Allocation-light: for decoders on hot paths.
 */
export function formatIpv6Bytes(bytes: Uint8Array, offset = 0): string {
  // IPv4-mapped: 80 zero bits, 16 one bits.
  let mapped = bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff
  for (let i = 0; i < 10 && mapped; i++) if (bytes[offset + i] !== 0) mapped = false
  if (mapped) return `::ffff:${formatIpv4Bytes(bytes, offset + 12)}`
  // The longest run of two or more zero groups (the first on a tie).
  let bestStart = -1
  let bestLen = 1
  let runStart = -1
  for (let g = 0; g < 8; g++) {
    const zero = bytes[offset + g * 2] === 0 && bytes[offset + g * 2 + 1] === 0
    if (zero) {
      if (runStart < 0) runStart = g
      if (g - runStart + 1 > bestLen) {
        bestStart = runStart
        bestLen = g - runStart + 1
      }
    } else runStart = -1
  }
  let s = ''
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      s += '::'
      g += bestLen - 1
      continue
    }
    if (s !== '' && !s.endsWith(':')) s += ':'
    s += (
      ((bytes[offset + g * 2] as number) << 8) |
      (bytes[offset + g * 2 + 1] as number)
    ).toString(16)
  }
  return s
}

/** True for valid IPv6 text (no zone). @example isIpv6('2001:db8::1') // true */
export function isIpv6(value: unknown): value is string {
  return typeof value === 'string' && value.includes(':') && parseIpv6Into(value, scratch16, 0)
}

const scratch16 = new Uint8Array(16)

// ---------------------------------------------------------------------------------------------
// Either family

/**
 * Parse an IPv4 or IPv6 address, or undefined when `text` is not one (see the module rules).
 *
 * @example parseIp('2001:DB8::1') // { family: 6, bytes: Uint8Array(16) [...] }
 */
export function parseIp(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined
  if (!text.includes(':')) {
    const v4 = parseIpv4(text)
    if (v4 === undefined) return undefined
    return {
      family: 4,
      bytes: new Uint8Array([v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255]),
    }
  }
  const bytes = new Uint8Array(16)
  return parseIpv6Into(text, bytes, 0) ? { family: 6, bytes } : undefined
}

/**
 * Parse an address or throw {@link AddressError} `INVALID_ADDRESS` naming the input. `what`
 * names the field in the message (default `IP address`).
 */
export function mustParseIp(text: string, what = 'IP address'): IpAddress {
  const ip = parseIp(text)
  if (ip) return ip
  throw new AddressError(
    AddressErrorCode.INVALID_ADDRESS,
    `invalid ${what} ${JSON.stringify(text)}: expected an IPv4 address like 10.0.0.1 or an IPv6 address like 2001:db8::1 (no zone, no leading zeros)`,
    { input: text },
  )
}

/** The family of address text (4 or 6), or undefined when it is not an address. */
export function ipFamily(text: string): IpFamily | undefined {
  if (typeof text !== 'string') return undefined
  if (!text.includes(':')) return parseIpv4(text) === undefined ? undefined : 4
  return parseIpv6Into(text, scratch16, 0) ? 6 : undefined
}

/** Canonical text of an address (see the module rules). */
export function formatIp(addr: IpAddress): string {
  return addr.family === 4 ? formatIpv4Bytes(addr.bytes, 0) : formatIpv6Bytes(addr.bytes, 0)
}

/**
 * The canonical spelling of address text, or undefined when it is not an address. A valid IPv4
 * address is already canonical, so that common case allocates nothing.
 *
 * @example canonicalIp('2001:DB8:0::1') // '2001:db8::1'
 */
export function canonicalIp(text: string): string | undefined {
  if (typeof text !== 'string') return undefined
  if (!text.includes(':')) return parseIpv4(text) === undefined ? undefined : text
  return parseIpv6Into(text, scratch16, 0) ? formatIpv6Bytes(scratch16, 0) : undefined
}

/**
 * Write an address into `out` at `offset` in network order (4 bytes for IPv4, 16 for IPv6) and
 * return its family, or return undefined (writing nothing useful) when `text` is not an address.
 */
export function writeIp(text: string, out: Uint8Array, offset = 0): IpFamily | undefined {
  if (typeof text !== 'string') return undefined
  if (!text.includes(':')) {
    const v4 = parseIpv4(text)
    if (v4 === undefined) return undefined
    out[offset] = v4 >>> 24
    out[offset + 1] = (v4 >>> 16) & 255
    out[offset + 2] = (v4 >>> 8) & 255
    out[offset + 3] = v4 & 255
    return 4
  }
  return parseIpv6Into(text, out, offset) ? 6 : undefined
}

/** Read an address of `family` from network-order bytes at `offset`, as canonical text. */
export function readIp(bytes: Uint8Array, offset: number, family: IpFamily): string {
  return family === 4 ? formatIpv4Bytes(bytes, offset) : formatIpv6Bytes(bytes, offset)
}

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address, or the address itself. Text in, text
 * out: `::ffff:10.0.0.1` -> `10.0.0.1` (how dual-stack sockets report IPv4 peers); anything
 * else is returned unchanged.
 */
export function unmapIp(text: string): string {
  if (typeof text !== 'string' || text.length < 14 || !text.includes('.')) return text
  const ip = parseIp(text)
  if (ip?.family !== 6) return text
  const b = ip.bytes
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return text
  return b[10] === 0xff && b[11] === 0xff ? formatIpv4Bytes(b, 12) : text
}

/** The address as an unsigned integer (32 or 128 bits). */
export function ipToBigInt(addr: IpAddress): bigint {
  let v = 0n
  for (const b of addr.bytes) v = (v << 8n) | BigInt(b)
  return v
}

/** The address of `family` whose unsigned integer value is `value`. */
export function ipFromBigInt(family: IpFamily, value: bigint): IpAddress {
  const n = family === 4 ? 4 : 16
  const bytes = new Uint8Array(n)
  let v = value
  for (let k = n - 1; k >= 0; k--) {
    bytes[k] = Number(v & 0xffn)
    v >>= 8n
  }
  return { family, bytes }
}

// ---------------------------------------------------------------------------------------------
// Prefixes

/** The number of bits of an address of `family`. */
export function familyBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128
}

const V4_MAX = (1n << 32n) - 1n
const V6_MAX = (1n << 128n) - 1n

/** The mask of a prefix length within `family`, as an integer. */
export function prefixMask(family: IpFamily, length: number): bigint {
  const bits = BigInt(familyBits(family))
  const all = family === 4 ? V4_MAX : V6_MAX
  return length === 0 ? 0n : (all >> (bits - BigInt(length))) << (bits - BigInt(length))
}

/** A canonical {@link Prefix} from parts; host bits are cleared. */
export function makePrefix(family: IpFamily, address: bigint, length: number): Prefix {
  const masked = address & prefixMask(family, length)
  return {
    family,
    address: masked,
    length,
    cidr: `${formatIp(ipFromBigInt(family, masked))}/${length}`,
  }
}

function badPrefix(input: unknown, why: string): AddressError {
  return new AddressError(
    AddressErrorCode.INVALID_PREFIX,
    `invalid IP or prefix ${JSON.stringify(input)}: ${why}`,
    { input },
  )
}

/**
 * Parse `10.0.0.0/8`, `2001:db8::/32` or a bare address (a host prefix, /32 or /128). Host bits
 * are cleared unless `strict` is set, in which case set host bits are an error. The length is
 * decimal without leading zeros.
 *
 * @throws AddressError `INVALID_PREFIX` naming the input and what was expected.
 * @example parsePrefix('10.1.2.3/8').cidr // '10.0.0.0/8'
 */
export function parsePrefix(text: string, options: { strict?: boolean } = {}): Prefix {
  const p = tryParsePrefix(text, options)
  if (typeof p !== 'string') return p
  throw badPrefix(text, p)
}

/** {@link parsePrefix} that returns undefined instead of throwing. */
export function parsePrefixOrUndefined(
  text: string,
  options: { strict?: boolean } = {},
): Prefix | undefined {
  const p = tryParsePrefix(text, options)
  return typeof p === 'string' ? undefined : p
}

function tryParsePrefix(text: string, options: { strict?: boolean }): Prefix | string {
  if (typeof text !== 'string') return 'expected a string'
  const slash = text.indexOf('/')
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash))
  if (!ip) return 'expected an address like 10.0.0.0 or 2001:db8:: (no zone, no leading zeros)'
  const max = familyBits(ip.family)
  let length: number = max
  if (slash !== -1) {
    const lenText = text.slice(slash + 1)
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
      return `prefix length must be an integer 0..${max}`
    }
    length = Number(lenText)
  }
  const address = ipToBigInt(ip)
  const prefix = makePrefix(ip.family, address, length)
  if (options.strict && prefix.address !== address) {
    return `host bits are set (the network is ${prefix.cidr})`
  }
  return prefix
}

/** True when `outer` contains `inner` (same family, shorter or equal length, same network). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    outer.length <= inner.length &&
    (inner.address & prefixMask(outer.family, outer.length)) === outer.address
  )
}

/** True when two prefixes share an address (one contains the other). */
export function prefixOverlaps(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a)
}

/** True when the address `ip` (text) lies inside `prefix`. */
export function prefixContainsIp(prefix: Prefix, ip: string): boolean {
  const a = parseIp(ip)
  return (
    a !== undefined &&
    a.family === prefix.family &&
    (ipToBigInt(a) & prefixMask(prefix.family, prefix.length)) === prefix.address
  )
}

/** The network address bytes of a prefix (4 or 16, network order), as LPM trie keys want them. */
export function prefixBytes(prefix: Prefix): Uint8Array {
  return ipFromBigInt(prefix.family, prefix.address).bytes
}
