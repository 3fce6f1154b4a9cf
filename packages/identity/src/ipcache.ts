import { type IpFamily, ipToBigInt, mustParseIp, type Prefix, parseIpv4 } from '@membrane/types'
import { toPrefix } from './_prefix'
import { IdentityError, IdentityErrorCode } from './errors'

/**
 * Who wrote an ipcache entry, lowest precedence first. When several sources hold an entry for
 * one prefix, the highest one is in effect; deleting it brings the next one back.
 */
export const IPCACHE_SOURCES = [
  'generated',
  'restored',
  'kubernetes',
  'custom-resource',
  'kvstore',
  'local',
  'kube-apiserver',
] as const

export type IPCacheSource = (typeof IPCACHE_SOURCES)[number]

const RANK: Readonly<Record<string, number>> = Object.fromEntries(
  IPCACHE_SOURCES.map((s, i) => [s, i]),
)

/** What the ipcache knows about an IP or prefix. */
export interface IPCacheEntry {
  /** The security identity of traffic from/to this prefix. */
  readonly identity: number
  /** IPsec/WireGuard key index (0..255), when traffic to it is encrypted. */
  readonly encryptKey?: number
  /** The node IP to tunnel to (VXLAN), when the prefix lives on another node. */
  readonly tunnelEndpoint?: string
  /** Who wrote it. Default `local`. */
  readonly source: IPCacheSource
}

/** Input of {@link IPCache.upsert}: `source` is optional (default `local`). */
export type IPCacheEntryInput = Omit<IPCacheEntry, 'source'> & { source?: IPCacheSource }

/** A change of the effective entry of a prefix; the datapath turns these into BPF LPM writes. */
export type IPCacheEvent =
  | { type: 'upsert'; prefix: Prefix; entry: IPCacheEntry; previous: IPCacheEntry | undefined }
  | { type: 'delete'; prefix: Prefix; previous: IPCacheEntry }

/** Receives {@link IPCacheEvent}s synchronously. */
export type IPCacheListener = (event: IPCacheEvent) => void

/** A longest-prefix-match result. */
export interface IPCacheMatch {
  prefix: Prefix
  entry: IPCacheEntry
}

interface Slot {
  prefix: Prefix
  bySource: Map<IPCacheSource, IPCacheEntry>
  effective: IPCacheEntry
}

/** One family's table: a map per prefix length, and the lengths in use, longest first. */
class FamilyTable<K> {
  readonly byLength = new Map<number, Map<K, Slot>>()
  lengths: number[] = []

  get(length: number, key: K): Slot | undefined {
    return this.byLength.get(length)?.get(key)
  }

  set(length: number, key: K, slot: Slot): void {
    let m = this.byLength.get(length)
    if (!m) {
      m = new Map()
      this.byLength.set(length, m)
      this.lengths = [...this.byLength.keys()].sort((a, b) => b - a)
    }
    m.set(key, slot)
  }

  delete(length: number, key: K): void {
    const m = this.byLength.get(length)
    if (!m) return
    m.delete(key)
    if (m.size === 0) {
      this.byLength.delete(length)
      this.lengths = [...this.byLength.keys()].sort((a, b) => b - a)
    }
  }
}

function v4Key(address: number, length: number): number {
  return length === 0 ? 0 : (address & (-1 << (32 - length))) >>> 0
}

function v6Key(address: bigint, length: number): bigint {
  return length === 0 ? 0n : (address >> BigInt(128 - length)) << BigInt(128 - length)
}

