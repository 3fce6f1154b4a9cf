/** Datapath events -> Flow records. */
import type { Enricher } from './enrich'
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
export function traceObservationPoint(point: number): number {
  return point === TracePoint.TO_LXC ? TraceObservationPoint.TO_ENDPOINT : point
}

function tcpFlags(bits: number): TCPFlags {
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
        TCP: { sourcePort: ev.sport, destinationPort: ev.dport, flags: tcpFlags(ev.tcpFlags) },
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

const NS_LABEL = 'k8s:io.kubernetes.pod.namespace='

function endpoint(ip: string, identity: number, enricher: Enricher | undefined): Endpoint {
  const ep: Endpoint = { identity }
  const info = ip ? enricher?.endpointByIp?.(ip) : undefined
  if (info) {
    if (info.endpointId) ep.ID = info.endpointId
    if (info.namespace) ep.namespace = info.namespace
    if (info.podName) ep.podName = info.podName
    if (info.labels) ep.labels = [...info.labels]
    if (info.workloads) ep.workloads = info.workloads
    if (!identity && info.identity) ep.identity = info.identity
  }
  if (!ep.labels) {
    const labels =
      enricher?.identityLabels?.(ep.identity ?? 0) ?? RESERVED_IDENTITY_LABELS[ep.identity ?? 0]
    if (labels) ep.labels = [...labels]
  }
  if (!ep.namespace && ep.labels) {
    const ns = ep.labels.find((l) => l.startsWith(NS_LABEL))
    if (ns) ep.namespace = ns.slice(NS_LABEL.length)
  }
  return ep
}

/** Options of {@link eventToFlow}. */
export interface ConvertOptions {
  nodeName?: string
  enricher?: Enricher
  clock?: MonotonicClock
}

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
  flow.eventType = { type: ev.type, subType: ev.type === EventType.POLICY_VERDICT ? 0 : ev.subtype }
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
  flow.source = endpoint(ev.saddr, ev.srcIdentity, enricher)
  flow.destination = endpoint(ev.daddr, ev.dstIdentity, enricher)
  if (ev.endpointId) {
    const egressSide =
      ev.direction === 2 ||
      (ev.direction === 0 && ev.type === EventType.TRACE && ev.subtype === TracePoint.FROM_LXC)
    const owner = egressSide ? flow.source : flow.destination
    if (owner.ID === undefined) owner.ID = ev.endpointId
  }
  if (ev.direction) flow.trafficDirection = ev.direction as Flow['trafficDirection']
  flow.isReply = { value: (ev.flags & EventFlag.REPLY) !== 0 }
  if (ev.proxyPort) flow.proxyPort = ev.proxyPort
  if (ev.ifindex) {
    const name = enricher?.interfaceName?.(ev.ifindex)
    flow.interface = name ? { index: ev.ifindex, name } : { index: ev.ifindex }
  }
  if (enricher?.serviceByFrontend) {
    const nat = (ev.flags & EventFlag.NAT) !== 0
    const svc = nat
      ? enricher.serviceByFrontend(ev.origDaddr, ev.origDport, ev.protocol)
      : enricher.serviceByFrontend(ev.daddr, ev.dport, ev.protocol)
    if (svc) flow.destinationService = svc
  }
  if (enricher?.namesOf) {
    const s = enricher.namesOf(ev.saddr)
    if (s?.length) flow.sourceNames = [...s]
    const d = enricher.namesOf(ev.daddr)
    if (d?.length) flow.destinationNames = [...d]
  }
  return flow
}
