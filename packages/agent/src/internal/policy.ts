import { PolicyMap, type PolicyMapEntry } from '@membrane/datapath'
import type { Policy } from '@membrane/flows'
import {
  type MapState,
  type MapStateDiff,
  type MapStateEntry,
  type MapStateKey,
  type MapStateValue,
  PolicyError,
  PolicyRepository,
  RuleSetTable,
  type TraceInput,
  type TraceResult,
  type TrackedEndpointPolicy,
} from '@membrane/policy'
import { AgentError } from '../errors'
import type { EndpointRecord, PolicyRecord } from '../state'
import { endpointIdentityLabels } from './identity'
import { parseSavedPolicies } from './policy-text'

/** A row of `membrane bpf policy get`. */
export interface PolicyEntryView {
  direction: string
  identity: number
  protocol: string
  port: string
  decision: 'allow' | 'deny'
  proxyPort: number
  l7Parser?: string
  derivedFrom: string[]
}

const PROTO: Record<number, string> = {
  0: 'ANY',
  1: 'ICMP',
  6: 'TCP',
  17: 'UDP',
  58: 'ICMPv6',
  132: 'SCTP',
}

/** One map-state entry as a table row. */
export function entryView(e: MapStateEntry): PolicyEntryView {
  const k = e.key
  let port = 'ANY'
  if (k.portPrefixLen === 16) port = String(k.port)
  else if (k.portPrefixLen > 0) port = `${k.port}-${k.port + 2 ** (16 - k.portPrefixLen) - 1}`
  return {
    direction: k.direction,
    identity: k.identity,
    protocol: PROTO[k.protocol] ?? String(k.protocol),
    port,
    decision: e.value.deny ? 'deny' : 'allow',
    proxyPort: e.value.proxyPort,
    ...(e.value.l7Parser ? { l7Parser: e.value.l7Parser } : {}),
    derivedFrom: e.value.derivedFrom,
  }
}

/** One entry read back from the BPF policy map (with its hit counters). */
export function bpfEntryView(
  e: PolicyMapEntry,
): PolicyEntryView & { packets: string; bytes: string } {
  const k = e.key
  let port = 'ANY'
  if (k.portPrefixLen === 16) port = String(k.port)
  else if (k.portPrefixLen > 0) port = `${k.port}-${k.port + 2 ** (16 - k.portPrefixLen) - 1}`
  return {
    direction: k.direction,
    identity: k.identity,
    protocol: PROTO[k.protocol] ?? String(k.protocol),
    port,
    decision: e.deny ? 'deny' : 'allow',
    proxyPort: e.proxyPort,
    derivedFrom: [],
    packets: String(e.packets),
    bytes: String(e.bytes),
  }
}

/** A map-state entry as the datapath stores it: with the id of the policies behind it. */
export interface DatapathEntry {
  key: MapStateKey
  value: MapStateValue & { ruleSet: number }
}

/** A map-state diff whose upserts carry rule-set ids. */
export interface DatapathDiff {
  upserts: DatapathEntry[]
  deletes: MapStateKey[]
}

/** Sweep the rule-set ids at least this often (ms), or after this many new ids. */
const SWEEP_MS = 30_000
const SWEEP_IDS = 256

/**
 * The agent's use of @membrane/policy: one repository, a tracked map state per endpoint whose
 * diffs the datapath applies, identities fed from the allocator's watch, and the rule-set ids
 * (policy attribution) the datapath stores with its entries and the flows resolve.
 */
export class PolicyService {
  readonly repo: PolicyRepository
  readonly ruleSets = new RuleSetTable()
  readonly #tracked = new Map<number, TrackedEndpointPolicy>()
  #lastSweep = Date.now()
  /** Resolved policy lists, per refs array (stable per rule set / default deny), per revision. */
  readonly #resolved = new WeakMap<readonly string[], { revision: number; list: Policy[] }>()