function validateEntry(prefix: string, input: IPCacheEntryInput): IPCacheEntry {
  const fail = (field: string, why: string) =>
    new IdentityError(
      IdentityErrorCode.INVALID_IDENTITY,
      `ipcache entry for ${prefix}: ${field} ${why}`,
      {
        input: { prefix, entry: input },
      },
    )
  if (!input || typeof input !== 'object') throw fail('entry', 'must be an object { identity }')
  if (!Number.isInteger(input.identity) || input.identity < 0 || input.identity > 0xffffffff) {
    throw fail('identity', `must be an integer 0..2^32-1, got ${JSON.stringify(input.identity)}`)
  }
  if (
    input.encryptKey !== undefined &&
    (!Number.isInteger(input.encryptKey) || input.encryptKey < 0 || input.encryptKey > 255)
  ) {
    throw fail('encryptKey', `must be an integer 0..255, got ${JSON.stringify(input.encryptKey)}`)
  }
  let tunnelEndpoint: string | undefined
  if (input.tunnelEndpoint !== undefined) {
    try {
      tunnelEndpoint = toPrefix(input.tunnelEndpoint).cidr.replace(/\/\d+$/, '')
    } catch (error) {
      throw fail('tunnelEndpoint', `must be an IP address: ${(error as Error).message}`)
    }
  }
  const source = input.source ?? 'local'
  if (RANK[source] === undefined)
    throw fail('source', `must be one of ${IPCACHE_SOURCES.join(', ')}`)
  const out: { -readonly [K in keyof IPCacheEntry]: IPCacheEntry[K] } = {
    identity: input.identity,
    source,
  }
  if (input.encryptKey !== undefined) out.encryptKey = input.encryptKey
  if (tunnelEndpoint !== undefined) out.tunnelEndpoint = tunnelEndpoint
  return Object.freeze(out)
}

function sameEntry(a: IPCacheEntry | undefined, b: IPCacheEntry | undefined): boolean {
  return (
    a === b ||
    (a !== undefined &&
      b !== undefined &&
      a.identity === b.identity &&
      a.encryptKey === b.encryptKey &&
      a.tunnelEndpoint === b.tunnelEndpoint &&
      a.source === b.source)
  )
}

/**
 * The model of the datapath's ipcache: IP/prefix -> identity (plus encryption key and tunnel
 * endpoint), with longest-prefix-match lookups and change events. Pure; the datapath applies
 * the events to the BPF LPM map, and `@membrane/identity/etcd` can share entries between nodes.
 *
 * @example
 * const ipc = new IPCache()
 * ipc.subscribe((e) => console.log(e.type, e.prefix.cidr))
 * ipc.upsert('10.0.0.0/8', { identity: 16777217 })
 * ipc.upsert('10.1.2.3', { identity: 256, tunnelEndpoint: '192.168.0.2' })
 * ipc.lookup('10.1.2.3')?.entry.identity // 256
 * ipc.lookup('10.9.9.9')?.entry.identity // 16777217
 */
export class IPCache {
  readonly #v4 = new FamilyTable<number>()
  readonly #v6 = new FamilyTable<bigint>()
  readonly #listeners = new Set<IPCacheListener>()
  #size = 0

  /** Number of prefixes with an entry. */
  get size(): number {
    return this.#size
  }

