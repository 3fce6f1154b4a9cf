/**
 * Per-endpoint evaluation: which rules select an endpoint, which rules match a flow (trace), and
 * the endpoint's map state (computed in full, then kept up to date per identity).
 */
import { PolicyError } from './errors'
import type { NamedPort, ResolvedIdentity } from './identity'
import { peerSelects } from './identity'
import type { LabelSet } from './labels'
import {
  diffMapState,
  MapState,
  type MapStateDiff,
  type MapStateEntry,
  type MapStateValue,
  mapStateKeyString,
  sameDatapathValue,
} from './mapstate'
import {
  type Direction,
  type L4Rule,
  type L7Parser,
  type Peer,
  type PeerRule,
  type PolicyRule,
  type PortSpec,
  peerKey,
} from './model'
import { portRangeToPrefixes, protocolNumber, protocolNumbers } from './ports'
import type { SelectorCache } from './selector-cache'

/** The endpoint a map state is computed for. */
export interface EndpointInfo {
  /** The endpoint's identity labels (`k8s:app=web`, `k8s:io.kubernetes.pod.namespace=default`). */
  labels: readonly string[]
  /** Container port names -> port (resolves ingress named ports). */
  namedPorts?: Readonly<Record<string, NamedPort>>
}

/** Options of map-state computation. */
export interface ComputeOptions {
  /**
   * Proxy port for entries that carry L7 rules. Default: none (proxyPort 0, l7Parser still set).
   */
  proxyPortFor?: (parser: L7Parser, direction: Direction) => number | undefined
  /**
   * Named ports of the whole cluster, for egress rules with named ports whose destination
   * identity does not carry its own `namedPorts` (Cilium resolves these cluster-wide).
   */
  namedPorts?: Readonly<Record<string, NamedPort | readonly NamedPort[]>>
  /** Cilium's policy enforcement mode: default (deny once selected), always, never. */
  enforcement?: 'default' | 'always' | 'never'
}

/** Does a rule's subject select this endpoint? nodeSelector rules select only the host. */
export function ruleSelects(rule: PolicyRule, labels: LabelSet): boolean {
  const isHost = labels.bySourceKey.has('reserved:host')
  if (rule.subject.kind === 'nodes' ? !isHost : isHost) return false
  return rule.subject.selector.matches(labels)
}

// ---------------------------------------------------------------- port matching

function namedPortProto(np: NamedPort): number {
  return protocolNumber(np.protocol ?? 'TCP') ?? 6
}

/** Resolve a port spec to concrete (protocol, port-range) pieces. */
function resolvePortSpec(
  spec: PortSpec,
  named: Readonly<Record<string, NamedPort | readonly NamedPort[]>> | undefined,
): Array<{ proto: number; from: number; to: number }> {
  if (spec.protocol === 'ICMP' || spec.protocol === 'ICMPv6') {
    return [{ proto: spec.protocol === 'ICMP' ? 1 : 58, from: spec.port, to: spec.port }]
  }
  const allowed = protocolNumbers(spec.protocol)
  if (spec.name !== undefined) {
    const np = named?.[spec.name]
    if (!np) return []
    const list: readonly NamedPort[] = Array.isArray(np) ? np : [np as NamedPort]
    return list
      .filter((p) => allowed.includes(namedPortProto(p)))
      .map((p) => ({ proto: namedPortProto(p), from: p.port, to: p.port }))
  }
  if (spec.port === 0) return allowed.map((proto) => ({ proto, from: 0, to: 65535 }))
  return allowed.map((proto) => ({ proto, from: spec.port, to: spec.endPort ?? spec.port }))
}

/** Does an L4 rule list (undefined = all) admit (proto, port)? Returns the matching L4 rule. */
function l4Admits(
  l4: L4Rule[] | undefined,
  proto: number,
  port: number,
  named: Readonly<Record<string, NamedPort>> | undefined,
): { ok: boolean; rule?: L4Rule } {
  if (!l4) return { ok: true }
  for (const r of l4) {
    for (const spec of r.ports) {
      for (const piece of resolvePortSpec(spec, named)) {
        if (piece.proto === proto && port >= piece.from && port <= piece.to)
          return { ok: true, rule: r }
      }
    }
  }
  return { ok: false }
}

