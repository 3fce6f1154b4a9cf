import {
  NAMESPACE_LABELS_PREFIX,
  POD_NAMESPACE_LABEL,
  SERVICE_ACCOUNT_LABEL,
} from '@membrane/types'
import { l7Attribution, refsOf } from './attribution'
/**
 * PolicyRepository: holds rules, resolves selectors, computes map state, traces flows.
 */
import { hostCidr, subtractCidrs } from './cidr'
import {
  type ComputeOptions,
  type DirectionEvaluation,
  defaultDenyRefs,
  type EndpointInfo,
  EndpointPolicy,
  evaluateDirection,
  type RuleMatch,
  type RuleMiss,
  ruleSelects,
} from './compile'
import { PolicyError } from './errors'
import {
  type IdentityData,
  type NamedPort,
  type ReservedName,
  ResolvedIdentity,
  type ServiceInfo,
} from './identity'
import { type DnsQuery, evaluateDns, matchFqdn } from './l7/dns'
import { evaluateHttp, type HttpRequest, httpRequestView } from './l7/http'
import { evaluateKafka, type KafkaRequest, kafkaApiKey } from './l7/kafka'
import { LabelSet } from './labels'
import {
  composeMapStateDiffs,
  diffMapState,
  type MapState,
  type MapStateDiff,
  mergeAuditMapState,
} from './mapstate'
import type { Direction, L7Parser, L7Rules, PolicyDocument, PolicyRule } from './model'
import { peerKey } from './model'
import { parsePolicyDocuments } from './parse'
import { protocolNumber } from './ports'
import { type SelectionChange, SelectorCache } from './selector-cache'

/** One side of a traced flow. */
export interface TraceEndpoint {
  /** Pod namespace. With no namespace, no labels and no reserved identity: outside the cluster. */
  namespace?: string
  /** Pod labels (without source; they become `k8s:key=value`). */
  labels?: Readonly<Record<string, string>>
  /** Labels of the pod's namespace; `kubernetes.io/metadata.name` is added when missing. */
  namespaceLabels?: Readonly<Record<string, string>>
  serviceAccount?: string
  ips?: readonly string[]
  /** Container port names of this endpoint (used when it is the destination). */
  namedPorts?: Readonly<Record<string, NamedPort>>
  /** A reserved identity instead of a pod: host, remote-node, kube-apiserver, health, ... */
  reserved?: ReservedName
  /** Exact identity labels (overrides namespace/labels/reserved). */
  identityLabels?: readonly string[]
}

/** The L7 request of a trace, for one of the three parsers. */
type L7Request =
  | { parser: 'http'; http: HttpRequest }
  | { parser: 'kafka'; kafka: KafkaRequest }
  | { parser: 'dns'; dns: DnsQuery }

/** trace() input. */
export interface TraceInput {
  source: TraceEndpoint
  destination: TraceEndpoint
  /** Destination port (ICMP: the ICMP type). */
  port: number
  /** TCP (default), UDP, SCTP, ICMP, ICMPv6 or a protocol number. */
  protocol?: string | number
  http?: HttpRequest
  kafka?: KafkaRequest
  dns?: DnsQuery
}

/** L7 part of a direction's verdict. */
export interface L7Trace {
  parser: L7Parser
  /** Some allowing rule had no L7 rules on this port: every request is allowed. */
  wildcard: boolean
  /** allowed/denied when a request was given, otherwise not-evaluated. */
  verdict: 'allowed' | 'denied' | 'not-evaluated'
  /** Rule id and index of the L7 rule that allowed the request. */
  matched?: { id: string; index: number }
  /** The L7 rules in force, per allowing rule. */
  rules: Array<{ id: string; rules: L7Rules }>
}

/** The verdict of one direction (the source's egress or the destination's ingress). */
export interface DirectionTrace {
  verdict: 'allowed' | 'denied'
  reason:
    | 'not-enforced-outside-cluster'
    | 'no-default-deny'
    | 'allowed-by-rule'
    | 'denied-by-deny-rule'
    | 'default-deny'
    | 'denied-at-l7'
  /** Policies (refs) whose rules select the endpoint. */
  selectedBy: string[]
  defaultDeny: boolean
  allowedBy: RuleMatch[]
  deniedBy: RuleMatch[]
  /** Rules of this direction that did not match the flow, and why. */
  notMatched: RuleMiss[]
  l7?: L7Trace
  /**
   * The policies (refs) that decided the verdict, as the datapath's flows name them: the
   * allowing rules' policies (an L7 verdict: the matching L7 rule's, or on a denial every
   * policy with L7 rules on that port), the denying rules', or, in default deny, the policies
   * that turned it on. With `audit`, what would have denied it.
   */
  policies: string[]
  /**
   * Allowed by the enforcing policies but denied by an audit policy: the flow is reported as
   * AUDIT and passes (`verdict` is 'allowed'; `reason` and `policies` are the audit denial's).
   */
  audit?: boolean
  /** Human-readable explanation. */
  explanation: string
}

