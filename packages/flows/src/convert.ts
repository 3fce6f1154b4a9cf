/** Datapath events -> Flow records. */
import { POD_NAMESPACE_LABEL } from '@membrane/types'
import { shared } from './_shared'
import { isPolicyDecision, setPolicyAttribution } from './attribution'
import type { EndpointInfo, Enricher } from './enrich'
import { RESERVED_IDENTITY_LABELS } from './enrich'
import { EventFlag, EventType, type MbEvent, PolicyAction, TracePoint } from './event'
import {
  type Endpoint,
  type Flow,
  FlowType,
  IPVersion,
  type Layer4,
  type TCPFlags,
  type Timestamp,
  TraceObservationPoint,
  Verdict,
} from './types'

/** Converts CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) to wall-clock Timestamps. */
export interface MonotonicClock {
  toTimestamp(ktimeNs: number): Timestamp
  now(): Timestamp
}

/**
 * Measure the offset between CLOCK_MONOTONIC (what bpf_ktime_get_ns and process.hrtime share on
 * Linux) and the wall clock once, and convert event times with it.
 */
export function monotonicClock(): MonotonicClock {
  const wallNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6))
  const offset = wallNs - process.hrtime.bigint()
  const offSec = Number(offset / 1_000_000_000n)
  const offNs = Number(offset % 1_000_000_000n)
  const toTimestamp = (ktimeNs: number): Timestamp => {
    const total = ktimeNs + offNs
    const sec = Math.floor(total / 1e9)
    return { seconds: offSec + sec, nanos: total - sec * 1e9 }
  }
  return {
    toTimestamp,
    now: () => {
      const ms = Date.now()
      return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 }
    },
  }
}

/** Cilium's trace point number -> Hubble's TraceObservationPoint. */
function traceObservationPoint(point: number): number {
  return point === TracePoint.TO_LXC ? TraceObservationPoint.TO_ENDPOINT : point
}

// Flows share small immutable parts (flags, reply wrappers, event types, endpoints): fewer
// allocations per event, and the encoder can reuse the bytes of an endpoint it has seen.
const REPLY_TRUE = Object.freeze({ value: true })
const REPLY_FALSE = Object.freeze({ value: false })
const FLAGS: TCPFlags[] = Array.from({ length: 256 }, (_, bits) => shared(tcpFlagsOf(bits)))
const eventTypes = new Map<number, { type: number; subType: number }>()

function eventTypeOf(type: number, subType: number): { type: number; subType: number } {
  const k = type * 256 + subType
  let e = eventTypes.get(k)
  if (!e) {
    e = shared({ type, subType })
    eventTypes.set(k, e)
  }
  return e
}

const interfaces = new Map<number, { index: number; name?: string }>()

function interfaceOf(index: number, name: string | undefined): { index: number; name?: string } {
  let i = interfaces.get(index)
  if (!i || i.name !== name) {
    i = shared(name ? { index, name } : { index })
    if (interfaces.size >= 4096) interfaces.clear()
    interfaces.set(index, i)
  }
  return i
}

function tcpFlagsOf(bits: number): TCPFlags {
  const f: TCPFlags = {}
  if (bits & 1) f.FIN = true
  if (bits & 2) f.SYN = true
  if (bits & 4) f.RST = true
  if (bits & 8) f.PSH = true
  if (bits & 16) f.ACK = true
  if (bits & 32) f.URG = true
  if (bits & 64) f.ECE = true
  if (bits & 128) f.CWR = true
  return f
}

function layer4(ev: MbEvent): Layer4 | undefined {
  switch (ev.protocol) {
    case 6:
      return {
        TCP: { sourcePort: ev.sport, destinationPort: ev.dport, flags: FLAGS[ev.tcpFlags & 0xff] },
      }
    case 17:
      return { UDP: { sourcePort: ev.sport, destinationPort: ev.dport } }
    case 132:
      return { SCTP: { sourcePort: ev.sport, destinationPort: ev.dport } }
    case 1:
      return { ICMPv4: { type: ev.icmpTypeCode >> 8, code: ev.icmpTypeCode & 0xff } }
    case 58:
      return { ICMPv6: { type: ev.icmpTypeCode >> 8, code: ev.icmpTypeCode & 0xff } }
    default:
      return undefined
  }
}

