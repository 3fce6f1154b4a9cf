/**
 * Map state: the per-endpoint policy map content, its lookup semantics and diffs.
 */
import type { Direction, L7Parser } from './model'

/** A policy map key. */
export interface MapStateKey {
  /** Peer identity; 0 = any identity (L3 wildcard). */
  identity: number
  direction: Direction
  /** IP protocol: 0 any, 6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6. */
  protocol: number
  /** Destination port (ICMP: the type); 0 with prefix length 0 = any port. */
  port: number
  /** 0..16: how many high bits of `port` are significant (16 = exact port). */
  portPrefixLen: number
}

/** A policy map value. */
export interface MapStateValue {
  deny: boolean
  /** Proxy port to redirect to; 0 = none. */
  proxyPort: number
  /** The L7 parser when the entry redirects to the proxy. */
  l7Parser?: L7Parser
  /** Cilium auth type: 0 none, 1 required (spire), 2 test-always-fail. */
  authType: number
  /** Rule ids that produced the entry (`Kind/ns/name:specs[0].ingress[1]`, or `<implicit>`). */
  derivedFrom: string[]
}

/** One entry. */
export interface MapStateEntry {
  key: MapStateKey
  value: MapStateValue
}

/** Canonical string of a key: `ingress/256/6/80/16`. */
export function mapStateKeyString(k: MapStateKey): string {
  return `${k.direction}/${k.identity}/${k.protocol}/${k.port}/${k.portPrefixLen}`
}

/** Do two values mean the same thing to the datapath (derivedFrom ignored)? */
export function sameDatapathValue(a: MapStateValue, b: MapStateValue): boolean {
  return (
    a.deny === b.deny &&
    a.proxyPort === b.proxyPort &&
    a.l7Parser === b.l7Parser &&
    a.authType === b.authType
  )
}

/**
 * The policy map content of one endpoint. Iterable over entries; keyed by
 * {@link mapStateKeyString}.
 */
export class MapState implements Iterable<MapStateEntry> {
  readonly entries = new Map<string, MapStateEntry>()
  /** Per direction: is default deny on (no implicit allow-all entry)? */
  readonly defaultDeny: Record<Direction, boolean> = { ingress: false, egress: false }

  get size(): number {
    return this.entries.size
  }

  set(key: MapStateKey, value: MapStateValue): void {
    this.entries.set(mapStateKeyString(key), { key, value })
  }

  get(key: MapStateKey): MapStateValue | undefined {
    return this.entries.get(mapStateKeyString(key))?.value
  }

  delete(key: MapStateKey): boolean {
    return this.entries.delete(mapStateKeyString(key))
  }

  [Symbol.iterator](): Iterator<MapStateEntry> {
    return this.entries.values()
  }

  /** Entries sorted by direction, identity, protocol, port, prefix. */
  sorted(): MapStateEntry[] {
    return [...this.entries.values()].sort((x, y) => {
      const a = x.key
      const b = y.key
      return (
        a.direction.localeCompare(b.direction) ||
        a.identity - b.identity ||
        a.protocol - b.protocol ||
        a.port - b.port ||
        a.portPrefixLen - b.portPrefixLen
      )
    })
  }

  clone(): MapState {
    const m = new MapState()
    for (const [k, e] of this.entries)
      m.entries.set(k, {
        key: { ...e.key },
        value: { ...e.value, derivedFrom: [...e.value.derivedFrom] },
      })
    m.defaultDeny.ingress = this.defaultDeny.ingress
    m.defaultDeny.egress = this.defaultDeny.egress
    return m
  }

  toJSON(): { defaultDeny: Record<Direction, boolean>; entries: MapStateEntry[] } {
    return { defaultDeny: { ...this.defaultDeny }, entries: this.sorted() }
  }
}

/** Changes that turn one map state into another. */
export interface MapStateDiff {
  upserts: MapStateEntry[]
  deletes: MapStateKey[]
}

/**
 * Entries to upsert and keys to delete so that `prev` becomes `next`. Entries whose datapath
 * value is unchanged are not upserted (derivedFrom changes alone do not touch the map).
 */
export function diffMapState(prev: MapState, next: MapState): MapStateDiff {
  const upserts: MapStateEntry[] = []
  const deletes: MapStateKey[] = []
  for (const [k, e] of next.entries) {
    const p = prev.entries.get(k)
    if (!p || !sameDatapathValue(p.value, e.value)) upserts.push(e)
  }
  for (const [k, e] of prev.entries) if (!next.entries.has(k)) deletes.push(e.key)
  return { upserts, deletes }
}

/** Apply a diff to a map state in place (what the datapath does to its BPF map). */
export function applyMapStateDiff(state: MapState, diff: MapStateDiff): MapState {
  for (const k of diff.deletes) state.delete(k)
  for (const e of diff.upserts) state.set(e.key, e.value)
  return state
}

/** A packet's policy-relevant fields. */
export interface MapStateQuery {
  identity: number
  direction: Direction
  protocol: number
  /** Destination port; for ICMP/ICMPv6 the ICMP type. */
  port: number
}

/** LPM length of a key over (protocol 8 bits, port 16 bits). */
export function keyPrefixLength(k: Pick<MapStateKey, 'protocol' | 'portPrefixLen'>): number {
  return k.protocol === 0 ? 0 : 8 + k.portPrefixLen
}

function bestFor(state: MapState, identity: number, q: MapStateQuery): MapStateEntry | undefined {
  for (let plen = 16; plen >= 0; plen--) {
    const shift = 16 - plen
    const port = plen === 0 ? 0 : ((q.port >>> shift) << shift) & 0xffff
    const e = state.entries.get(`${q.direction}/${identity}/${q.protocol}/${port}/${plen}`)
    if (e) return e
  }
  return state.entries.get(`${q.direction}/${identity}/0/0/0`)
}

/**
 * The datapath's lookup, which the map state is built for: the longest match over
 * (protocol, port prefix) among entries of the exact identity, and separately among entries of
 * identity 0; the longer of the two wins, the identity-specific one on a tie. No match = the
 * packet is dropped (default deny). The map state is closed under this rule: the chosen entry
 * is a deny whenever any rule denies the packet.
 *
 * @example lookupMapState(state, { identity: 256, direction: 'ingress', protocol: 6, port: 80 })
 */
export function lookupMapState(state: MapState, q: MapStateQuery): MapStateEntry | undefined {
  const specific = q.identity !== 0 ? bestFor(state, q.identity, q) : undefined
  const any = bestFor(state, 0, q)
  if (!specific) return any
  if (!any) return specific
  return keyPrefixLength(any.key) > keyPrefixLength(specific.key) ? any : specific
}

/** 'allowed' / 'denied' verdict of a lookup (proxy redirects count as allowed at L4). */
export function mapStateVerdict(state: MapState, q: MapStateQuery): 'allowed' | 'denied' {
  const e = lookupMapState(state, q)
  return e && !e.value.deny ? 'allowed' : 'denied'
}