/** trace() output. */
export interface TraceResult {
  verdict: 'allowed' | 'denied'
  egress: DirectionTrace
  ingress: DirectionTrace
  /** Identity labels used for each side. */
  sourceLabels: string[]
  destinationLabels: string[]
}

/** Identity labels of a trace endpoint, Cilium-style. */
export function traceEndpointLabels(e: TraceEndpoint): string[] {
  if (e.identityLabels) return [...e.identityLabels]
  const labels = Object.entries(e.labels ?? {}).map(([k, v]) => `k8s:${k}=${v}`)
  if (e.reserved) {
    const out = [`reserved:${e.reserved}`, ...labels]
    if (e.reserved === 'world' || e.reserved === 'world-ipv4' || e.reserved === 'world-ipv6')
      out.push(...cidrLabels(e.ips))
    return out
  }
  if (e.namespace === undefined && labels.length === 0) {
    return ['reserved:world', ...cidrLabels(e.ips)]
  }
  const ns = e.namespace ?? 'default'
  labels.push(`k8s:${POD_NAMESPACE_LABEL}=${ns}`)
  const nsLabels: Record<string, string> = {
    'kubernetes.io/metadata.name': ns,
    ...(e.namespaceLabels ?? {}),
  }
  for (const [k, v] of Object.entries(nsLabels))
    labels.push(`k8s:${NAMESPACE_LABELS_PREFIX}${k}=${v}`)
  if (e.serviceAccount) labels.push(`k8s:${SERVICE_ACCOUNT_LABEL}=${e.serviceAccount}`)
  return labels
}

function cidrLabels(ips: readonly string[] | undefined): string[] {
  const ip = ips?.[0]
  if (ip === undefined) return []
  const c = hostCidr(ip)
  return c ? [`cidr:${c.cidr}`] : []
}

function isClusterEndpoint(labels: LabelSet): boolean {
  return (
    labels.bySourceKey.has(`k8s:${POD_NAMESPACE_LABEL}`) || labels.bySourceKey.has('reserved:host')
  )
}

/** What {@link PolicyRepository.learnFqdn} did. */
export interface FqdnLearnResult {
  /** Selection changes (identities now selected by FQDN selectors). */
  change: SelectionChange
  /** The toFQDNs selectors that match the name. */
  selectors: Array<{ matchName?: string; matchPattern?: string; rules: string[] }>
  /**
   * IPs that matching selectors need an identity for, with the labels to allocate it with
   * (`cidr:<ip>/32`, `reserved:world`). Allocate them (identity package), then call
   * {@link PolicyRepository.updateIdentities}: the FQDN selectors pick them up.
   */
  needIdentities: Array<{ ip: string; labels: string[] }>
}

/** Options of {@link PolicyRepository}. */
export interface RepositoryOptions {
  /** Default options for map-state computation. */
  compute?: ComputeOptions
  /** Share a selector cache (e.g. across repositories); default: a new one. */
  selectorCache?: SelectorCache
  /**
   * Namespaces whose policies are all in audit mode (as if annotated
   * `policy.membrane.io/audit: "true"`). Default: none.
   */
  auditNamespaces?: readonly string[]
}

/** Identifies a policy to delete: its ref string, a document, or kind/namespace/name. */
export type PolicyRef = string | PolicyDocument | { kind: string; namespace?: string; name: string }

/** An L7 lookup for the proxy. */
export interface L7Policy {
  parser: L7Parser
  /** Some allowing rule has no L7 rules for this peer and port: allow every request. */
  wildcard: boolean
  rules: Array<{ id: string; rules: L7Rules }>
  /** Refs of the policies whose rules allow this peer and port at L4 (sorted). */
  policies?: string[]
}

/**
 * Holds policy documents and compiles them. Every mutation bumps `revision`.
 *
 * @example
 * const repo = new PolicyRepository()
 * repo.upsert(parsePolicyDocuments(yaml))
 * repo.trace({ source: {...}, destination: {...}, port: 80, protocol: 'TCP' }).verdict
 */