// ---------------------------------------------------------------- flow evaluation (trace)

/** One rule that matched a flow. */
export interface RuleMatch {
  /** PeerRule id: `Kind/ns/name:specs[0].ingress[1]`. */
  id: string
  /** Policy ref `Kind/ns/name`. */
  policy: string
  path: string
  deny: boolean
  /** The peer of the rule that selected the other side. */
  peer: string
  /** The toPorts entry that matched, if the rule has ports. */
  ports?: string
  /** L7 rules attached to the matching toPorts entry. */
  l7?: L4Rule['l7']
}

/** Everything known about one direction of a flow at one endpoint. */
export interface DirectionEvaluation {
  selectedBy: PolicyRule[]
  defaultDeny: boolean
  allows: RuleMatch[]
  denies: RuleMatch[]
  /** Rules of this direction that did not match, and why (for explanations). */
  misses: RuleMiss[]
}

/** A rule that applies to the endpoint but did not match the flow. */
export interface RuleMiss {
  id: string
  deny: boolean
  /** `peer`: no L3 selector selects the other side; `port`: the peer matched, the port did not. */
  reason: 'peer' | 'port'
  /** What the rule would have needed. */
  detail: string
}

function describePeer(p: Peer): string {
  switch (p.kind) {
    case 'wildcard':
      return 'any peer'
    case 'endpoints':
      return `endpoints ${p.selector.key}`
    case 'entity':
      return `entity ${p.entity}`
    case 'cidr':
      return `cidr ${p.cidr.cidr}${p.except.length ? ` except ${p.except.map((c) => c.cidr).join(', ')}` : ''}`
    case 'nodes':
      return `nodes ${p.selector.key}`
    case 'cidrGroup':
      return `CIDR group ${p.name}${p.except.length ? ` except ${p.except.map((c) => c.cidr).join(', ')}` : ''}`
    case 'fqdn':
      return p.matchName !== undefined ? `fqdn ${p.matchName}` : `fqdn pattern ${p.matchPattern}`
    case 'service':
      return `service ${p.namespace}/${p.name ?? `{${p.selector?.key}}`}`
  }
}

/**
 * Evaluate the rules selecting `subject` in `direction` against a peer identity and (proto,
 * port). `destNamedPorts` are the destination's named ports (the subject's on ingress, the
 * peer's on egress).
 */
export function evaluateDirection(
  rules: readonly PolicyRule[],
  subject: LabelSet,
  direction: Direction,
  peer: ResolvedIdentity,
  proto: number,
  port: number,
  destNamedPorts: Readonly<Record<string, NamedPort>> | undefined,
  cache: SelectorCache,
  enforcement: ComputeOptions['enforcement'] = 'default',
): DirectionEvaluation {
  const selectedBy = enforcement === 'never' ? [] : rules.filter((r) => ruleSelects(r, subject))
  const defaultDeny = enforcement === 'always' || selectedBy.some((r) => r.defaultDeny[direction])
  const allows: RuleMatch[] = []
  const denies: RuleMatch[] = []
  const misses: RuleMiss[] = []
  for (const r of selectedBy) {
    for (const pr of direction === 'ingress' ? r.ingress : r.egress) {
      const matchedPeer = pr.peers.find((p) => peerSelects(p, peer, cache.context))
      if (!matchedPeer) {
        misses.push({
          id: pr.id,
          deny: pr.deny,
          reason: 'peer',
          detail: pr.peers.length
            ? pr.peers.map(describePeer).join(' or ')
            : 'no peer (empty rule)',
        })
        continue
      }
      const adm = l4Admits(pr.l4, proto, port, destNamedPorts)
      if (!adm.ok) {
        misses.push({ id: pr.id, deny: pr.deny, reason: 'port', detail: describePorts(pr.l4) })
        continue
      }
      const m: RuleMatch = {
        id: pr.id,
        policy: r.ref,
        path: pr.path,
        deny: pr.deny,
        peer: describePeer(matchedPeer),
      }
      if (adm.rule) {
        m.ports = adm.rule.path
        // The proxy sees TCP for HTTP/Kafka, TCP and UDP for DNS (as the map state redirects).
        const l7 = adm.rule.l7
        if (l7 && (proto === 6 || (l7.parser === 'dns' && proto === 17))) m.l7 = l7
      }
      ;(pr.deny ? denies : allows).push(m)
    }
  }
  return { selectedBy, defaultDeny, allows, denies, misses }
}