  /**
   * @param proxyPort the L7 proxy's port, asked whenever an entry redirects to the proxy
   * @param auditNamespaces namespaces whose policies run in audit mode
   */
  constructor(proxyPort: () => number, auditNamespaces: readonly string[] = []) {
    this.repo = new PolicyRepository({
      compute: { proxyPortFor: () => proxyPort() },
      auditNamespaces,
    })
  }

  #stamp(e: MapStateEntry): DatapathEntry {
    return { key: e.key, value: { ...e.value, ruleSet: this.ruleSets.idOf(e.value) } }
  }

  #stampDiff(d: MapStateDiff): DatapathDiff {
    return { upserts: d.upserts.map((e) => this.#stamp(e)), deletes: d.deletes }
  }

  /** An endpoint's map state as the datapath should hold it (for reconcile), or undefined. */
  datapathEntries(endpointId: number): DatapathEntry[] | undefined {
    const ms = this.#tracked.get(endpointId)?.mapState
    return ms ? [...ms].map((e) => this.#stamp(e)) : undefined
  }

  /** Retire rule-set ids no endpoint uses any more (freed after the table's grace period). */
  #maybeSweep(): void {
    if (this.ruleSets.sinceSweep < SWEEP_IDS && Date.now() - this.#lastSweep < SWEEP_MS) return
    this.#lastSweep = Date.now()
    const live = new Set<number>()
    for (const t of this.#tracked.values())
      for (const e of t.mapState) live.add(this.ruleSets.idOf(e.value))
    this.ruleSets.sweep(live)
  }

  /**
   * The policies behind a datapath verdict (flows' `policiesOf`): those of rule set `ruleSet`,
   * or with 0 (no entry matched) those that put the endpoint into default deny in `direction`
   * (1 ingress, 2 egress).
   */
  policiesOf(ruleSet: number, endpointId: number, direction: number): Policy[] | undefined {
    let refs: readonly string[] | undefined
    if (ruleSet !== 0) refs = this.ruleSets.refs(ruleSet)
    else if (direction === 1 || direction === 2)
      refs =
        this.#tracked.get(endpointId)?.mapState.defaultDenyBy[
          direction === 1 ? 'ingress' : 'egress'
        ]
    return refs?.length ? this.#resolve(refs) : undefined
  }

  /** Policies by ref (`Kind/namespace/name`), for L7 records. */
  policiesByRef(refs: readonly string[]): Policy[] {
    return this.#resolve(refs)
  }

  #resolve(refs: readonly string[]): Policy[] {
    const revision = this.repo.revision
    const known = this.#resolved.get(refs)
    if (known?.revision === revision) return known.list
    const list = refs.map((ref) => this.#policy(ref, revision))
    this.#resolved.set(refs, { revision, list })
    return list
  }

  /** A Policy record of a ref; a policy deleted since (a flow in flight) keeps its name. */
  #policy(ref: string, revision: number): Policy {
    const rule = this.repo.rulesOf(ref)[0]
    if (rule)
      return Object.freeze({
        name: rule.name,
        namespace: rule.namespace ?? '',
        labels: rule.labels,
        revision,
        kind: rule.kind,
      })
    const parts = ref.split('/')
    return Object.freeze({
      name: parts[parts.length - 1] ?? ref,
      namespace: parts.length === 3 ? (parts[1] as string) : '',
      labels: [],
      revision,
      kind: parts[0] ?? '',
    })
  }

  /** Identities appeared or went (from the allocator watch). */
  updateIdentities(
    added: { id: number; labels: readonly string[] }[],
    removed: number[] = [],
  ): void {
    this.repo.updateIdentities(added, removed)
  }

  /** Start tracking an endpoint; returns its full map state as the first diff. */
  track(ep: EndpointRecord): DatapathDiff {
    this.untrack(ep.id)
    const t = this.repo.endpointPolicy({ labels: endpointIdentityLabels(ep) })
    this.#tracked.set(ep.id, t)
    return { upserts: [...t.mapState].map((e) => this.#stamp(e)), deletes: [] }
  }

  untrack(endpointId: number): void {
    this.#tracked.get(endpointId)?.dispose()
    this.#tracked.delete(endpointId)
  }

  /** Bring every endpoint's map state up to date; returns the non-empty diffs by endpoint id. */
  refreshAll(): Map<number, DatapathDiff> {
    const out = new Map<number, DatapathDiff>()
    for (const [id, t] of this.#tracked) {
      const d = t.refresh()
      if (d.upserts.length || d.deletes.length) out.set(id, this.#stampDiff(d))
    }
    this.#maybeSweep()
    return out
  }

  /**
   * What each tracked endpoint's current map state (or only `endpointId`'s) occupies in the
   * kernel's policy maps (trie entries and index records, by endpoint id; see datapath's
   * `PolicyMap.usage`).
   */
  usage(endpointId?: number): Map<number, { entries: number; indexRecords: number }> {
    if (endpointId !== undefined) {
      const t = this.#tracked.get(endpointId)
      return new Map(t ? [[endpointId, mapStateUsage(t.mapState)]] : [])
    }
    const out = new Map<number, { entries: number; indexRecords: number }>()
    for (const [id, t] of this.#tracked) out.set(id, mapStateUsage(t.mapState))
    return out
  }

  /**
   * The TCP ports the map states name for traffic to one endpoint: its ingress entries, and the
   * egress entries of `sources` towards its identity (or any identity). A port range counts by
   * its first port.
   */
  tcpPorts(endpointId: number, sources: readonly number[], identity: number | undefined): number[] {
    const ports = new Set<number>()
    for (const e of this.#tracked.get(endpointId)?.mapState ?? [])
      if (e.key.direction === 'ingress' && e.key.protocol === 6 && e.key.port > 0)
        ports.add(e.key.port)
    for (const id of sources)
      for (const e of this.#tracked.get(id)?.mapState ?? [])
        if (
          e.key.direction === 'egress' &&
          e.key.protocol === 6 &&
          e.key.port > 0 &&
          (e.key.identity === 0 || e.key.identity === identity)
        )
          ports.add(e.key.port)
    return [...ports].sort((a, b) => a - b)
  }

  mapState(endpointId: number): MapState | undefined {
    return this.#tracked.get(endpointId)?.mapState
  }

  /** True when some policy selects the endpoint (so it is in default deny for a direction). */
  selectedBy(endpointId: number): string[] {
    return [...(this.#tracked.get(endpointId)?.selectedBy ?? [])]
  }

  /** Restore documents saved in the state directory. */
  restore(records: PolicyRecord[]): void {
    if (records.length === 0) return
    this.repo.upsert(parseSavedPolicies(records.map((r) => r.document)))
  }

  /** Trace a connection between two endpoints (both directions, L7 when a request is given). */
  trace(
    from: EndpointRecord,
    to: EndpointRecord,
    port: number,
    protocol: string,
    l7: TraceL7 = {},
  ): TraceResult {
    try {
      return this.repo.trace({
        source: { identityLabels: endpointIdentityLabels(from), ips: [from.ipv4] },
        destination: { identityLabels: endpointIdentityLabels(to), ips: [to.ipv4] },
        port,
        protocol,
        ...l7,
      })
    } catch (error) {
      if (error instanceof PolicyError) {
        throw new AgentError('INVALID_INPUT', error.message, {
          field: error.path ?? 'trace',
          cause: error,
        })
      }
      throw error
    }
  }
}

/** What one map state occupies in the kernel's policy maps. */
function mapStateUsage(ms: MapState): { entries: number; indexRecords: number } {
  return PolicyMap.usage(
    (function* () {
      for (const e of ms) yield e.key
    })(),
  )
}

/** The L7 request of a trace: the `http`, `kafka` and `dns` parts of policy's TraceInput. */
export type TraceL7 = Pick<TraceInput, 'http' | 'kafka' | 'dns'>