export class PolicyRepository {
  readonly selectorCache: SelectorCache
  private readonly docs = new Map<string, PolicyDocument>()
  private ruleList: PolicyRule[] = []
  /** Selector keys released by the change being made / by the last committed change. */
  private releasing: string[] = []
  private deferred: string[] = []
  /** Rules whose subject is pinned to one namespace, by namespace; the rest in `unscoped`. */
  private rulesByNs = new Map<string, PolicyRule[]>()
  private unscoped: PolicyRule[] = []
  private readonly changeLog: Array<{ revision: number; refs: Set<string> }> = []
  private _revision = 0
  readonly options: RepositoryOptions

  private readonly auditNamespaces: ReadonlySet<string>

  constructor(options: RepositoryOptions = {}) {
    this.options = options
    this.selectorCache = options.selectorCache ?? new SelectorCache()
    this.auditNamespaces = new Set(options.auditNamespaces ?? [])
  }

  /** Is the rule in audit mode (its policy's annotation, or its namespace is audited)? */
  isAudit(rule: PolicyRule): boolean {
    return (
      rule.audit === true ||
      (rule.namespace !== undefined && this.auditNamespaces.has(rule.namespace))
    )
  }

  /** The rules that are enforced (not in audit mode). */
  enforcingRules(rules: readonly PolicyRule[]): readonly PolicyRule[] {
    return rules.some((r) => this.isAudit(r)) ? rules.filter((r) => !this.isAudit(r)) : rules
  }

  /** Current revision (0 when empty; +1 per upsert/delete). */
  get revision(): number {
    return this._revision
  }

  /**
   * Changes whenever any answer may change: a policy change (revision) or a selection change
   * (identities, DNS answers, services). Use it to cache L7 lookups.
   */
  get generation(): number {
    return this._revision + this.selectorCache.version
  }

  /** Every rule, in insertion order. */
  get rules(): readonly PolicyRule[] {
    return this.ruleList
  }

  /** Every policy document. */
  get policies(): PolicyDocument[] {
    return [...this.docs.values()]
  }

  /**
   * Add or replace policies (by kind/namespace/name). Accepts parsed documents or the text to
   * parse. All or nothing: a bad document rejects the batch. Returns the new revision.
   */
  upsert(input: PolicyDocument | readonly PolicyDocument[] | string): number {
    const docs =
      typeof input === 'string'
        ? parsePolicyDocuments(input)
        : Array.isArray(input)
          ? input
          : [input as PolicyDocument]
    const seen = new Set<string>()
    for (const d of docs) {
      if (seen.has(d.ref))
        throw new PolicyError('DUPLICATE_POLICY', `${d.ref} appears twice in one upsert`, {
          documentIndex: d.index,
          document: d.ref,
        })
      seen.add(d.ref)
    }
    for (const d of docs) {
      const old = this.docs.get(d.ref)
      if (old) this.release(old)
      if (d.cidrGroup) this.selectorCache.setCidrGroup(d.name, d.cidrGroup.cidrs)
      for (const r of d.rules)
        for (const pr of [...r.ingress, ...r.egress])
          for (const p of pr.peers) this.selectorCache.register(p)
      this.docs.set(d.ref, d)
    }
    return this.commit(seen)
  }

  /** Remove policies; unknown refs are ignored. Returns the new revision. */
  delete(refs: PolicyRef | readonly PolicyRef[]): number {
    const list = Array.isArray(refs) ? refs : [refs]
    const changed = new Set<string>()
    for (const r of list as PolicyRef[]) {
      const ref =
        typeof r === 'string'
          ? r
          : 'ref' in r
            ? r.ref
            : r.namespace !== undefined && r.kind !== 'CiliumClusterwideNetworkPolicy'
              ? `${r.kind}/${r.namespace}/${r.name}`
              : `${r.kind}/${r.name}`
      const d = this.docs.get(ref)
      if (!d) continue
      this.release(d)
      this.docs.delete(ref)
      if (d.cidrGroup) this.selectorCache.setCidrGroup(d.name, undefined)
      changed.add(ref)
    }
    return this.commit(changed)
  }

  /**
   * Drop a document's selectors. They stay registered until the next change is committed, so
   * tracked endpoints refreshed in between can still see which identities they selected.
   */
  private release(d: PolicyDocument): void {
    for (const r of d.rules)
      for (const pr of [...r.ingress, ...r.egress])
        for (const p of pr.peers) this.releasing.push(peerKey(p))
  }