function describePorts(l4: L4Rule[] | undefined): string {
  if (!l4) return 'any port'
  return l4
    .flatMap((r) =>
      r.ports.map((p) => {
        const port =
          p.name ?? (p.port === 0 ? 'any' : p.endPort ? `${p.port}-${p.endPort}` : String(p.port))
        return `${port}/${p.protocol}`
      }),
    )
    .join(', ')
}

// ---------------------------------------------------------------- map state

const P24 = 0x1000000
const P16 = 0x10000

/** Encode an L4 key (protocol, prefix length, masked port) into one number. */
function l4code(proto: number, plen: number, port: number): number {
  return proto * P24 + plen * P16 + port
}
function l4proto(code: number): number {
  return Math.floor(code / P24)
}
function l4plen(code: number): number {
  return Math.floor(code / P16) % 256
}
function l4port(code: number): number {
  return code % P16
}

/** LPM length of an L4 code: 0 for protocol any, else 8 + port prefix length. */
function keyLength(code: number): number {
  return l4proto(code) === 0 ? 0 : 8 + l4plen(code)
}

/** Codes of every L4 key that covers `code`, itself included, broadest first. */
function ancestors(code: number): number[] {
  const proto = l4proto(code)
  if (proto === 0) return [0]
  const plen = l4plen(code)
  const port = l4port(code)
  const out = [0]
  for (let p = 0; p <= plen; p++) {
    const shift = 16 - p
    const masked = p === 0 ? 0 : ((port >>> shift) << shift) & 0xffff
    out.push(l4code(proto, p, masked))
  }
  return out
}

interface Agg {
  denyFrom: Set<string>
  allowFrom: Set<string>
  /** parser -> rule ids */
  parsers: Map<L7Parser, Set<string>>
  auth: number
}

type AggMap = Map<number, Agg>

function aggFor(m: AggMap, code: number): Agg {
  let a = m.get(code)
  if (!a) {
    a = { denyFrom: new Set(), allowFrom: new Set(), parsers: new Map(), auth: 0 }
    m.set(code, a)
  }
  return a
}

interface L4Piece {
  code: number
  parser?: L7Parser
}

interface Template {
  /** The policy the rule belongs to. */
  ref: string
  rule: PeerRule
  /** Peer keys in the selector cache; null = wildcard (identity 0). */
  peers: Array<string | null>
  /** Fixed L4 pieces. */
  pieces: L4Piece[]
  /** Egress named ports, resolved per destination identity. */
  named: Array<{ spec: PortSpec; parser?: L7Parser }>
}

interface Prepared {
  selectedRefs: Set<string>
  templates: Record<Direction, Template[]>
  wild: Record<Direction, AggMap>
  defaultDeny: Record<Direction, boolean>
  defaultDenyBy: Record<Direction, string[]>
}

function aggText(a: Agg): string {
  const parsers = [...a.parsers].map(([p, ids]) => `${p}=${[...ids].sort().join(',')}`)
  return `${[...a.denyFrom].sort().join(',')}|${[...a.allowFrom].sort().join(',')}|${parsers.sort().join(';')}|${a.auth}`
}

function sameAggMap(a: AggMap, b: AggMap): boolean {
  if (a.size !== b.size) return false
  for (const [code, x] of a) {
    const y = b.get(code)
    if (!y || aggText(x) !== aggText(y)) return false
  }
  return true
}