  #slot(prefix: Prefix): Slot | undefined {
    return prefix.family === 4
      ? this.#v4.get(prefix.length, Number(prefix.address))
      : this.#v6.get(prefix.length, prefix.address)
  }

  /**
   * Set the entry of `source` (default `local`) for a prefix (`10.0.0.0/8`, or an address for a
   * /32 or /128). Emits `upsert` when the effective entry changed. Returns true when it did.
   *
   * @throws AddressError (@membrane/types) / `INVALID_IDENTITY` naming the prefix and the field.
   */
  upsert(prefix: string | Prefix, entry: IPCacheEntryInput): boolean {
    const p = toPrefix(prefix)
    const e = validateEntry(p.cidr, entry)
    let slot = this.#slot(p)
    const previous = slot?.effective
    if (!slot) {
      slot = { prefix: p, bySource: new Map([[e.source, e]]), effective: e }
      if (p.family === 4) this.#v4.set(p.length, Number(p.address), slot)
      else this.#v6.set(p.length, p.address, slot)
      this.#size++
    } else {
      slot.bySource.set(e.source, e)
      slot.effective = pickEffective(slot.bySource)
    }
    if (sameEntry(previous, slot.effective)) return false
    this.#emit({ type: 'upsert', prefix: slot.prefix, entry: slot.effective, previous })
    return true
  }

  /**
   * Remove the entry of `source` (default: every source) for a prefix. Emits `delete` when no
   * source is left, or `upsert` when a lower-precedence entry takes over. Returns true when the
   * effective entry changed.
   */
  delete(prefix: string | Prefix, source?: IPCacheSource): boolean {
    const p = toPrefix(prefix)
    const slot = this.#slot(p)
    if (!slot) return false
    const previous = slot.effective
    if (source === undefined) slot.bySource.clear()
    else if (!slot.bySource.delete(source)) return false
    if (slot.bySource.size === 0) {
      if (p.family === 4) this.#v4.delete(p.length, Number(p.address))
      else this.#v6.delete(p.length, p.address)
      this.#size--
      this.#emit({ type: 'delete', prefix: slot.prefix, previous })
      return true
    }
    slot.effective = pickEffective(slot.bySource)
    if (sameEntry(previous, slot.effective)) return false
    this.#emit({ type: 'upsert', prefix: slot.prefix, entry: slot.effective, previous })
    return true
  }

  /** The effective entry of exactly this prefix (no longest-prefix match). */
  get(prefix: string | Prefix): IPCacheEntry | undefined {
    const p = toPrefix(prefix)
    return this.#slot(p)?.effective
  }

  /** Every source's entry for exactly this prefix. */
  sources(prefix: string | Prefix): IPCacheEntry[] {
    const p = toPrefix(prefix)
    return [...(this.#slot(p)?.bySource.values() ?? [])]
  }

  /**
   * Longest-prefix match of an IP address, as the BPF LPM trie answers it.
   *
   * @throws AddressError (@membrane/types) when `ip` is not an address.
   */
  lookup(ip: string): IPCacheMatch | undefined {
    const v4 = parseIpv4(ip)
    if (v4 !== undefined) return this.lookupV4(v4)
    const parsed = mustParseIp(ip)
    return this.lookupAddress(parsed.family, ipToBigInt(parsed))
  }

  /** {@link lookup} of an IPv4 address given as a 32-bit number. */
  lookupV4(address: number): IPCacheMatch | undefined {
    const t = this.#v4
    for (const len of t.lengths) {
      const slot = t.byLength.get(len)?.get(v4Key(address, len))
      if (slot) return { prefix: slot.prefix, entry: slot.effective }
    }
    return undefined
  }

  /** {@link lookup} of an address given as family + integer. */
  lookupAddress(family: IpFamily, address: bigint): IPCacheMatch | undefined {
    if (family === 4) return this.lookupV4(Number(address))
    const t = this.#v6
    for (const len of t.lengths) {
      const slot = t.byLength.get(len)?.get(v6Key(address, len))
      if (slot) return { prefix: slot.prefix, entry: slot.effective }
    }
    return undefined
  }

  /** The identity of an IP by longest-prefix match, or `fallback` (default 2, world). */
  identityOf(ip: string, fallback = 2): number {
    return this.lookup(ip)?.entry.identity ?? fallback
  }

  /** Every prefix and its effective entry (IPv4 first, longer prefixes first). */
  *entries(): IterableIterator<IPCacheMatch> {
    for (const t of [this.#v4, this.#v6] as FamilyTable<unknown>[]) {
      for (const len of t.lengths) {
        for (const slot of t.byLength.get(len)?.values() ?? [])
          yield { prefix: slot.prefix, entry: slot.effective }
      }
    }
  }

  /** Plain `{ cidr, ...entry }` objects of every prefix, for JSON. */
  dump(): Array<{ cidr: string } & IPCacheEntry> {
    return [...this.entries()].map(({ prefix, entry }) => ({ cidr: prefix.cidr, ...entry }))
  }

  /**
   * Follow changes. With `replay` (default true) an `upsert` of every current entry comes first,
   * so a new datapath map can be filled and then kept in sync. Returns the unsubscribe function.
   */
  subscribe(listener: IPCacheListener, options: { replay?: boolean } = {}): () => void {
    if (options.replay !== false) {
      for (const { prefix, entry } of this.entries())
        listener({ type: 'upsert', prefix, entry, previous: undefined })
    }
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  #emit(event: IPCacheEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event)
      } catch (error) {
        queueMicrotask(() => {
          throw error
        })
      }
    }
  }
}

function pickEffective(bySource: Map<IPCacheSource, IPCacheEntry>): IPCacheEntry {
  let best: IPCacheEntry | undefined
  for (const e of bySource.values())
    if (!best || (RANK[e.source] as number) > (RANK[best.source] as number)) best = e
  return best as IPCacheEntry
}