const NS_LABEL = `k8s:${POD_NAMESPACE_LABEL}=`

function buildEndpoint(
  identity: number,
  info: EndpointInfo | undefined,
  labels: readonly string[] | undefined,
  fallbackId: number,
): Endpoint {
  const ep: Endpoint = { identity: identity || info?.identity || 0 }
  if (info?.endpointId) ep.ID = info.endpointId
  else if (fallbackId) ep.ID = fallbackId
  if (info?.namespace) ep.namespace = info.namespace
  if (info?.podName) ep.podName = info.podName
  if (labels) ep.labels = [...labels]
  if (info?.workloads) ep.workloads = info.workloads
  if (info?.clusterName) ep.clusterName = info.clusterName
  if (!ep.namespace && ep.labels) {
    const ns = ep.labels.find((l) => l.startsWith(NS_LABEL))
    if (ns) ep.namespace = ns.slice(NS_LABEL.length)
  }
  return shared(ep)
}

interface EndpointMemo {
  info: EndpointInfo | undefined
  labels: readonly string[] | undefined
  identity: number
  fallbackId: number
  ep: Endpoint
}

/**
 * Endpoint records memoized per IP address, reused while the enricher returns the same objects
 * (the same EndpointInfo and labels array) for the same identity: enrichment results are treated
 * as immutable, so an agent that changes a pod's metadata passes a new object.
 */
export class EndpointCache {
  private readonly memo = new Map<string, EndpointMemo>()
  constructor(private readonly max = 1 << 16) {}

  get(ip: string, identity: number, enricher: Enricher | undefined, emitterId: number): Endpoint {
    const info = ip ? enricher?.endpointByIp?.(ip) : undefined
    // The emitting endpoint's id only matters when the enricher does not know the endpoint.
    const fallbackId = info?.endpointId ? 0 : emitterId
    const id = identity || info?.identity || 0
    const labels = info?.labels ?? enricher?.identityLabels?.(id) ?? RESERVED_IDENTITY_LABELS[id]
    const m = this.memo.get(ip)
    if (
      m &&
      m.info === info &&
      m.labels === labels &&
      m.identity === identity &&
      m.fallbackId === fallbackId
    ) {
      return m.ep
    }
    const ep = buildEndpoint(identity, info, labels, fallbackId)
    if (this.memo.size >= this.max) this.memo.clear()
    this.memo.set(ip, { info, labels, identity, fallbackId, ep })
    return ep
  }
}

/** Options of {@link eventToFlow}. */
export interface ConvertOptions {
  nodeName?: string
  enricher?: Enricher
  clock?: MonotonicClock
  /** Endpoint memo shared across calls (default: one per module). */
  endpoints?: EndpointCache
}

const defaultEndpoints = new EndpointCache()

/**
 * Turn one decoded datapath event into a Flow: verdict, drop reason, observation point, L3/L4,
 * direction, identities and (through the enricher) pod, namespace, labels, services and names.
 * Returns undefined for event types that are not flows.
 */