function piecesOf(
  spec: PortSpec,
  named: Readonly<Record<string, NamedPort | readonly NamedPort[]>> | undefined,
  parser: L7Parser | undefined,
): L4Piece[] {
  const out: L4Piece[] = []
  for (const piece of resolvePortSpec(spec, named)) {
    for (const pp of portRangeToPrefixes(piece.from, piece.to)) {
      // L7 redirects only make sense on TCP, except DNS (UDP and TCP).
      const p =
        parser && (piece.proto === 6 || (parser === 'dns' && piece.proto === 17))
          ? parser
          : undefined
      out.push(
        p
          ? { code: l4code(piece.proto, pp.prefixLen, pp.port), parser: p }
          : { code: l4code(piece.proto, pp.prefixLen, pp.port) },
      )
    }
  }
  return out
}

/**
 * Refs of the rules' policies that turn default deny on in `direction`, sorted: what a packet
 * no rule allows is denied by.
 */
export function defaultDenyRefs(rules: readonly PolicyRule[], direction: Direction): string[] {
  const refs = new Set<string>()
  for (const r of rules) if (r.defaultDeny[direction]) refs.add(r.ref)
  return [...refs].sort()
}

function sortedIds(s: Set<string>): string[] {
  return [...s].sort()
}

/**
 * The policy of one endpoint: its selected rules, its map state, and the state needed to update
 * the map state per identity when selections change.
 */
export class EndpointPolicy {
  mapState = new MapState()
  private wild: Record<Direction, AggMap> = { ingress: new Map(), egress: new Map() }
  selectedRefs = new Set<string>()
  private pending = new Set<number>()
  private unsubscribe: (() => void) | undefined
  revision = -1

  constructor(
    readonly endpoint: EndpointInfo & { labelSet: LabelSet },
    private readonly cache: SelectorCache,
    readonly options: ComputeOptions = {},
  ) {}

  /** Track selector cache changes so that {@link update} can recompute only touched identities. */
  track(): this {
    this.unsubscribe ??= this.cache.onChange((c) => {
      // Only identities entering or leaving a selection this endpoint uses can change its
      // entries; with egress named ports towards any peer, any identity can.
      if (this.namedWild) {
        for (const id of c.identities) this.pending.add(id)
        return
      }
      for (const [key, ch] of c.selectors) {
        if (!this.peerKeys.has(key)) continue
        for (const id of ch.added) this.pending.add(id)
        for (const id of ch.removed) this.pending.add(id)
      }
    })
    return this
  }