  private commit(refs: Set<string>): number {
    for (const k of this.deferred) this.selectorCache.unregister(k)
    this.deferred = this.releasing
    this.releasing = []
    this._revision++
    this.ruleList = [...this.docs.values()].flatMap((d) => d.rules)
    this.rulesByNs = new Map()
    this.unscoped = []
    for (const r of this.ruleList) {
      const ns = subjectNamespace(r)
      if (ns === undefined) this.unscoped.push(r)
      else {
        let list = this.rulesByNs.get(ns)
        if (!list) {
          list = []
          this.rulesByNs.set(ns, list)
        }
        list.push(r)
      }
    }
    this.changeLog.push({ revision: this._revision, refs })
    if (this.changeLog.length > 1000) this.changeLog.splice(0, this.changeLog.length - 1000)
    return this._revision
  }

  /** Policy refs changed after `revision` (undefined when the log no longer reaches back). */
  changedSince(revision: number): Set<string> | undefined {
    const first = this.changeLog[0]
    if (first && first.revision > revision + 1) return undefined
    const out = new Set<string>()
    for (let i = this.changeLog.length - 1; i >= 0; i--) {
      const c = this.changeLog[i] as { revision: number; refs: Set<string> }
      if (c.revision <= revision) break
      for (const r of c.refs) out.add(r)
    }
    return out
  }

  /** Rules that may select an endpoint with these labels (its namespace's and the unscoped). */
  candidateRules(labels: LabelSet): readonly PolicyRule[] {
    const ns = labels.bySourceKey.get(`k8s:${POD_NAMESPACE_LABEL}`)
    const scoped = ns === undefined ? undefined : this.rulesByNs.get(ns)
    if (!scoped) return this.unscoped
    if (this.unscoped.length === 0) return scoped
    return [...scoped, ...this.unscoped]
  }

  /** The rules of one policy (by ref). */
  rulesOf(ref: string): readonly PolicyRule[] {
    return this.docs.get(ref)?.rules ?? []
  }

  /** Rules whose subject selects an endpoint with these labels. */
  rulesSelecting(labels: readonly string[]): PolicyRule[] {
    const set = new LabelSet(labels)
    return this.candidateRules(set).filter((r) => ruleSelects(r, set))
  }

  /** Feed identity additions/removals into the selector cache. */
  updateIdentities(
    added: Iterable<IdentityData>,
    removed: Iterable<number | IdentityData> = [],
  ): SelectionChange {
    return this.selectorCache.updateIdentities(added, removed)
  }

  /**
   * Compute the map state of one endpoint. When `identities` is given it becomes the selector
   * cache's identity set (applied as a diff); otherwise the cache's current identities are used.
   */
  computeMapState(
    endpoint: EndpointInfo,
    identities?: Iterable<IdentityData>,
    options?: ComputeOptions,
  ): MapState {
    if (identities) this.selectorCache.setIdentities(identities)
    const ep = new EndpointPolicy(
      { ...endpoint, labelSet: new LabelSet(endpoint.labels) },
      this.selectorCache,
      { ...this.options.compute, ...options },
    )
    const all = this.candidateRules(ep.endpoint.labelSet)
    ep.compute(all, this._revision, false)
    if (!this.auditSelects(ep.selectedRefs)) return ep.mapState
    const enforcing = new EndpointPolicy(ep.endpoint, this.selectorCache, ep.options)
    enforcing.compute(this.enforcingRules(all), this._revision, false)
    return mergeAuditMapState(enforcing.mapState, ep.mapState)
  }

  /** Is any of these policies (refs) in audit mode? */
  auditSelects(refs: Iterable<string>): boolean {
    for (const ref of refs) if (this.rulesOf(ref).some((r) => this.isAudit(r))) return true
    return false
  }

  /**
   * A tracked endpoint policy: compute once, then call `refresh()` after rule or identity changes
   * to get only the map-state diff (rule changes recompute this endpoint only if a changed
   * policy selects it; identity changes recompute only the touched identities).
   */
  endpointPolicy(endpoint: EndpointInfo, options?: ComputeOptions): TrackedEndpointPolicy {
    return new TrackedEndpointPolicy(this, endpoint, { ...this.options.compute, ...options })
  }

