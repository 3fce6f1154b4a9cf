/**
 * The selector cache: every peer selector of every rule, resolved to the set of identities it
 * selects, kept up to date incrementally as identities come and go.
 */
import type { Prefix } from '@membrane/types'
import { hostCidr } from './cidr'
import {
  type IdentityData,
  indexKeysOfIdentity,
  indexLabelsOf,
  type PeerContext,
  peerSelects,
  ResolvedIdentity,
  type ServiceInfo,
} from './identity'
import { type Peer, peerKey } from './model'

/** Which identities entered or left which selections. */
export interface SelectionChange {
  /** Identity ids added, removed or re-labelled, or whose membership in a selection changed. */
  identities: ReadonlySet<number>
  /** Selector key -> ids added / removed. */
  selectors: ReadonlyMap<string, { added: number[]; removed: number[] }>
}

interface Selection {
  peer: Peer
  ids: Set<number>
  refs: number
  index: string[] | undefined
}

class FqdnCache {
  /** ip text -> names */
  readonly byIp = new Map<string, Set<string>>()
  namesForIp(ip: Prefix): Iterable<string> {
    return this.byIp.get(ip.cidr) ?? []
  }
}

/**
 * Resolves selectors (peers) to identity sets. Identities arrive through
 * {@link SelectorCache.updateIdentities} (wire the identity package's add/delete watch to it).
 *
 * @example
 * cache.updateIdentities([{ id: 256, labels: ['k8s:app=web'] }], [])
 * cache.selected(key) // ReadonlySet<number>
 */
export class SelectorCache {
  private readonly identitiesById = new Map<number, ResolvedIdentity>()
  private readonly selections = new Map<string, Selection>()
  /** label index key -> identity ids */
  private readonly labelIndex = new Map<string, Set<number>>()
  /** label index key -> selector keys using it as their candidate label */
  private readonly selectorsByLabel = new Map<string, Set<string>>()
  /** selectors that must be checked against every identity */
  private readonly scanSelectors = new Set<string>()
  private readonly listeners = new Set<(c: SelectionChange) => void>()
  private readonly fqdnCache = new FqdnCache()
  private readonly services = new Map<string, ServiceInfo>()
  private readonly cidrGroups = new Map<string, readonly Prefix[]>()
  /** Context for peer predicates (learned DNS names, services, CIDR groups). */
  readonly context: PeerContext = {
    fqdn: this.fqdnCache,
    services: this.services,
    cidrGroups: this.cidrGroups,
  }

  private _version = 0

  /** Bumped on every change of any selection (identities, DNS answers, services). */
  get version(): number {
    return this._version
  }

  /** Number of identities known. */
  get identityCount(): number {
    return this.identitiesById.size
  }

  /** Number of distinct selectors registered. */
  get selectorCount(): number {
    return this.selections.size
  }

  /** The identity with this id, if known. */
  identity(id: number): ResolvedIdentity | undefined {
    return this.identitiesById.get(id)
  }

  /** Every known identity. */
  identities(): IterableIterator<ResolvedIdentity> {
    return this.identitiesById.values()
  }

