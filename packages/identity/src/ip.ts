import { IdentityError, IdentityErrorCode } from './errors'

/** Address family of an IP or prefix. */
export type IPFamily = 4 | 6

/**
 * A CIDR prefix in canonical form: host bits cleared, `cidr` printed the one way this package
 * prints it (dotted quad for IPv4, RFC 5952 for IPv6).
 */
export interface Prefix {
  readonly family: IPFamily
  /** The network address as an unsigned integer (32 or 128 bits). */
  readonly address: bigint
  /** Prefix length, 0..32 or 0..128. */
  readonly length: number
  /** Canonical text, e.g. `10.0.0.0/8`, `2001:db8::/32`. */
  readonly cidr: string
}

const V4_MAX = (1n << 32n) - 1n
const V6_MAX = (1n << 128n) - 1n

function invalid(input: string, why: string): IdentityError {
  return new IdentityError(
    IdentityErrorCode.INVALID_PREFIX,
    `invalid IP or prefix ${JSON.stringify(input)}: ${why}`,
    { input },
  )
}

/** Parse a dotted-quad IPv4 address to a 32-bit number, or undefined. No leading zeros. */
export function parseIPv4Number(text: string): number | undefined {
  let value = 0
  let octets = 0
  let i = 0
  const n = text.length
  while (i <= n) {
    let j = i
    let octet = 0
    while (j < n) {
      const c = text.charCodeAt(j)
      if (c < 48 || c > 57) break
      octet = octet * 10 + (c - 48)
      j++
    }
    const digits = j - i
    if (digits === 0 || digits > 3 || octet > 255) return undefined
    if (digits > 1 && text.charCodeAt(i) === 48) return undefined
    value = value * 256 + octet
    octets++
    if (j === n) break
    if (text.charCodeAt(j) !== 46 || octets === 4) return undefined
    i = j + 1
  }
  return octets === 4 ? value : undefined
}

function parseIPv6(text: string): bigint | undefined {
  if (text.length < 2 || text.length > 45) return undefined
  const double = text.indexOf('::')
  if (double !== -1 && text.indexOf('::', double + 1) !== -1) return undefined
  const parseGroups = (part: string, allowV4: boolean): number[] | undefined => {
    if (part === '') return []
    const pieces = part.split(':')
    const out: number[] = []
    for (let k = 0; k < pieces.length; k++) {
      const piece = pieces[k] as string
      if (allowV4 && k === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4Number(piece)
        if (v4 === undefined) return undefined
        out.push(v4 >>> 16, v4 & 0xffff)
        continue
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined
      out.push(Number.parseInt(piece, 16))
    }
    return out
  }
  let groups: number[]
  if (double === -1) {
    const g = parseGroups(text, true)
    if (g?.length !== 8) return undefined
    groups = g
  } else {
    const head = parseGroups(text.slice(0, double), false)
    const tail = parseGroups(text.slice(double + 2), true)
    if (!head || !tail || head.length + tail.length > 7) return undefined
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  }
  let value = 0n
  for (const g of groups) value = (value << 16n) | BigInt(g)
  return value
}

/**
 * Parse an IP address (no prefix length).
 *
 * @throws IdentityError `INVALID_PREFIX` naming the input.
 */
export function parseIP(text: string): { family: IPFamily; address: bigint } {
  if (typeof text !== 'string') throw invalid(String(text), 'expected a string')
  const v4 = parseIPv4Number(text)
  if (v4 !== undefined) return { family: 4, address: BigInt(v4) }
  if (text.includes(':')) {
    const v6 = parseIPv6(text)
    if (v6 !== undefined) return { family: 6, address: v6 }
    throw invalid(text, 'expected an IPv6 address like 2001:db8::1 (no zone)')
  }
  throw invalid(text, 'expected an IPv4 address like 10.0.0.1 or an IPv6 address')
}

/** Print an address of `family` in canonical form (RFC 5952 for IPv6). */
export function formatIP(family: IPFamily, address: bigint): string {
  if (family === 4) {
    const v = Number(address)
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
  }
  const groups: number[] = []
  for (let k = 7; k >= 0; k--) groups.push(Number((address >> BigInt(k * 16)) & 0xffffn))
  // The longest run of two or more zero groups becomes '::' (the first one on a tie).
  let bestStart = -1
  let bestLen = 1
  for (let k = 0; k < 8; ) {
    if (groups[k] !== 0) {
      k++
      continue
    }
    let e = k
    while (e < 8 && groups[e] === 0) e++
    if (e - k > bestLen) {
      bestStart = k
      bestLen = e - k
    }
    k = e
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':')
  if (bestStart === -1) return hex(groups)
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`
}

/** The number of bits of an address of `family`. */
function familyBits(family: IPFamily): 32 | 128 {
  return family === 4 ? 32 : 128
}

/** The mask of a prefix length within `family` as an integer. */
export function prefixMask(family: IPFamily, length: number): bigint {
  const bits = BigInt(familyBits(family))
  const all = family === 4 ? V4_MAX : V6_MAX
  return length === 0 ? 0n : (all >> (bits - BigInt(length))) << (bits - BigInt(length))
}

/** Build a canonical {@link Prefix} from parts; host bits are cleared. */
export function makePrefix(family: IPFamily, address: bigint, length: number): Prefix {
  const masked = address & prefixMask(family, length)
  return { family, address: masked, length, cidr: `${formatIP(family, masked)}/${length}` }
}

/**
 * Parse `10.0.0.0/8`, `2001:db8::/32`, or a bare address (taken as /32 or /128). Host bits are
 * cleared unless `strict` is set, in which case set host bits are an error.
 *
 * @throws IdentityError `INVALID_PREFIX` naming the input and what was expected.
 * @example parsePrefix('10.1.2.3/8').cidr // '10.0.0.0/8'
 */
export function parsePrefix(text: string, options: { strict?: boolean } = {}): Prefix {
  if (typeof text !== 'string') throw invalid(String(text), 'expected a string')
  const slash = text.indexOf('/')
  const addrText = slash === -1 ? text : text.slice(0, slash)
  const { family, address } = parseIP(addrText)
  const max = familyBits(family)
  let length: number = max
  if (slash !== -1) {
    const lenText = text.slice(slash + 1)
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
      throw invalid(text, `prefix length must be an integer 0..${max}`)
    }
    length = Number(lenText)
  }
  const prefix = makePrefix(family, address, length)
  if (options.strict && prefix.address !== address) {
    throw invalid(text, `host bits are set (the network is ${prefix.cidr})`)
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

/**
 * The address bytes of a prefix in network order (4 or 16 bytes), as BPF LPM trie keys want them.
 */
export function prefixBytes(prefix: Prefix): Uint8Array {
  const n = prefix.family === 4 ? 4 : 16
  const out = new Uint8Array(n)
  let v = prefix.address
  for (let k = n - 1; k >= 0; k--) {
    out[k] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}