  /**
   * The L7 rules the proxy must apply for traffic of `peerIdentity` on (protocol, port) at this
   * endpoint in `direction`; undefined when no L7 rule applies (no redirect).
   */
  l7Rules(
    endpoint: EndpointInfo,
    query: {
      direction: Direction
      peerIdentity: number | IdentityData
      port: number
      protocol?: string | number
      peerNamedPorts?: Readonly<Record<string, NamedPort>>
    },
  ): L7Policy | undefined {
    const peer =
      typeof query.peerIdentity === 'number'
        ? // An identity the cache does not know still matches wildcard rules (and reserved
          // identities are recognised by number): never fail open by returning "no rules".
          (this.selectorCache.identity(query.peerIdentity) ??
          new ResolvedIdentity({ id: query.peerIdentity, labels: [] }))
        : new ResolvedIdentity(query.peerIdentity)
    const proto = protocolNumber(query.protocol ?? 'TCP')
    if (proto === undefined)
      throw new PolicyError('INVALID_INPUT', 'unknown protocol', {
        expected: 'TCP, UDP, SCTP, ICMP, ICMPv6 or a number',
        got: query.protocol,
      })
    const subject = new LabelSet(endpoint.labels)
    const dest =
      query.direction === 'ingress'
        ? endpoint.namedPorts
        : (query.peerNamedPorts ?? peer.namedPorts)
    const ev = evaluateDirection(
      this.enforcingRules(this.candidateRules(subject)),
      subject,
      query.direction,
      peer,
      proto,
      query.port,
      dest,
      this.selectorCache,
      this.options.compute?.enforcement,
    )
    if (ev.denies.length) return undefined
    return l7Of(ev)
  }

  /** Every toFQDNs selector in force, for the DNS proxy (names to watch). */
  fqdnSelectors(): Array<{ matchName?: string; matchPattern?: string; rules: string[] }> {
    const out = new Map<string, { matchName?: string; matchPattern?: string; rules: string[] }>()
    for (const r of this.ruleList) {
      for (const pr of r.egress) {
        for (const p of pr.peers) {
          if (p.kind !== 'fqdn') continue
          const k = peerKey(p)
          let e = out.get(k)
          if (!e) {
            e =
              p.matchName !== undefined
                ? { matchName: p.matchName, rules: [] }
                : { matchPattern: p.matchPattern as string, rules: [] }
            out.set(k, e)
          }
          e.rules.push(pr.id)
        }
      }
    }
    return [...out.values()]
  }

  /**
   * The DNS proxy learned that `name` resolves to `ips`: FQDN selectors matching `name` now
   * select the CIDR identities of those IPs (`cidr:<ip>/32`; make sure the identity package
   * allocated them and fed them to {@link updateIdentities}).
   */
  learnFqdn(name: string, ips: readonly string[]): FqdnLearnResult {
    const selectors = this.fqdnSelectors().filter((s) => matchFqdn(s, name))
    const change = this.selectorCache.learnFqdn(name, ips)
    const have = new Set<string>()
    for (const ident of this.selectorCache.identities()) if (ident.cidr) have.add(ident.cidr.cidr)
    const needIdentities: FqdnLearnResult['needIdentities'] = []
    if (selectors.length) {
      for (const ip of ips) {
        const c = hostCidr(ip)
        if (c && !have.has(c.cidr))
          needIdentities.push({ ip, labels: [`cidr:${c.cidr}`, 'reserved:world'] })
      }
    }
    return { change, selectors, needIdentities }
  }

  /**
   * The CIDR prefixes the policies need identities for: each CIDR rule's prefix minus its
   * `except` entries (as prefixes). The agent allocates CIDR identities (`cidr:<prefix>`) and
   * ipcache entries for them, so an IP's longest-prefix identity is selected exactly when the
   * rule covers the IP.
   */
  cidrPrefixes(): string[] {
    const out = new Set<string>()
    for (const r of this.ruleList) {
      for (const pr of [...r.ingress, ...r.egress]) {
        for (const p of pr.peers) {
          if (p.kind === 'cidr') for (const c of subtractCidrs(p.cidr, p.except)) out.add(c.cidr)
          if (p.kind === 'cidrGroup') {
            const group = this.docs.get(`CiliumCIDRGroup/${p.name}`)?.cidrGroup?.cidrs ?? []
            for (const g of group) for (const c of subtractCidrs(g, p.except)) out.add(c.cidr)
          }
        }
      }
    }
    return [...out].sort()
  }

  /** Add or replace a Kubernetes service (toServices). */
  updateService(svc: ServiceInfo): SelectionChange {
    return this.selectorCache.updateService(svc)
  }