export function eventToFlow(ev: MbEvent, opts: ConvertOptions = {}): Flow | undefined {
  const enricher = opts.enricher
  const flow: Flow = { verdict: Verdict.VERDICT_UNKNOWN, Type: FlowType.L3_L4 }
  if (opts.clock) flow.time = opts.clock.toTimestamp(ev.ktimeNs)
  switch (ev.type) {
    case EventType.DROP:
      flow.verdict = Verdict.DROPPED
      flow.dropReason = ev.subtype
      flow.dropReasonDesc = ev.subtype
      break
    case EventType.TRACE:
      flow.verdict = Verdict.FORWARDED
      flow.traceObservationPoint = traceObservationPoint(
        ev.subtype,
      ) as Flow['traceObservationPoint']
      break
    case EventType.POLICY_VERDICT:
      flow.policyMatchType = ev.matchType
      if (ev.flags & EventFlag.AUDIT) flow.verdict = Verdict.AUDIT
      else if (ev.action === PolicyAction.DENIED) {
        flow.verdict = Verdict.DROPPED
        const reason = ev.subtype >= 130 ? ev.subtype : 133
        flow.dropReason = reason
        flow.dropReasonDesc = reason
      } else if (ev.action === PolicyAction.REDIRECTED) flow.verdict = Verdict.REDIRECTED
      else flow.verdict = Verdict.FORWARDED
      break
    case EventType.SOCK_LB:
      flow.Type = FlowType.SOCK
      flow.verdict = Verdict.TRANSLATED
      flow.sockXlatePoint = ev.subtype
      if (ev.sockCookie !== 0n) flow.socketCookie = ev.sockCookie.toString()
      break
    default:
      return undefined
  }
  flow.eventType = eventTypeOf(ev.type, ev.type === EventType.POLICY_VERDICT ? 0 : ev.subtype)
  if (opts.nodeName) flow.nodeName = opts.nodeName
  if (ev.smac || ev.dmac) flow.ethernet = { source: ev.smac, destination: ev.dmac }
  const v6 = (ev.flags & EventFlag.IPV6) !== 0
  flow.IP = {
    source: ev.saddr,
    destination: ev.daddr,
    ipVersion: v6 ? IPVersion.IPv6 : IPVersion.IPv4,
  }
  const l4 = layer4(ev)
  if (l4) flow.l4 = l4
  // The endpoint whose program emitted the event is the source on egress, else the destination.
  const egressSide =
    ev.direction === 2 ||
    (ev.direction === 0 && ev.type === EventType.TRACE && ev.subtype === TracePoint.FROM_LXC)
  const cache = opts.endpoints ?? defaultEndpoints
  flow.source = cache.get(ev.saddr, ev.srcIdentity, enricher, egressSide ? ev.endpointId : 0)
  flow.destination = cache.get(ev.daddr, ev.dstIdentity, enricher, egressSide ? 0 : ev.endpointId)
  if (ev.direction) flow.trafficDirection = ev.direction as Flow['trafficDirection']
  if (enricher?.policiesOf && isPolicyDecision(ev.type, flow.dropReason))
    setPolicyAttribution(flow, enricher.policiesOf(ev.ruleSet, ev.endpointId, ev.direction))
  flow.isReply = (ev.flags & EventFlag.REPLY) !== 0 ? REPLY_TRUE : REPLY_FALSE
  if (ev.proxyPort) flow.proxyPort = ev.proxyPort
  if (ev.ifindex) {
    const name = enricher?.interfaceName?.(ev.ifindex)
    flow.interface = interfaceOf(ev.ifindex, name)
  }
  if (enricher?.serviceByFrontend) {
    const nat = (ev.flags & EventFlag.NAT) !== 0
    const svc = nat
      ? enricher.serviceByFrontend(ev.origDaddr, ev.origDport, ev.protocol)
      : enricher.serviceByFrontend(ev.daddr, ev.dport, ev.protocol)
    if (svc) flow.destinationService = svc
  }
  if (enricher?.serviceOfBackend) {
    const src = enricher.serviceOfBackend(ev.saddr)
    if (src) flow.sourceService = src
    if (!flow.destinationService) {
      const dst = enricher.serviceOfBackend(ev.daddr)
      if (dst) flow.destinationService = dst
    }
  }
  if (enricher?.namesOf) {
    const s = enricher.namesOf(ev.saddr)
    if (s?.length) flow.sourceNames = [...s]
    const d = enricher.namesOf(ev.daddr)
    if (d?.length) flow.destinationNames = [...d]
  }
  return flow
}
