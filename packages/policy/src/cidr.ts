/**
 * CIDRs as policies write them, over the prefixes of @membrane/types. Pure, no Node APIs.
 */
import {
  makePrefix,
  type Prefix,
  parsePrefixOrUndefined,
  prefixContains,
  prefixOverlaps,
} from '@membrane/types'

/**
 * Parse `a.b.c.d/n`, `x::y/n` or a bare address (a host prefix), as a policy's `cidr`,
 * `except` or a `cidr:` label key. Host bits must be zero when `strict`; otherwise they are
 * cleared (Cilium accepts `10.0.0.1/8` and masks it). Cilium writes IPv6 CIDR labels with `-`
 * for `:` (`cidr:2001-db8--/32`); that spelling is accepted too.
 */
export function parseCidr(text: string, strict = false): Prefix | undefined {
  if (typeof text !== 'string') return undefined
  let s = text.trim()
  if (!s.includes(':') && /^[0-9a-fA-F-]+\/\d+$/.test(s) && s.includes('-'))
    s = s.replaceAll('-', ':')
  return parsePrefixOrUndefined(s, { strict })
}

/** A host prefix (/32 or /128) for an address, or undefined. */
export function hostCidr(ip: string): Prefix | undefined {
  return typeof ip === 'string' && !ip.includes('/') ? parsePrefixOrUndefined(ip) : undefined
}

/**
 * `cidr` minus every prefix in `except`, as the fewest prefixes (Cilium allocates CIDR
 * identities for these so that an IP's longest-prefix identity is selected exactly when the
 * IP is inside `cidr` and outside every `except`).
 *
 * @example subtractCidrs(parseCidr('10.0.0.0/8')!, [parseCidr('10.0.0.0/9')!]) // [10.128.0.0/9]
 */
export function subtractCidrs(cidr: Prefix, except: readonly Prefix[]): Prefix[] {
  const w = cidr.family === 4 ? 32 : 128
  let parts: Prefix[] = [cidr]
  for (const e of except) {
    if (e.family !== cidr.family) continue
    const next: Prefix[] = []
    for (const p of parts) {
      if (!prefixOverlaps(p, e)) {
        next.push(p)
        continue
      }
      if (prefixContains(e, p)) continue // removed entirely
      // p strictly contains e: split p along the path down to e, keeping the siblings.
      let cur = p
      while (cur.length < e.length) {
        const bit = 1n << BigInt(w - cur.length - 1)
        const lo = makePrefix(cidr.family, cur.address, cur.length + 1)
        const hi = makePrefix(cidr.family, cur.address | bit, cur.length + 1)
        if (prefixContains(lo, e)) {
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
