/**
 * Identities as plain data (no dependency on @membrane/identity) and how peers select them.
 */
import {
  POD_NAMESPACE_LABEL,
  type Prefix,
  prefixContains,
  prefixOverlaps,
  type ReservedIdentityName,
  reservedIdentityByName,
  reservedIdentityName,
} from '@membrane/types'
import { hostCidr, parseCidr } from './cidr'
import { matchFqdn } from './l7/dns'
import { LabelSet, parseLabel, type Selector } from './labels'
import type { Peer } from './model'

/** A reserved identity name (`host`, `world`, ...: the key of its `reserved:` label). */
export type ReservedName = ReservedIdentityName

/** A named port of an endpoint (container port name -> port/protocol). */
export interface NamedPort {
  port: number
  /** TCP (default), UDP or SCTP. */
  protocol?: string
}

/**
 * A security identity as the identity package hands it over: the numeric id and its labels in
 * `source:key=value` form. `ips` (optional) are the pod IPs behind the identity, used only by
 * NetworkPolicy ipBlock rules (which match pod IPs too); `namedPorts` (optional) resolve egress
 * named ports per destination identity.
 */
export interface IdentityData {
  id: number
  labels: readonly string[]
  ips?: readonly string[]
  namedPorts?: Readonly<Record<string, NamedPort>>
}

/** An identity prepared for selector matching. */
export class ResolvedIdentity {
  readonly id: number
  readonly labels: LabelSet
  readonly reserved: ReadonlySet<ReservedName>
  /** The most specific `cidr:` label, if any (CIDR identities). */
  readonly cidr: Prefix | undefined
  /** Host prefixes of `ips`. */
  readonly ips: readonly Prefix[]
  readonly namedPorts: Readonly<Record<string, NamedPort>> | undefined
  readonly data: IdentityData

  constructor(data: IdentityData) {
    this.data = data
    this.id = data.id
    this.labels = new LabelSet(data.labels)
    const reserved = new Set<ReservedName>()
    let cidr: Prefix | undefined
    for (const l of this.labels.parsed) {
      if (l.source === 'reserved' && reservedIdentityByName(l.key) !== undefined)
        reserved.add(l.key as ReservedName)
      if (l.source === 'cidr') {
        const c = parseCidr(l.key)
        if (c && (!cidr || c.length > cidr.length)) cidr = c
      }
    }
    const byId = reservedIdentityName(data.id)
    if (byId) reserved.add(byId)
    this.reserved = reserved
    this.cidr = cidr
    this.ips = (data.ips ?? []).map(hostCidr).filter((c): c is Prefix => c !== undefined)
    this.namedPorts = data.namedPorts
  }

  /** Outside the cluster: world identities and CIDR identities. */
  get isWorld(): boolean {
    return (
      this.cidr !== undefined ||
      this.reserved.has('world') ||
      this.reserved.has('world-ipv4') ||
      this.reserved.has('world-ipv6')
    )
  }

  /** Namespace of a pod identity. */
  get namespace(): string | undefined {
    return this.labels.bySourceKey.get(`k8s:${POD_NAMESPACE_LABEL}`)
  }
}

/** Learned DNS data for toFQDNs: name -> IPs. */
export interface FqdnLookup {
  namesForIp(ip: Prefix): Iterable<string>
}

/** A Kubernetes service for toServices. */
export interface ServiceInfo {
  namespace: string
  name: string
  /** The service's own labels (matched by k8sServiceSelector). */
  labels?: Readonly<Record<string, string>>
  /** The service's pod selector: its backends are the pods it selects in its namespace. */
  selector?: Readonly<Record<string, string>>
  /** Backend IPs of a service without selector (e.g. an external endpoint). */
  backendIps?: readonly string[]
}

/** Everything a peer predicate may consult besides the identity itself. */
export interface PeerContext {
  fqdn: FqdnLookup
  services: ReadonlyMap<string, ServiceInfo>
  /** CiliumCIDRGroup name -> CIDRs. */
  cidrGroups: ReadonlyMap<string, readonly Prefix[]>
}

