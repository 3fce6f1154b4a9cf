import { formatIpv4, parseIpv4, parsePrefixOrUndefined } from '@membrane/types'
import { AgentError, invalid } from '../errors'

/** An IPv4 prefix: network address (as a number) and length. */
export interface Ipv4Prefix {
  network: number
  length: number
}

/**
 * Parse `a.b.c.d/len` (addresses and prefixes as @membrane/types reads them); the address must
 * be the network address (no host bits).
 */
export function parseIpv4Prefix(field: string, text: unknown): Ipv4Prefix {
  const expected = 'expected a CIDR like 10.200.0.0/16'
  if (typeof text !== 'string') throw invalid(field, expected)
  const slash = text.indexOf('/')
  const prefix = slash === -1 ? undefined : parsePrefixOrUndefined(text)
  if (prefix?.family !== 4) throw invalid(field, `${expected}, got ${JSON.stringify(text)}`)
  if (parseIpv4(text.slice(0, slash)) !== Number(prefix.address)) {
    throw invalid(field, `${text} has host bits set; the network address is ${prefix.cidr}`)
  }
  return { network: Number(prefix.address), length: prefix.length }
}

/**
 * Ranges that are never a pod pool: "this network", loopback, link-local, multicast and the
 * reserved class E (with the limited broadcast). Packets to or from them are not routed like
 * unicast (RFC 1122, 3927, 5771, 1112).
 */
const SPECIAL_RANGES: [string, string][] = [
  ['0.0.0.0/8', '"this network" (RFC 1122)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (RFC 3927)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (class E and broadcast)'],
]

function overlaps(a: Ipv4Prefix, b: Ipv4Prefix): boolean {
  const len = Math.min(a.length, b.length)
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0
  return (a.network & mask) >>> 0 === (b.network & mask) >>> 0
}

/**
 * The special-purpose range (loopback, multicast, link-local, "this network", class E) that a
 * prefix overlaps, as `cidr (what)`, or undefined for an ordinary unicast prefix.
 */
export function specialRange(prefix: Ipv4Prefix): string | undefined {
  for (const [cidr, what] of SPECIAL_RANGES) {
    if (overlaps(prefix, parseIpv4Prefix('range', cidr))) return `${cidr} (${what})`
  }
  return undefined
}

/** Parse and check an endpoint pool: a CIDR of ordinary unicast addresses, /8 to /28. */
export function parsePool(field: string, text: unknown): Ipv4Prefix {
  const pool = parseIpv4Prefix(field, text)
  if (pool.length < 8 || pool.length > 28) {
    throw invalid(field, `pool length must be between /8 and /28, got /${pool.length}`)
  }
  const special = specialRange(pool)
  if (special) {
    throw invalid(
      field,
      `${String(text)} overlaps ${special}, which cannot hold endpoint addresses`,
    )
  }
  return pool
}

/**
 * Host-scope IPv4 address management for one node: the first address of the pool is the router
 * address (the endpoints' gateway, on the agent's host device); endpoints get the lowest free
 * address after it. The allocation set is owned by the caller's state so it survives restarts.
 */
export class Ipam {
  readonly pool: Ipv4Prefix
  readonly #used = new Set<number>()

  /** @param pool a unicast CIDR of length 8..28 (see {@link parsePool}), e.g. `10.200.0.0/16` */
  constructor(pool: string, used: Iterable<string> = []) {
    this.pool = parsePool('ipamPool', pool)
    for (const ip of used) this.claim(ip)
  }

  /** The pool as text. */
  get cidr(): string {
    return `${formatIpv4(this.pool.network)}/${this.pool.length}`
  }

  /** The router address: the endpoints' default gateway, held by the agent's host device. */
  get router(): string {
    return formatIpv4(this.pool.network + 1)
  }

  /** Addresses in use (router excluded). */
  get used(): string[] {
    return [...this.#used].sort((a, b) => a - b).map(formatIpv4)
  }

  /** True when `ip` lies inside the pool. */
  contains(ip: string): boolean {
    const n = parseIpv4(ip)
    if (n === undefined) return false
    const size = 2 ** (32 - this.pool.length)
    return n >= this.pool.network && n < this.pool.network + size
  }

  /** Mark a specific address as used (restart, or a user-chosen address). */
  claim(ip: string): void {
    const n = parseIpv4(ip)
    if (n === undefined || !this.contains(ip)) {
      throw invalid('ip', `${ip} is not an address in the pool ${this.cidr}`)
    }
    const size = 2 ** (32 - this.pool.length)
    if (n <= this.pool.network + 1 || n === this.pool.network + size - 1) {
      throw invalid('ip', `${ip} is the network, router or broadcast address of ${this.cidr}`)
    }
    if (this.#used.has(n)) throw new AgentError('CONFLICT', `address ${ip} is already in use`)
    this.#used.add(n)
  }

  /** Allocate the lowest free address. */
  allocate(): string {
    const size = 2 ** (32 - this.pool.length)
    for (let n = this.pool.network + 2; n < this.pool.network + size - 1; n++) {
      if (!this.#used.has(n)) {
        this.#used.add(n)
        return formatIpv4(n)
      }
    }
    throw new AgentError('EXHAUSTED', `no free address left in ${this.cidr}`)
  }

  /** Return an address to the pool (no-op when it was not in use). */
  release(ip: string): void {
    const n = parseIpv4(ip)
    if (n !== undefined) this.#used.delete(n)
  }
}
