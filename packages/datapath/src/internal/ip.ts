const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

/** True for a dotted-quad IPv4 address. */
export function isIpv4(value: unknown): value is string {
  return typeof value === 'string' && IPV4.test(value)
}

/** Parse an IPv6 address into 16 bytes; undefined when malformed. */
export function parseIpv6(value: string): Buffer | undefined {
  if (typeof value !== 'string' || !value.includes(':')) return undefined
  let text = value
  const lastColon = text.lastIndexOf(':')
  const maybeV4 = text.slice(lastColon + 1)
  if (maybeV4.includes('.')) {
    // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups.
    if (!isIpv4(maybeV4)) return undefined
    const p = maybeV4.split('.').map(Number) as [number, number, number, number]
    const hi = ((p[0] << 8) | p[1]).toString(16)
    const lo = ((p[2] << 8) | p[3]).toString(16)
    text = `${text.slice(0, lastColon + 1)}${hi}:${lo}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const parse = (s: string): number[] | undefined => {
    if (s === '') return []
    const out: number[] = []
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
      out.push(Number.parseInt(g, 16))
    }
    return out
  }
  const head = parse(halves[0] ?? '')
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : []
  if (!head || !rest) return undefined
  let words: number[]
  if (halves.length === 2) {
    const missing = 8 - (head.length + rest.length)
    if (missing < 1) return undefined
    words = [...head, ...new Array<number>(missing).fill(0), ...rest]
  } else {
    if (head.length !== 8) return undefined
    words = head
  }
  const buf = Buffer.alloc(16)
  words.forEach((w, i) => {
    buf.writeUInt16BE(w, i * 2)
  })
  return buf
}

/** Format 16 bytes as a canonical (RFC 5952) IPv6 address. */
export function formatIpv6(buf: Buffer, offset = 0): string {
  const words: number[] = []
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(offset + i * 2))
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = words.map((w) => w.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

/** An IPv4 CIDR as network and mask (dotted quads); undefined when `value` is not one. */
export function parseCidr4(value: unknown): { net: string; mask: string } | undefined {
  if (typeof value !== 'string') return undefined
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(value)
  if (!m || !isIpv4(m[1]) || Number(m[2]) > 32) return undefined
  const bits = Number(m[2])
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  const addr = (m[1] as string).split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0)
  const quad = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.')
  return { net: quad((addr & mask) >>> 0), mask: quad(mask) }
}

/** Whether an IPv4 address lies inside a network given as {@link parseCidr4} returns it. */
export function inCidr4(ip: string, cidr: { net: string; mask: string }): boolean {
  const n = (q: string) => q.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0)
  return (n(ip) & n(cidr.mask)) >>> 0 === n(cidr.net)
}