function cidrPeerMatches(peer: Extract<Peer, { kind: 'cidr' }>, id: ResolvedIdentity): boolean {
  const outside = (c: Prefix) => !peer.except.some((e) => prefixOverlaps(e, c))
  if (id.cidr) return prefixContains(peer.cidr, id.cidr) && outside(id.cidr)
  if (peer.cidr.length === 0 && peer.except.length === 0) {
    if (id.reserved.has('world')) return true
    if (peer.cidr.family === 4 && id.reserved.has('world-ipv4')) return true
    if (peer.cidr.family === 6 && id.reserved.has('world-ipv6')) return true
  }
  if (peer.matchPodIps) return id.ips.some((ip) => prefixContains(peer.cidr, ip) && outside(ip))
  return false
}

function serviceSelects(svc: ServiceInfo, id: ResolvedIdentity): boolean {
  if (svc.selector) {
    if (id.namespace !== svc.namespace) return false
    return Object.entries(svc.selector).every(([k, v]) => id.labels.values(k).includes(v))
  }
  const backends = (svc.backendIps ?? []).map(hostCidr)
  const mine = id.cidr ? [id.cidr] : id.ips
  return backends.some(
    (b) => b !== undefined && mine.some((m) => prefixContains(m, b) && prefixContains(b, m)),
  )
}

function labelsMatch(sel: Selector, labels: Readonly<Record<string, string>> | undefined): boolean {
  const set = new LabelSet(Object.entries(labels ?? {}).map(([k, v]) => `k8s:${k}=${v}`))
  return sel.matches(set)
}

/**
 * Does `peer` select identity `id`? The single predicate behind both the selector cache (map
 * state) and trace(), so the two cannot disagree. `wildcard` selects every identity.
 */
export function peerSelects(peer: Peer, id: ResolvedIdentity, ctx: PeerContext): boolean {
  switch (peer.kind) {
    case 'wildcard':
      return true
    case 'endpoints':
      return peer.selector.matches(id.labels)
    case 'entity':
      switch (peer.entity) {
        case 'world':
          return id.isWorld
        case 'world-ipv4':
          return id.reserved.has('world-ipv4') || id.cidr?.family === 4
        case 'world-ipv6':
          return id.reserved.has('world-ipv6') || id.cidr?.family === 6
        case 'cluster':
          return !id.isWorld
        case 'none':
          return false
        default:
          return id.reserved.has(peer.entity)
      }
    case 'nodes':
      return (
        (id.reserved.has('host') || id.reserved.has('remote-node')) &&
        peer.selector.matches(id.labels)
      )
    case 'cidr':
      return cidrPeerMatches(peer, id)
    case 'cidrGroup':
      return (ctx.cidrGroups.get(peer.name) ?? []).some((cidr) =>
        cidrPeerMatches({ kind: 'cidr', cidr, except: peer.except, matchPodIps: false }, id),
      )
    case 'fqdn': {
      const ips = id.cidr ? [id.cidr] : []
      for (const ip of ips) {
        if (ip.length !== (ip.family === 4 ? 32 : 128)) continue
        for (const name of ctx.fqdn.namesForIp(ip)) if (matchFqdn(peer, name)) return true
      }
      return false
    }
    case 'service': {
      if (peer.name !== undefined) {
        const svc = ctx.services.get(`${peer.namespace}/${peer.name}`)
        return svc !== undefined && serviceSelects(svc, id)
      }
      for (const svc of ctx.services.values()) {
        if (svc.namespace !== peer.namespace) continue
        if (peer.selector && !labelsMatch(peer.selector, svc.labels)) continue
        if (serviceSelects(svc, id)) return true
      }
      return false
    }
  }
}

/** Labels that make `peer` a candidate in the label index (an `In` requirement), if any. */
export function indexLabelsOf(peer: Peer): string[] | undefined {
  if (peer.kind !== 'endpoints') return undefined
  let best: string[] | undefined
  for (const r of peer.selector.requirements) {
    if (r.operator !== 'In') continue
    const l = parseLabel(r.key)
    const keys = r.values.map((v) => `${l.source}:${l.key}=${v}`)
    if (!best || keys.length < best.length) best = keys
  }
  return best
}

/** Index keys of an identity's labels: `source:key=value` and `any:key=value`. */
export function indexKeysOfIdentity(id: ResolvedIdentity): string[] {
  const out: string[] = []
  for (const l of id.labels.parsed) {
    out.push(`${l.source}:${l.key}=${l.value}`, `any:${l.key}=${l.value}`)
  }
  return out
}