  /** Subscribe to selection changes; returns the unsubscribe function. */
  onChange(listener: (c: SelectionChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Register a peer (refcounted); returns its key. A wildcard peer is not cached: it stands for
   * identity 0 in map state.
   */
  register(peer: Peer): string {
    const key = peerKey(peer)
    const s = this.selections.get(key)
    if (s) {
      s.refs++
      return key
    }
    const index = indexLabelsOf(peer)
    const sel: Selection = { peer, ids: new Set(), refs: 1, index }
    this.selections.set(key, sel)
    if (peer.kind === 'wildcard') return key
    if (index) {
      for (const l of index) {
        let set = this.selectorsByLabel.get(l)
        if (!set) {
          set = new Set()
          this.selectorsByLabel.set(l, set)
        }
        set.add(key)
        for (const id of this.labelIndex.get(l) ?? []) {
          const ident = this.identitiesById.get(id) as ResolvedIdentity
          if (peerSelects(peer, ident, this.context)) sel.ids.add(id)
        }
      }
    } else {
      this.scanSelectors.add(key)
      for (const ident of this.identitiesById.values()) {
        if (peerSelects(peer, ident, this.context)) sel.ids.add(ident.id)
      }
    }
    return key
  }

  /** Drop one reference to a peer's selection. */
  unregister(key: string): void {
    const s = this.selections.get(key)
    if (!s) return
    if (--s.refs > 0) return
    this.selections.delete(key)
    this.scanSelectors.delete(key)
    for (const l of s.index ?? []) this.selectorsByLabel.get(l)?.delete(key)
  }

  /** Identity ids a registered selector selects (empty for unknown keys and for the wildcard). */
  selected(key: string): ReadonlySet<number> {
    return this.selections.get(key)?.ids ?? EMPTY
  }

  /** Is a selector with this key registered? */
  isRegistered(key: string): boolean {
    return this.selections.has(key)
  }

  /** The peer behind a key. */
  peer(key: string): Peer | undefined {
    return this.selections.get(key)?.peer
  }

  /**
   * Apply identity additions and removals (ids or identity records); returns and publishes the
   * selection changes. An identity re-added with new labels is re-evaluated.
   */
  updateIdentities(
    added: Iterable<IdentityData>,
    removed: Iterable<number | IdentityData> = [],
  ): SelectionChange {
    const changes = new Map<string, { added: number[]; removed: number[] }>()
    const touched = new Set<number>()
    const note = (key: string, id: number, add: boolean) => {
      let c = changes.get(key)
      if (!c) {
        c = { added: [], removed: [] }
        changes.set(key, c)
      }
      ;(add ? c.added : c.removed).push(id)
      touched.add(id)
    }
    const drop = (id: number) => {
      const ident = this.identitiesById.get(id)
      if (!ident) return
      this.identitiesById.delete(id)
      for (const k of indexKeysOfIdentity(ident)) this.labelIndex.get(k)?.delete(id)
      for (const [key, s] of this.selections) {
        if (s.ids.delete(id)) note(key, id, false)
      }
    }
    for (const r of removed) {
      const id = typeof r === 'number' ? r : r.id
      if (this.identitiesById.has(id)) touched.add(id)
      drop(id)
    }
    for (const data of added) {
      touched.add(data.id)
      const prev = this.identitiesById.get(data.id)
      const ident = new ResolvedIdentity(data)
      if (prev) {
        // Re-evaluate from scratch: remove quietly, then add, and report only real changes.
        const before = new Set<string>()
        for (const [key, s] of this.selections) if (s.ids.has(data.id)) before.add(key)
        this.identitiesById.delete(data.id)
        for (const k of indexKeysOfIdentity(prev)) this.labelIndex.get(k)?.delete(data.id)
        for (const key of before) this.selections.get(key)?.ids.delete(data.id)
        const after = this.insert(ident)
        for (const key of after) if (!before.has(key)) note(key, data.id, true)
        for (const key of before) if (!after.has(key)) note(key, data.id, false)
      } else {
        for (const key of this.insert(ident)) note(key, data.id, true)
      }
    }
    const change: SelectionChange = { identities: touched, selectors: changes }
    if (touched.size) {
      this._version++
      for (const l of this.listeners) l(change)
    }
    return change
  }

  /** Replace the whole identity set with `all` (a diff is applied). */
  setIdentities(all: Iterable<IdentityData>): SelectionChange {
    const next = new Map<number, IdentityData>()
    for (const d of all) next.set(d.id, d)
    const removed: number[] = []
    for (const id of this.identitiesById.keys()) if (!next.has(id)) removed.push(id)
    const added: IdentityData[] = []
    for (const [id, d] of next) {
      const cur = this.identitiesById.get(id)
      if (!cur || !sameIdentity(cur.data, d)) added.push(d)
    }
    return this.updateIdentities(added, removed)
  }

  private insert(ident: ResolvedIdentity): Set<string> {
    this.identitiesById.set(ident.id, ident)
    const keys = indexKeysOfIdentity(ident)
    const selected = new Set<string>()
    const candidates = new Set<string>(this.scanSelectors)
    for (const k of keys) {
      let set = this.labelIndex.get(k)
      if (!set) {
        set = new Set()
        this.labelIndex.set(k, set)
      }
      set.add(ident.id)
      for (const s of this.selectorsByLabel.get(k) ?? []) candidates.add(s)
    }
    for (const key of candidates) {
      const s = this.selections.get(key) as Selection
      if (peerSelects(s.peer, ident, this.context)) {
        s.ids.add(ident.id)
        selected.add(key)
      }
    }
    return selected
  }

  /** Re-evaluate every selection of the given peer kinds (after DNS or service data changed). */
  reevaluate(kinds: ReadonlyArray<Peer['kind']>): SelectionChange {
    const changes = new Map<string, { added: number[]; removed: number[] }>()
    const touched = new Set<number>()
    for (const [key, s] of this.selections) {
      if (!kinds.includes(s.peer.kind) || s.peer.kind === 'wildcard') continue
      const next = new Set<number>()
      for (const ident of this.identitiesById.values()) {
        if (peerSelects(s.peer, ident, this.context)) next.add(ident.id)
      }
      const c = { added: [] as number[], removed: [] as number[] }
      for (const id of next) if (!s.ids.has(id)) c.added.push(id)
      for (const id of s.ids) if (!next.has(id)) c.removed.push(id)
      if (c.added.length || c.removed.length) {
        s.ids = next
        changes.set(key, c)
        for (const id of [...c.added, ...c.removed]) touched.add(id)
      }
    }
    const change: SelectionChange = { identities: touched, selectors: changes }
    if (touched.size) {
      this._version++
      for (const l of this.listeners) l(change)
    }
    return change
  }

  /**
   * Record DNS answers for toFQDNs: `name` resolved to `ips`. Identities for those IPs (CIDR
   * identities `cidr:<ip>/32` or `/128`) must exist or be added (see
   * {@link PolicyRepository.fqdnSelectors}); this re-evaluates the FQDN selections.
   */
  learnFqdn(name: string, ips: readonly string[]): SelectionChange {
    const n = name.toLowerCase().replace(/\.$/, '')
    for (const ip of ips) {
      const c = hostKey(ip)
      if (!c) continue
      let set = this.fqdnCache.byIp.get(c)
      if (!set) {
        set = new Set()
        this.fqdnCache.byIp.set(c, set)
      }
      set.add(n)
    }
    return this.reevaluate(['fqdn'])
  }

  /** Forget learned IPs of a name (all of them when `ips` is omitted). */
  forgetFqdn(name: string, ips?: readonly string[]): SelectionChange {
    const n = name.toLowerCase().replace(/\.$/, '')
    for (const [ip, names] of this.fqdnCache.byIp) {
      if (ips && !ips.some((x) => hostKey(x) === ip)) continue
      names.delete(n)
      if (names.size === 0) this.fqdnCache.byIp.delete(ip)
    }
    return this.reevaluate(['fqdn'])
  }

  /** Names learned for an IP. */
  namesForIp(ip: string): string[] {
    const k = hostKey(ip)
    return k ? [...(this.fqdnCache.byIp.get(k) ?? [])] : []
  }

  /** Set (or, with undefined, remove) the CIDRs of a CiliumCIDRGroup. */
  setCidrGroup(name: string, cidrs: readonly Prefix[] | undefined): SelectionChange {
    if (cidrs) this.cidrGroups.set(name, cidrs)
    else this.cidrGroups.delete(name)
    return this.reevaluate(['cidrGroup'])
  }

  /** Add or replace a service (for toServices). */
  updateService(svc: ServiceInfo): SelectionChange {
    this.services.set(`${svc.namespace}/${svc.name}`, svc)
    return this.reevaluate(['service'])
  }

  /** Remove a service. */
  deleteService(namespace: string, name: string): SelectionChange {
    this.services.delete(`${namespace}/${name}`)
    return this.reevaluate(['service'])
  }
}

const EMPTY: ReadonlySet<number> = new Set()

function hostKey(ip: string): string | undefined {
  return hostCidr(ip)?.cidr
}

function sameIdentity(a: IdentityData, b: IdentityData): boolean {
  if (a.labels.length !== b.labels.length) return false
  for (let i = 0; i < a.labels.length; i++) if (a.labels[i] !== b.labels[i]) return false
  return (
    JSON.stringify(a.ips ?? []) === JSON.stringify(b.ips ?? []) &&
    JSON.stringify(a.namedPorts ?? {}) === JSON.stringify(b.namedPorts ?? {})
  )
}
