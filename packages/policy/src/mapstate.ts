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
  /**
   * Rule ids that produced the entry (`Kind/ns/name:specs[0].ingress[1]`, or
   * `<no default deny>`). With `audit`: the audit rules that would deny (or the policies whose
   * default deny would).
   */
  derivedFrom: string[]
  /** Allowed, but an audit policy would deny it: the datapath reports AUDIT and lets it pass. */
  audit?: boolean
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

/**
 * Do two values mean the same thing to the datapath? The rules they derive from count: the
 * datapath stores an id of them, which its events carry (policy attribution).
 */
export function sameDatapathValue(a: MapStateValue, b: MapStateValue): boolean {
  return (
    a.deny === b.deny &&
    a.proxyPort === b.proxyPort &&
    a.l7Parser === b.l7Parser &&
    a.authType === b.authType &&
    (a.audit ?? false) === (b.audit ?? false) &&
    sameStrings(a.derivedFrom, b.derivedFrom)
  )
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const P24 = 0x1000000
const P16 = 0x10000

/** Encode (protocol, prefix length, port) into one number (internal layout of MapState). */
function l4Code(protocol: number, portPrefixLen: number, port: number): number {
  return protocol * P24 + portPrefixLen * P16 + port
}

/** Slot of (identity, direction): identity * 2 + (egress ? 1 : 0). */
function slotOf(identity: number, direction: Direction): number {
  return identity * 2 + (direction === 'egress' ? 1 : 0)
}

type Slot = LazyEntry | Map<number, LazyEntry>

function slotGet(slot: Slot | undefined, code: number): LazyEntry | undefined {
  if (slot === undefined) return undefined
  if (slot instanceof Map) return slot.get(code)
  return slot.code === code ? slot : undefined
}

function slotValues(slot: Slot | undefined): LazyEntry[] {
  if (slot === undefined) return []
  return slot instanceof Map ? [...slot.values()] : [slot]
}

/**
 * The policy map content of one endpoint. Iterable over entries; stored per (identity,
 * direction) then per (protocol, prefix, port), so that an identity's entries are replaced
 * cheaply (most identities have one entry per direction, stored without an inner map).
 * Values may be shared between entries: treat them as read-only.
 */
export class MapState implements Iterable<MapStateEntry> {
  private readonly slots = new Map<number, Slot>()
  private count = 0
  /** Per direction: is default deny on (no implicit allow-all entry)? */
  readonly defaultDeny: Record<Direction, boolean> = { ingress: false, egress: false }
  /**
   * Per direction: the refs of the policies that put the endpoint into default deny (what a
   * packet no entry matches is denied by). Empty when default deny is off or forced on by the
   * enforcement mode.
   */
  readonly defaultDenyBy: Record<Direction, string[]> = { ingress: [], egress: [] }

  get size(): number {
    return this.count
  }

  set(key: MapStateKey, value: MapStateValue): void {
    const e = new LazyEntry(
      key.identity,
      key.direction,
      l4Code(key.protocol, key.portPrefixLen, key.port),
      value,
    )
    this.putEntry(slotOf(key.identity, key.direction), e)
  }

  get(key: MapStateKey): MapStateValue | undefined {
    return this.entry(key)?.value
  }

  has(key: MapStateKey): boolean {
    return this.entry(key) !== undefined
  }

  /** The entry stored under `key`. */
  entry(key: MapStateKey): MapStateEntry | undefined {
    return slotGet(
      this.slots.get(slotOf(key.identity, key.direction)),
      l4Code(key.protocol, key.portPrefixLen, key.port),
    )
  }

  /** Internal fast path: entry by identity, direction and l4 code. */
  lookupCode(identity: number, direction: Direction, code: number): MapStateEntry | undefined {
    return slotGet(this.slots.get(slotOf(identity, direction)), code)
  }

  delete(key: MapStateKey): boolean {
    const slotKey = slotOf(key.identity, key.direction)
    const slot = this.slots.get(slotKey)
    const code = l4Code(key.protocol, key.portPrefixLen, key.port)
    if (slot === undefined) return false
    if (slot instanceof Map) {
      if (!slot.delete(code)) return false
      if (slot.size === 0) this.slots.delete(slotKey)
    } else {
      if (slot.code !== code) return false
      this.slots.delete(slotKey)
    }
    this.count--
    return true
  }

  /** Entries of one identity (both directions). */
  identityEntries(identity: number): MapStateEntry[] {
    return [
      ...slotValues(this.slots.get(slotOf(identity, 'ingress'))),
      ...slotValues(this.slots.get(slotOf(identity, 'egress'))),
    ]
  }

  /** Remove every entry of one identity; returns the removed entries. */
  deleteIdentity(identity: number): MapStateEntry[] {
    const out = this.identityEntries(identity)
    this.slots.delete(slotOf(identity, 'ingress'))
    this.slots.delete(slotOf(identity, 'egress'))
    this.count -= out.length
    return out
  }

  /** Internal fast path used by the compiler: put an entry without allocating a lookup key. */
  put(identity: number, direction: Direction, code: number, value: MapStateValue): void {
    this.putEntry(slotOf(identity, direction), new LazyEntry(identity, direction, code, value))
  }

  private putEntry(slotKey: number, e: LazyEntry): void {
    const slot = this.slots.get(slotKey)
    if (slot === undefined) {
      this.slots.set(slotKey, e)
      this.count++
    } else if (slot instanceof Map) {
      if (!slot.has(e.code)) this.count++
      slot.set(e.code, e)
    } else if (slot.code === e.code) {
      this.slots.set(slotKey, e)
    } else {
      this.slots.set(
        slotKey,
        new Map([
          [slot.code, slot],
          [e.code, e],
        ]),
      )
      this.count++
    }
  }

  /** Internal: visit (slot, l4 code, entry) without materializing keys. */
  forEachRaw(fn: (slot: number, code: number, e: MapStateEntry) => void): void {
    for (const [slotKey, slot] of this.slots) {
      if (slot instanceof Map) for (const [code, e] of slot) fn(slotKey, code, e)
      else fn(slotKey, slot.code, slot)
    }
  }

  /** Internal: the entry at (slot, l4 code). */
  rawGet(slot: number, code: number): MapStateEntry | undefined {
    return slotGet(this.slots.get(slot), code)
  }

  *[Symbol.iterator](): Iterator<MapStateEntry> {
    for (const slot of this.slots.values()) {
      if (slot instanceof Map) yield* slot.values()
      else yield slot
    }
  }

  /** Entries sorted by direction, identity, protocol, port, prefix. */
  sorted(): MapStateEntry[] {
    return [...this].sort((x, y) => {
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
    for (const e of this) m.set({ ...e.key }, { ...e.value, derivedFrom: [...e.value.derivedFrom] })
    m.defaultDeny.ingress = this.defaultDeny.ingress
    m.defaultDeny.egress = this.defaultDeny.egress
    m.defaultDenyBy.ingress = [...this.defaultDenyBy.ingress]
    m.defaultDenyBy.egress = [...this.defaultDenyBy.egress]
    return m
  }

  toJSON(): {
    defaultDeny: Record<Direction, boolean>
    defaultDenyBy: Record<Direction, string[]>
    entries: MapStateEntry[]
  } {
    return {
      defaultDeny: { ...this.defaultDeny },
      defaultDenyBy: {
        ingress: [...this.defaultDenyBy.ingress],
        egress: [...this.defaultDenyBy.egress],
      },
      entries: this.sorted().map((e) => ({ key: e.key, value: e.value })),
    }
  }
}

/** An entry whose key object is built on first access (the compiler emits many). */
class LazyEntry implements MapStateEntry {
  private k: MapStateKey | undefined
  constructor(
    private readonly identity: number,
    private readonly direction: Direction,
    readonly code: number,
    readonly value: MapStateValue,
  ) {}
  get key(): MapStateKey {
    this.k ??= {
      identity: this.identity,
      direction: this.direction,
      protocol: Math.floor(this.code / P24),
      port: this.code % P16,
      portPrefixLen: Math.floor(this.code / P16) % 256,
    }
    return this.k
  }
  toJSON(): MapStateEntry {
    return { key: this.key, value: this.value }
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
  next.forEachRaw((slot, code, e) => {
    const p = prev.size ? prev.rawGet(slot, code) : undefined
    if (!p || !sameDatapathValue(p.value, e.value)) upserts.push(e)
  })
  if (prev.size)
    prev.forEachRaw((slot, code, e) => {
      if (!next.rawGet(slot, code)) deletes.push(e.key)
    })
  return { upserts, deletes }
}

/** One diff with the effect of applying `a`, then `b`. */
export function composeMapStateDiffs(a: MapStateDiff, b: MapStateDiff): MapStateDiff {
  const last = new Map<string, MapStateEntry | MapStateKey>()
  for (const k of a.deletes) last.set(mapStateKeyString(k), k)
  for (const e of a.upserts) last.set(mapStateKeyString(e.key), e)
  for (const k of b.deletes) last.set(mapStateKeyString(k), k)
  for (const e of b.upserts) last.set(mapStateKeyString(e.key), e)
  const out: MapStateDiff = { upserts: [], deletes: [] }
  for (const v of last.values()) {
    if ('value' in v) out.upserts.push(v)
    else out.deletes.push(v)
  }
  return out
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
function keyPrefixLength(k: Pick<MapStateKey, 'protocol' | 'portPrefixLen'>): number {
  return k.protocol === 0 ? 0 : 8 + k.portPrefixLen
}

function bestFor(
  state: MapState,
  identity: number,
  q: MapStateQuery,
  from = 16,
): MapStateEntry | undefined {
  if (q.protocol === 0) return state.lookupCode(identity, q.direction, 0)
  for (let plen = from; plen >= 0; plen--) {
    const shift = 16 - plen
    const port = plen === 0 ? 0 : ((q.port >>> shift) << shift) & 0xffff
    const e = state.lookupCode(identity, q.direction, l4Code(q.protocol, plen, port))
    if (e) return e
  }
  return state.lookupCode(identity, q.direction, 0)
}

/** How a datapath resolves an exact-identity match against a wildcard-identity match. */
export type LookupOrder = 'longest' | 'identity-first'

/**
 * The datapath's lookup, which the map state is built for. Take the longest match over
 * (protocol, port prefix) among entries of the exact identity (E) and, separately, among
 * entries of identity 0 (A). Then, with order `longest` (default): the longer of E and A wins,
 * E on a tie. With order `identity-first` (bpf-src/lib/policy.h): a deny in E or A wins, else E,
 * else A. The compiler closes the map state so that both orders give the same verdict and the
 * same proxy port, and a deny whenever any deny rule covers the packet. No match = drop.
 *
 * @example lookupMapState(state, { identity: 256, direction: 'ingress', protocol: 6, port: 80 })
 */
export function lookupMapState(
  state: MapState,
  q: MapStateQuery,
  order: LookupOrder = 'longest',
): MapStateEntry | undefined {
  const specific = q.identity !== 0 ? bestFor(state, q.identity, q) : undefined
  const any = bestFor(state, 0, q)
  if (!specific) return any
  if (!any) return specific
  if (order === 'identity-first') {
    if (specific.value.deny) return specific
    if (any.value.deny) return any
    return specific
  }
  return keyPrefixLength(any.key) > keyPrefixLength(specific.key) ? any : specific
}

/**
 * The entry the datapath's lookup (order `identity-first`) gives for every packet inside `key`
 * that no longer key of `state` covers: the same lookup over the keys containing `key`.
 */
function lookupMapStateKey(state: MapState, key: MapStateKey): MapStateEntry | undefined {
  const q: MapStateQuery = {
    identity: key.identity,
    direction: key.direction,
    protocol: key.protocol,
    port: key.port,
  }
  const specific =
    key.identity !== 0 ? bestFor(state, key.identity, q, key.portPrefixLen) : undefined
  const any = bestFor(state, 0, q, key.portPrefixLen)
  if (!specific) return any
  if (!any || specific.value.deny) return specific
  return any.value.deny ? any : specific
}

/**
 * Merge the map state of an endpoint's enforcing policies (`enforcing`) with the one of all its
 * policies, audit ones included (`all`): every packet gets the enforcing verdict (an audit
 * policy's allow opens nothing, its deny closes nothing); where the enforcing policies allow
 * and all policies would deny, the entry is marked `audit` and names what would have denied
 * it. Keys: the union of both states, with each identity's keys completed by the identity-0
 * keys, so that both verdicts are constant under every key and both lookup orders agree.
 */
export function mergeAuditMapState(enforcing: MapState, all: MapState): MapState {
  const out = new MapState()
  const codes = new Map<number, Set<number>>()
  for (const state of [enforcing, all])
    state.forEachRaw((slot, code) => {
      let s = codes.get(slot)
      if (!s) {
        s = new Set()
        codes.set(slot, s)
      }
      s.add(code)
    })
  for (const dir of ['ingress', 'egress'] as const) {
    out.defaultDeny[dir] = enforcing.defaultDeny[dir]
    out.defaultDenyBy[dir] = [...enforcing.defaultDenyBy[dir]]
  }
  for (const [slot, set] of codes) {
    const identity = Math.floor(slot / 2)
    const direction: Direction = slot % 2 ? 'egress' : 'ingress'
    const wild = identity === 0 ? undefined : codes.get(slotOf(0, direction))
    const keys = wild ? new Set([...set, ...wild]) : set
    for (const code of keys) {
      const key: MapStateKey = {
        identity,
        direction,
        protocol: Math.floor(code / P24),
        port: code % P16,
        portPrefixLen: Math.floor(code / P16) % 256,
      }
      const e = lookupMapStateKey(enforcing, key)
      if (!e) continue // the enforcing policies drop it: no entry, as in `enforcing`
      if (e.value.deny) {
        out.set(key, e.value)
        continue
      }
      const a = lookupMapStateKey(all, key)
      if (a && !a.value.deny) out.set(key, e.value)
      else
        out.set(key, {
          ...e.value,
          audit: true,
          derivedFrom: a ? a.value.derivedFrom : all.defaultDenyBy[direction],
        })
    }
  }
  return out
}

/** 'allowed' / 'denied' verdict of a lookup (proxy redirects count as allowed at L4). */
export function mapStateVerdict(
  state: MapState,
  q: MapStateQuery,
  order: LookupOrder = 'longest',
): 'allowed' | 'denied' {
  const e = lookupMapState(state, q, order)
  return e && !e.value.deny ? 'allowed' : 'denied'
}