  /** Stop tracking selector cache changes. */
  dispose(): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
  }

  [Symbol.dispose](): void {
    this.dispose()
  }

  /** Build templates and wildcard contributions from the rules (no state change). */
  private prepare(rules: readonly PolicyRule[]): Prepared {
    const enforcement = this.options.enforcement ?? 'default'
    const selected =
      enforcement === 'never' ? [] : rules.filter((r) => ruleSelects(r, this.endpoint.labelSet))
    const out: Prepared = {
      selectedRefs: new Set(selected.map((r) => r.ref)),
      templates: { ingress: [], egress: [] },
      wild: { ingress: new Map(), egress: new Map() },
      defaultDeny: { ingress: false, egress: false },
      defaultDenyBy: { ingress: [], egress: [] },
    }
    for (const dir of ['ingress', 'egress'] as const) {
      const templates: Template[] = []
      const wild: AggMap = new Map()
      const dd = enforcement === 'always' || selected.some((r) => r.defaultDeny[dir])
      out.defaultDeny[dir] = dd
      out.defaultDenyBy[dir] = defaultDenyRefs(selected, dir)
      if (!dd) aggFor(wild, 0).allowFrom.add('<no default deny>')
      for (const r of selected) {
        for (const pr of dir === 'ingress' ? r.ingress : r.egress) {
          const t: Template = { ref: r.ref, rule: pr, peers: [], pieces: [], named: [] }
          // The repository keeps every rule's peers registered in the cache while the rule exists.
          for (const p of pr.peers) t.peers.push(p.kind === 'wildcard' ? null : peerKey(p))
          if (!pr.l4) t.pieces.push({ code: 0 })
          else {
            for (const l of pr.l4) {
              for (const spec of l.ports) {
                if (spec.name !== undefined && dir === 'egress')
                  t.named.push(l.l7 ? { spec, parser: l.l7.parser } : { spec })
                else t.pieces.push(...piecesOf(spec, this.endpoint.namedPorts, l.l7?.parser))
              }
            }
          }
          templates.push(t)
        }
      }
      for (const t of templates) if (t.peers.includes(null)) this.contribute(wild, t, undefined)
      out.templates[dir] = templates
      out.wild[dir] = wild
    }
    return out
  }

  private install(p: Prepared): void {
    this.selectedRefs = p.selectedRefs
    this.wild = p.wild
    this.all = [
      ...p.templates.ingress.map((t) => ({ dir: 'ingress' as const, t })),
      ...p.templates.egress.map((t) => ({ dir: 'egress' as const, t })),
    ]
    this.peerKeys = new Set()
    this.namedWild = false
    for (const { t } of this.all) {
      for (const k of t.peers) if (k !== null) this.peerKeys.add(k)
      if (t.named.length && t.peers.includes(null)) this.namedWild = true
    }
  }

  /** Selector keys the current templates use (identity changes elsewhere are irrelevant). */
  private peerKeys = new Set<string>()
  /** Some template has egress named ports towards any peer. */
  private namedWild = false

  /**
   * Recompute from `rules`; returns the diff against the previous map state. With
   * `changedRefs` (the policies that changed since the last computation), only the identities
   * those policies select are recomputed when that is provably enough (no wildcard peer, no
   * default-deny change); otherwise everything is.
   */
  compute(
    rules: readonly PolicyRule[],
    revision: number,
    wantDiff = true,
    changedRefs?: ReadonlySet<string>,
  ): MapStateDiff {
    const prev = this.mapState
    const prepared = this.prepare(rules)
    if (changedRefs && wantDiff) {
      const affected = this.incrementalScope(prepared, changedRefs)
      if (affected) {
        this.install(prepared)
        for (const id of this.pending) affected.add(id)
        this.pending.clear()
        this.revision = revision
        return this.recomputeIdentities(affected)
      }
    }
    this.install(prepared)
    const next = new MapState()
    this.pending.clear()
    for (const dir of ['ingress', 'egress'] as const) {
      next.defaultDeny[dir] = prepared.defaultDeny[dir]
      next.defaultDenyBy[dir] = prepared.defaultDenyBy[dir]
      for (const code of this.wild[dir].keys()) {
        const key = {
          identity: 0,
          direction: dir,
          protocol: l4proto(code),
          port: l4port(code),
          portPrefixLen: l4plen(code),
        }
        next.set(key, this.fold(dir, undefined, code))
      }
    }
    // Identity-specific entries. Identities selected by the same templates get the same
    // entries: compute them once per distinct membership and stamp them out per identity.
    const all = this.all
    const members = new Map<number, number[]>()
    const join = (id: number, ti: number) => {
      let m = members.get(id)
      if (!m) {
        m = []
        members.set(id, m)
      }
      if (m[m.length - 1] !== ti) m.push(ti)
    }
    all.forEach(({ t }, ti) => {
      for (const k of t.peers) if (k !== null) for (const id of this.cache.selected(k)) join(id, ti)
    })
    // Egress named ports towards any peer resolve per destination identity.
    all.forEach(({ t }, ti) => {
      if (!t.named.length || !t.peers.includes(null)) return
      for (const ident of this.cache.identities()) {
        if (!ident.namedPorts) continue
        const m = members.get(ident.id)
        if (!m?.includes(ti)) join(ident.id, ~ti)
      }
    })
    const shared = new Map<string, Array<[Direction, number, MapStateValue]>>()
    for (const [id, m] of members) {
      const ident = this.cache.identity(id)
      if (!ident) continue
      const perIdentity = m.some((ti) => ti < 0 || (all[ti] as { t: Template }).t.named.length > 0)
      let entries: Array<[Direction, number, MapStateValue]> | undefined
      if (perIdentity) entries = this.entriesFor(ident, m)
      else {
        const key = m.join(',')
        entries = shared.get(key)
        if (!entries) {
          entries = this.entriesFor(ident, m)
          shared.set(key, entries)
        }
      }
      this.emit(next, id, entries)
    }
    this.mapState = next
    this.revision = revision
    return wantDiff ? diffMapState(prev, next) : { upserts: [], deletes: [] }
  }

  /** Recompute the entries of identities whose selections changed since the last call. */
  update(): MapStateDiff {
    if (this.pending.size === 0) return { upserts: [], deletes: [] }
    const ids = new Set(this.pending)
    this.pending.clear()
    return this.recomputeIdentities(ids)
  }

  private recomputeIdentities(ids: Iterable<number>): MapStateDiff {
    const diff: MapStateDiff = { upserts: [], deletes: [] }
    for (const id of ids) {
      const old = new Map<string, MapStateEntry>()
      for (const e of this.mapState.deleteIdentity(id)) old.set(mapStateKeyString(e.key), e)
      this.writeIdentity(this.mapState, id)
      for (const e of this.mapState.identityEntries(id)) {
        const k = mapStateKeyString(e.key)
        const o = old.get(k)
        if (!o || !sameDatapathValue(o.value, e.value)) diff.upserts.push(e)
        old.delete(k)
      }
      for (const o of old.values()) diff.deletes.push(o.key)
    }
    return diff
  }

  /**
   * The identities to recompute when only `changedRefs` changed, or undefined when a full
   * recomputation is needed.
   */
  private incrementalScope(p: Prepared, changedRefs: ReadonlySet<string>): Set<number> | undefined {
    for (const dir of ['ingress', 'egress'] as const) {
      if (p.defaultDeny[dir] !== this.mapState.defaultDeny[dir]) return undefined
      if (p.defaultDenyBy[dir].join() !== this.mapState.defaultDenyBy[dir].join()) return undefined
      if (!sameAggMap(p.wild[dir], this.wild[dir])) return undefined
    }
    const changed = [
      ...this.all.map((x) => x.t).filter((t) => changedRefs.has(t.ref)),
      ...p.templates.ingress.filter((t) => changedRefs.has(t.ref)),
      ...p.templates.egress.filter((t) => changedRefs.has(t.ref)),
    ]
    const affected = new Set<number>()
    for (const t of changed) {
      if (t.named.length) return undefined
      for (const k of t.peers) {
        if (k === null || !this.cache.isRegistered(k)) return undefined
        for (const id of this.cache.selected(k)) affected.add(id)
      }
    }
    return affected
  }

  private contribute(
    target: AggMap,
    t: Template,
    ident: ResolvedIdentity | undefined,
    namedOnly = false,
  ): void {
    const pr = t.rule
    const add = (piece: L4Piece) => {
      const a = aggFor(target, piece.code)
      if (pr.deny) a.denyFrom.add(pr.id)
      else {
        a.allowFrom.add(pr.id)
        if (pr.authType > a.auth) a.auth = pr.authType
        if (piece.parser) {
          let s = a.parsers.get(piece.parser)
          if (!s) {
            s = new Set()
            a.parsers.set(piece.parser, s)
          }
          s.add(pr.id)
        }
      }
    }
    if (!namedOnly) for (const piece of t.pieces) add(piece)
    if (t.named.length) {
      const named = ident?.namedPorts ?? this.options.namedPorts
      for (const n of t.named) for (const piece of piecesOf(n.spec, named, n.parser)) add(piece)
    }
  }

  /** Templates of both directions, ingress first, in one index space (set by compute()). */
  private all: Array<{ dir: Direction; t: Template }> = []

  private allTemplates(): Array<{ dir: Direction; t: Template }> {
    return this.all
  }

  private writeIdentity(target: MapState, id: number): void {
    const ident = this.cache.identity(id)
    if (!ident) return
    const m: number[] = []
    this.allTemplates().forEach(({ t }, ti) => {
      if (t.peers.some((k) => k !== null && this.cache.selected(k).has(id))) m.push(ti)
      else if (t.named.length && ident.namedPorts && t.peers.includes(null)) m.push(~ti)
    })
    if (m.length) this.emit(target, id, this.entriesFor(ident, m))
  }

  private emit(
    target: MapState,
    id: number,
    entries: Array<[Direction, number, MapStateValue]>,
  ): void {
    for (const [dir, code, v] of entries) target.put(id, dir, code, v)
  }

  /**
   * The entries of one identity given the templates that select it (`~i` = only the egress
   * named ports of wildcard template i apply).
   */
  private entriesFor(
    ident: ResolvedIdentity,
    members: readonly number[],
  ): Array<[Direction, number, MapStateValue]> {
    const all = this.allTemplates()
    const out: Array<[Direction, number, MapStateValue]> = []
    for (const dir of ['ingress', 'egress'] as const) {
      const mine: AggMap = new Map()
      for (const ti of members) {
        const { dir: d, t } = all[ti < 0 ? ~ti : ti] as { dir: Direction; t: Template }
        if (d !== dir) continue
        this.contribute(mine, t, ident, ti < 0)
      }
      if (mine.size === 0) continue
      const values = new Map<number, MapStateValue>()
      for (const code of mine.keys()) {
        const v = this.fold(dir, mine, code)
        values.set(code, v)
        out.push([dir, code, v])
      }
      // Closure: where a wildcard key is more specific than this identity's best key, add the
      // intersection if the outcome differs from what either lookup order would otherwise pick:
      // the longest match (the wildcard's value) or identity-first (the identity's broader key).
      // Broadest wildcard keys first, so nested intersections see the ones already added.
      const wcodes = [...this.wild[dir].keys()].sort((x, y) => keyLength(x) - keyLength(y))
      for (const wcode of wcodes) {
        if (values.has(wcode)) continue
        const anc = ancestors(wcode)
        let broader: MapStateValue | undefined
        for (let i = anc.length - 2; i >= 0 && !broader; i--) broader = values.get(anc[i] as number)
        if (!broader) continue
        const v = this.fold(dir, mine, wcode)
        if (
          !sameDatapathValue(v, this.fold(dir, undefined, wcode)) ||
          !sameDatapathValue(v, broader)
        ) {
          values.set(wcode, v)
          out.push([dir, wcode, v])
        }
      }
    }
    return out
  }

  private fold(dir: Direction, mine: AggMap | undefined, code: number): MapStateValue {
    const wild = this.wild[dir]
    const aggs: Agg[] = []
    for (const a of ancestors(code)) {
      const w = wild.get(a)
      if (w) aggs.push(w)
      const m = mine?.get(a)
      if (m) aggs.push(m)
    }
    const denyFrom = new Set<string>()
    for (const a of aggs) for (const d of a.denyFrom) denyFrom.add(d)
    if (denyFrom.size)
      return { deny: true, proxyPort: 0, authType: 0, derivedFrom: sortedIds(denyFrom) }
    const allowFrom = new Set<string>()
    const parsers = new Map<L7Parser, Set<string>>()
    let auth = 0
    for (const a of aggs) {
      for (const d of a.allowFrom) allowFrom.add(d)
      for (const [p, s] of a.parsers) {
        let t = parsers.get(p)
        if (!t) {
          t = new Set()
          parsers.set(p, t)
        }
        for (const x of s) t.add(x)
      }
      if (a.auth > auth) auth = a.auth
    }
    if (parsers.size > 1) {
      const desc = [...parsers].map(([p, s]) => `${p} (${[...s].join(', ')})`).join(' and ')
      throw new PolicyError(
        'L7_PARSER_CONFLICT',
        `conflicting L7 parsers on ${dir} port ${l4port(code)}/${l4proto(code)}: ${desc}`,
        {
          expected: 'one L7 parser per port of an endpoint',
        },
      )
    }
    const v: MapStateValue = {
      deny: false,
      proxyPort: 0,
      authType: auth,
      derivedFrom: sortedIds(allowFrom),
    }
    const parser = parsers.keys().next().value
    if (parser) {
      v.l7Parser = parser
      v.proxyPort = this.options.proxyPortFor?.(parser, dir) ?? 0
    }
    return v
  }
}
