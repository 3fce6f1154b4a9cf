// IP address parsing and canonical formatting, matching Go's net/netip: the hash string Cilium
// builds contains `netip.Addr.String()`, so "2001:DB8:0::1" must hash as "2001:db8::1".

/** A parsed address: 4 or 16 bytes in network order. */
export interface IpAddress {
  family: 4 | 6
  bytes: Uint8Array
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

function parseV4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split('.')
  if (parts.length !== 4) return false
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!
    if (!V4_PART.test(p)) return false
    const n = Number(p)
    if (n > 255) return false
    out[at + i] = n
  }
  return true
}

/** Dotted quad without allocating: digits only, no leading zeros, each part ≤ 255. */
function parseV4Fast(text: string, out: Uint8Array): boolean {
  let part = 0
  let value = 0
  let digits = 0
  for (let i = 0; i <= text.length; i++) {
    const c = i === text.length ? 0x2e : text.charCodeAt(i)
    if (c === 0x2e) {
      if (digits === 0 || part > 3) return false
      out[part++] = value
      value = 0
      digits = 0
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return false // leading zero
      value = value * 10 + (c - 0x30)
      if (++digits > 3 || value > 255) return false
    } else return false
  }
  return part === 4
}

function parseGroups(text: string, out: number[]): boolean {
  if (text === '') return true
  for (const g of text.split(':')) {
    if (!HEX_GROUP.test(g)) return false
    out.push(Number.parseInt(g, 16))
  }
  return true
}

/** Parse an IPv4 or IPv6 address (no zone, no brackets, no leading zeros in IPv4 parts). */
export function parseIp(text: string): IpAddress | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) return undefined
  if (!text.includes(':')) {
    const bytes = new Uint8Array(4)
    return parseV4Fast(text, bytes) ? { family: 4, bytes } : undefined
  }
  const bytes = new Uint8Array(16)
  let body = text
  // An embedded dotted IPv4 may stand for the last two groups.
  let v4Tail = false
  const lastColon = body.lastIndexOf(':')
  const last = body.slice(lastColon + 1)
  if (last.includes('.')) {
    if (!parseV4Into(last, bytes, 12)) return undefined
    v4Tail = true
    body = body.slice(0, lastColon + 1)
    // "::1.2.3.4" leaves "::"; "1::1.2.3.4" leaves "1::"; "1:2:3:4:5:6:1.2.3.4" leaves "...6:"
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1)
  }
  const want = v4Tail ? 6 : 8
  const head: number[] = []
  const tail: number[] = []
  const dbl = body.indexOf('::')
  if (dbl >= 0) {
    if (body.indexOf('::', dbl + 1) >= 0) return undefined
    if (!parseGroups(body.slice(0, dbl), head)) return undefined
    if (!parseGroups(body.slice(dbl + 2), tail)) return undefined
    // "::" stands for at least one group of zeros
    if (head.length + tail.length > want - 1) return undefined
  } else {
    if (!parseGroups(body, head)) return undefined
    if (head.length !== want) return undefined
  }
  head.forEach((g, i) => {
    bytes[i * 2] = g >> 8
    bytes[i * 2 + 1] = g & 0xff
  })
  const tailStart = want - tail.length
  tail.forEach((g, i) => {
    bytes[(tailStart + i) * 2] = g >> 8
    bytes[(tailStart + i) * 2 + 1] = g & 0xff
  })
  return { family: 6, bytes }
}

function formatV4(bytes: Uint8Array, at: number): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`
}

/**
 * Format as Go's netip.Addr.String(): dotted IPv4; RFC 5952 IPv6 (lower-case, the longest run
 * of two or more zero groups shortened to "::", the first such run on a tie), and IPv4-mapped
 * IPv6 as "::ffff:a.b.c.d".
 */
export function formatIp(addr: IpAddress): string {
  const b = addr.bytes
  if (addr.family === 4) return formatV4(b, 0)
  let mapped = b[10] === 0xff && b[11] === 0xff
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false
  if (mapped) return `::ffff:${formatV4(b, 12)}`
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push((b[i * 2]! << 8) | b[i * 2 + 1]!)
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (g: number) => g.toString(16)
  if (bestStart < 0) return groups.map(hex).join(':')
  const left = groups.slice(0, bestStart).map(hex).join(':')
  const right = groups
    .slice(bestStart + bestLen)
    .map(hex)
    .join(':')
  return `${left}::${right}`
}

const v4Scratch = new Uint8Array(4)

/**
 * The canonical (Go netip) spelling of an address, or undefined when it is not one. A valid
 * IPv4 dotted quad is already canonical, so that common case allocates nothing.
 */
export function canonicalIp(text: string): string | undefined {
  if (typeof text !== 'string') return undefined
  if (!text.includes(':')) return parseV4Fast(text, v4Scratch) ? text : undefined
  const ip = parseIp(text)
  return ip ? formatIp(ip) : undefined
}
