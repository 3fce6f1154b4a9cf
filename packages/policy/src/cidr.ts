/**
 * IPv4/IPv6 prefixes with containment checks. Pure, no Node APIs.
 */

/** A parsed prefix. `addr` has its host bits cleared. */
export interface Cidr {
  family: 4 | 6
  addr: bigint
  bits: number
  /** Canonical text, e.g. `10.0.0.0/8`, `2001:db8::/32`. */
  text: string
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let v = 0n
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined
    const n = Number(p)
    if (n > 255 || (p.length > 1 && p[0] === '0')) return undefined
    v = (v << 8n) | BigInt(n)
  }
  return v
}

function parseV6(s: string): bigint | undefined {
  if (s.length === 0 || s.length > 45) return undefined
  let head = s
  let tailV4: bigint | undefined
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.')) {
    tailV4 = parseV4(s.slice(lastColon + 1))
    if (tailV4 === undefined) return undefined
    head = `${s.slice(0, lastColon + 1)}0:0`
  }
  const dbl = head.indexOf('::')
  if (dbl !== head.lastIndexOf('::')) return undefined
  let groups: string[]
  if (dbl >= 0) {
    const left = head.slice(0, dbl) === '' ? [] : head.slice(0, dbl).split(':')
    const right = head.slice(dbl + 2) === '' ? [] : head.slice(dbl + 2).split(':')
    const fill = 8 - left.length - right.length
    if (fill < 1) return undefined
    groups = [...left, ...Array<string>(fill).fill('0'), ...right]
  } else {
    groups = head.split(':')
  }
  if (groups.length !== 8) return undefined
  let v = 0n
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
    v = (v << 16n) | BigInt(Number.parseInt(g, 16))
  }
  if (tailV4 !== undefined) v = (v & ~0xffffffffn) | tailV4
  return v
}

/** Parse an IP address (v4 or v6). */
export function parseIp(s: string): { family: 4 | 6; addr: bigint } | undefined {
  const v4 = parseV4(s)
  if (v4 !== undefined) return { family: 4, addr: v4 }
  const v6 = parseV6(s)
  if (v6 !== undefined) return { family: 6, addr: v6 }
  return undefined
}

function fmt(family: 4 | 6, addr: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 255n)).join('.')
  }
  const g: number[] = []
  for (let i = 7; i >= 0; i--) g.push(Number((addr >> BigInt(i * 16)) & 0xffffn))
  // Longest run of zero groups (length >= 2) becomes `::`.
  let best = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen && j - i >= 2) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

function width(family: 4 | 6): number {
  return family === 4 ? 32 : 128
}

function mask(family: 4 | 6, bits: number): bigint {
  const w = width(family)
  return ((1n << BigInt(w)) - 1n) ^ ((1n << BigInt(w - bits)) - 1n)
}

/**
 * Parse `a.b.c.d/n`, `x::y/n` or a bare address (a host prefix). Host bits must be zero unless
 * `strict` is false (Cilium accepts `10.0.0.1/8` and masks it; we do too by default).
 * Cilium writes IPv6 CIDR labels with `-` for `:`; that form is accepted too.
 */
export function parseCidr(text: string, strict = false): Cidr | undefined {
  let s = text.trim()
  if (!s.includes(':') && /^[0-9a-fA-F-]+\/\d+$/.test(s) && s.includes('-'))
    s = s.replaceAll('-', ':')
  const slash = s.indexOf('/')
  const ipText = slash >= 0 ? s.slice(0, slash) : s
  const ip = parseIp(ipText)
  if (!ip) return undefined
  const w = width(ip.family)
  let bits = w
  if (slash >= 0) {
    const b = s.slice(slash + 1)
    if (!/^\d{1,3}$/.test(b)) return undefined
    bits = Number(b)
    if (bits > w) return undefined
  }
  const m = mask(ip.family, bits)
  if (strict && (ip.addr & ~m) !== 0n) return undefined
  const addr = ip.addr & m
  return { family: ip.family, addr, bits, text: `${fmt(ip.family, addr)}/${bits}` }
}

/** Is `inner` inside (or equal to) `outer`? */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.bits < outer.bits) return false
  return (inner.addr & mask(outer.family, outer.bits)) === outer.addr
}

/** Do two prefixes share any address? */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a)
}

/** A host prefix (/32 or /128) for an address, or undefined. */
export function hostCidr(ip: string): Cidr | undefined {
  const p = parseIp(ip)
  if (!p) return undefined
  return parseCidr(`${ip}/${width(p.family)}`)
}

/**
 * `cidr` minus every prefix in `except`, as the fewest prefixes (Cilium allocates CIDR
 * identities for these so that an IP's longest-prefix identity is selected exactly when the
 * IP is inside `cidr` and outside every `except`).
 *
 * @example subtractCidrs(parseCidr('10.0.0.0/8')!, [parseCidr('10.0.0.0/9')!]) // [10.128.0.0/9]
 */
export function subtractCidrs(cidr: Cidr, except: readonly Cidr[]): Cidr[] {
  const w = cidr.family === 4 ? 32 : 128
  const make = (addr: bigint, bits: number): Cidr =>
    parseCidr(`${fmt(cidr.family, addr)}/${bits}`) as Cidr
  let parts: Cidr[] = [cidr]
  for (const e of except) {
    if (e.family !== cidr.family) continue
    const next: Cidr[] = []
    for (const p of parts) {
      if (!cidrOverlaps(p, e)) {
        next.push(p)
        continue
      }
      if (cidrContains(e, p)) continue // removed entirely
      // p strictly contains e: split p along the path down to e, keeping the siblings.
      let cur = p
      while (cur.bits < e.bits) {
        const bit = 1n << BigInt(w - cur.bits - 1)
        const lo = make(cur.addr, cur.bits + 1)
        const hi = make(cur.addr | bit, cur.bits + 1)
        if (cidrContains(lo, e)) {
          next.push(hi)
          cur = lo
        } else {
          next.push(lo)
          cur = hi
        }
      }
    }
    parts = next
  }
  return parts
}