  /**
   * Trace a flow: the source's egress and the destination's ingress must both allow it (and
   * their L7 rules, when a request is given).
   */
  trace(input: TraceInput): TraceResult {
    const proto = protocolNumber(input.protocol ?? 'TCP')
    if (proto === undefined)
      throw new PolicyError('INVALID_INPUT', 'unknown protocol', {
        path: 'protocol',
        expected: 'TCP, UDP, SCTP, ICMP, ICMPv6 or a number',
        got: input.protocol,
      })
    if (!Number.isInteger(input.port) || input.port < 0 || input.port > 65535)
      throw new PolicyError('INVALID_INPUT', 'invalid port', {
        path: 'port',
        expected: 'an integer 0..65535',
        got: input.port,
      })
    if (input.kafka) {
      // An API name nobody knows would otherwise trace as "matches no rule": a wrong answer.
      const key = kafkaApiKey(input.kafka.apiKey)
      if (key === undefined || !Number.isInteger(key) || key < 0 || key > 32767)
        throw new PolicyError('INVALID_INPUT', 'unknown Kafka API key', {
          path: 'kafka.apiKey',
          expected: 'a Kafka API name (produce, fetch, ...) or a number 0..32767',
          got: input.kafka.apiKey,
        })
    }
    const srcLabels = traceEndpointLabels(input.source)
    const dstLabels = traceEndpointLabels(input.destination)
    const src = new ResolvedIdentity({
      id: -1,
      labels: srcLabels,
      ips: input.source.ips ?? [],
      namedPorts: input.source.namedPorts ?? {},
    })
    const dst = new ResolvedIdentity({
      id: -2,
      labels: dstLabels,
      ips: input.destination.ips ?? [],
      namedPorts: input.destination.namedPorts ?? {},
    })
    let req: L7Request | undefined
    if (input.http) req = { parser: 'http', http: input.http }
    else if (input.kafka) req = { parser: 'kafka', kafka: input.kafka }
    else if (input.dns) req = { parser: 'dns', dns: input.dns }
    const egress = this.traceDirection(
      'egress',
      src,
      dst,
      proto,
      input.port,
      input.destination.namedPorts,
      req,
    )
    const ingress = this.traceDirection(
      'ingress',
      dst,
      src,
      proto,
      input.port,
      input.destination.namedPorts,
      req,
    )
    return {
      verdict: egress.verdict === 'allowed' && ingress.verdict === 'allowed' ? 'allowed' : 'denied',
      egress,
      ingress,
      sourceLabels: srcLabels,
      destinationLabels: dstLabels,
    }
  }

  /**
   * One direction: the enforcing policies' verdict; when they allow and the audit policies
   * would deny, the audit denial (reported as AUDIT, the flow passes).
   */
  private traceDirection(
    direction: Direction,
    subject: ResolvedIdentity,
    peer: ResolvedIdentity,
    proto: number,
    port: number,
    destNamedPorts: Readonly<Record<string, NamedPort>> | undefined,
    req: L7Request | undefined,
  ): DirectionTrace {
    const who = direction === 'egress' ? 'source' : 'destination'
    if (!isClusterEndpoint(subject.labels)) {
      return {
        verdict: 'allowed',
        reason: 'not-enforced-outside-cluster',
        selectedBy: [],
        defaultDeny: false,
        allowedBy: [],
        deniedBy: [],
        notMatched: [],
        policies: [],
        explanation: `the ${who} is not a cluster endpoint; no ${direction} policy applies`,
      }
    }
    const all = this.candidateRules(subject.labels)
    const enforcing = this.enforcingRules(all)
    const args = [direction, subject, peer, proto, port, destNamedPorts, req] as const
    const enforced = this.traceRules(enforcing, ...args)
    if (enforcing === all || enforced.verdict === 'denied') return enforced
    const audited = this.traceRules(all, ...args)
    if (audited.verdict === 'allowed') return enforced
    return {
      ...audited,
      verdict: 'allowed',
      audit: true,
      explanation: `audit: ${audited.explanation}; the enforcing policies allow it, so it passes`,
    }
  }

  private traceRules(
    rules: readonly PolicyRule[],
    direction: Direction,
    subject: ResolvedIdentity,
    peer: ResolvedIdentity,
    proto: number,
    port: number,
    destNamedPorts: Readonly<Record<string, NamedPort>> | undefined,
    req: L7Request | undefined,
  ): DirectionTrace {
    const who = direction === 'egress' ? 'source' : 'destination'
    const ev = evaluateDirection(
      rules,
      subject.labels,
      direction,
      peer,
      proto,
      port,
      destNamedPorts,
      this.selectorCache,
      this.options.compute?.enforcement,
    )
    const base = {
      selectedBy: [...new Set(ev.selectedBy.map((r) => r.ref))],
      defaultDeny: ev.defaultDeny,
      allowedBy: ev.allows,
      deniedBy: ev.denies,
      notMatched: ev.misses,
    }
    const allowedBy = refsOf(ev.allows.map((a) => a.policy))
    if (ev.denies.length) {
      return {
        ...base,
        verdict: 'denied',
        reason: 'denied-by-deny-rule',
        policies: refsOf(ev.denies.map((d) => d.policy)),
        explanation: `${direction} of the ${who} denied by ${ev.denies.map((d) => d.id).join(', ')}`,
      }
    }
    if (ev.allows.length === 0) {
      if (ev.defaultDeny) {
        return {
          ...base,
          verdict: 'denied',
          reason: 'default-deny',
          policies: defaultDenyRefs(ev.selectedBy, direction),
          explanation: `${direction} of the ${who} is in default deny (selected by ${base.selectedBy.join(', ')}) and no rule allows this flow${missText(ev.misses)}`,
        }
      }
      return {
        ...base,
        verdict: 'allowed',
        reason: 'no-default-deny',
        policies: [],
        explanation: `no policy puts the ${who} in ${direction} default deny`,
      }
    }
    const l7 = l7Of(ev)
    if (!l7) {
      return {
        ...base,
        verdict: 'allowed',
        reason: 'allowed-by-rule',
        policies: allowedBy,
        explanation: `${direction} of the ${who} allowed by ${ev.allows.map((a) => a.id).join(', ')}`,
      }
    }
    const trace: L7Trace = {
      parser: l7.parser,
      wildcard: l7.wildcard,
      verdict: 'not-evaluated',
      rules: l7.rules,
    }
    if (l7.wildcard) trace.verdict = 'allowed'
    else if (req) {
      // The same evaluators as the proxy's (one semantics for trace and enforcement).
      const v =
        req.parser === 'http'
          ? evaluateHttp(l7, httpRequestView(req.http))
          : req.parser === 'kafka'
            ? evaluateKafka(l7, req.kafka)
            : evaluateDns(l7, req.dns.name)
      trace.verdict = v.allowed ? 'allowed' : 'denied'
      if (v.allowed && v.ruleId !== undefined && v.index !== undefined)
        trace.matched = { id: v.ruleId, index: v.index }
    }
    if (trace.verdict === 'denied') {
      return {
        ...base,
        l7: trace,
        verdict: 'denied',
        reason: 'denied-at-l7',
        policies: [...l7Attribution(l7, { allowed: false })],
        explanation: `${direction} of the ${who}: allowed at L4 by ${ev.allows.map((a) => a.id).join(', ')}, but the ${l7.parser} request matches no L7 rule`,
      }
    }
    return {
      ...base,
      l7: trace,
      verdict: 'allowed',
      reason: 'allowed-by-rule',
      policies: trace.matched
        ? [...l7Attribution(l7, { allowed: true, ruleId: trace.matched.id })]
        : allowedBy,
      explanation: `${direction} of the ${who} allowed by ${ev.allows.map((a) => a.id).join(', ')} (${l7.parser} proxy${trace.verdict === 'allowed' ? (trace.matched ? `, request matches ${trace.matched.id} ${l7.parser}[${trace.matched.index}]` : ', every request allowed') : ', request not evaluated'})`,
    }
  }
}

function l7RuleCount(r: L7Rules): number {
  return r.parser === 'http' ? r.http.length : r.parser === 'kafka' ? r.kafka.length : r.dns.length
}

function l7Of(ev: DirectionEvaluation): L7Policy | undefined {
  const withL7 = ev.allows.filter((a) => a.l7)
  if (withL7.length === 0) return undefined
  const parser = (withL7[0] as RuleMatch & { l7: L7Rules }).l7.parser
  for (const a of withL7) {
    if (a.l7 && a.l7.parser !== parser)
      throw new PolicyError(
        'L7_PARSER_CONFLICT',
        `conflicting L7 parsers ${parser} and ${a.l7.parser} (${withL7.map((x) => x.id).join(', ')})`,
        { expected: 'one L7 parser per port of an endpoint' },
      )
  }
  return {
    parser,
    // No L7 rules, or an empty rule list ("if no rules are specified, all traffic is permitted").
    wildcard: ev.allows.some((a) => !a.l7 || l7RuleCount(a.l7) === 0),
    rules: withL7.map((a) => ({ id: a.id, rules: a.l7 as L7Rules })),
    policies: refsOf(ev.allows.map((a) => a.policy)),
  }
}

/**
 * An endpoint whose map state is kept current: `refresh()` returns the diff since the last
 * call, recomputing only what the changes touch.
 */
export class TrackedEndpointPolicy {
  /** Over every rule, audit ones included. */
  private readonly policy: EndpointPolicy
  /** Over the enforcing rules, while an audit policy selects the endpoint. */
  private enforcing: EndpointPolicy | undefined
  /** The merged map state (see mergeAuditMapState), while an audit policy selects it. */
  private merged: MapState | undefined

  constructor(
    private readonly repo: PolicyRepository,
    readonly endpoint: EndpointInfo,
    options: ComputeOptions,
  ) {
    this.policy = new EndpointPolicy(
      { ...endpoint, labelSet: new LabelSet(endpoint.labels) },
      repo.selectorCache,
      options,
    ).track()
    this.policy.compute(repo.candidateRules(this.policy.endpoint.labelSet), repo.revision, false)
    if (repo.auditSelects(this.policy.selectedRefs)) this.merged = this.auditState()
  }

  /** The current map state (do not mutate). */
  get mapState(): MapState {
    return this.merged ?? this.policy.mapState
  }

  /** The enforcing policies' map state merged with every policy's (audit on). */
  private auditState(): MapState {
    const rules = this.repo.enforcingRules(this.repo.candidateRules(this.policy.endpoint.labelSet))
    if (!this.enforcing) {
      this.enforcing = new EndpointPolicy(
        this.policy.endpoint,
        this.repo.selectorCache,
        this.policy.options,
      ).track()
      this.enforcing.compute(rules, this.repo.revision, false)
    } else if (this.enforcing.revision !== this.repo.revision)
      this.enforcing.compute(rules, this.repo.revision, false)
    else this.enforcing.update()
    return mergeAuditMapState(this.enforcing.mapState, this.policy.mapState)
  }

  /** Bring the map state up to date; returns what changed (apply it to the BPF map). */
  refresh(): MapStateDiff {
    const before = this.merged
    const diff = this.refreshAll()
    if (!this.repo.auditSelects(this.policy.selectedRefs)) {
      if (!before) return diff
      this.merged = undefined
      this.enforcing?.dispose()
      this.enforcing = undefined
      return diffMapState(before, this.policy.mapState)
    }
    const next = this.auditState()
    this.merged = next
    // Without audit before, the kernel holds the old all-rules state, which `diff` moved on.
    return before
      ? diffMapState(before, next)
      : composeMapStateDiffs(diff, diffMapState(this.policy.mapState, next))
  }

  /** Refs of the policies selecting this endpoint. */
  get selectedBy(): ReadonlySet<string> {
    return this.policy.selectedRefs
  }

  private refreshAll(): MapStateDiff {
    if (this.policy.revision !== this.repo.revision) {
      const changed = this.repo.changedSince(this.policy.revision)
      let affected = changed === undefined
      if (changed && !affected) {
        for (const ref of changed) {
          if (this.policy.selectedRefs.has(ref)) {
            affected = true
            break
          }
        }
        if (!affected) {
          const labels = this.policy.endpoint.labelSet
          for (const ref of changed) {
            if (this.repo.rulesOf(ref).some((r) => ruleSelects(r, labels))) {
              affected = true
              break
            }
          }
        }
      }
      if (affected)
        return this.policy.compute(
          this.repo.candidateRules(this.policy.endpoint.labelSet),
          this.repo.revision,
          true,
          changed,
        )
      this.policy.revision = this.repo.revision
    }
    return this.policy.update()
  }

  /** Stop listening to the selector cache. */
  dispose(): void {
    this.policy.dispose()
    this.enforcing?.dispose()
  }

  [Symbol.dispose](): void {
    this.dispose()
  }
}

function subjectNamespace(r: PolicyRule): string | undefined {
  if (r.subject.kind !== 'endpoints') return undefined
  for (const q of r.subject.selector.requirements) {
    if (q.key === `k8s:${POD_NAMESPACE_LABEL}` && q.operator === 'In' && q.values.length === 1)
      return q.values[0]
  }
  return undefined
}

function missText(misses: readonly RuleMiss[]): string {
  const allows = misses.filter((m) => !m.deny)
  if (!allows.length) return ''
  const shown = allows
    .slice(0, 3)
    .map((m) => `${m.id} needs ${m.reason === 'peer' ? m.detail : `port ${m.detail}`}`)
  return ` (${shown.join('; ')}${allows.length > 3 ? `; +${allows.length - 3} more` : ''})`
}
