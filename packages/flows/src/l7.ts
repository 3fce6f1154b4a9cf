/** L7 records from the proxy -> Flow records. */
import type { L7Peer, L7Record } from '@membrane/types'
import { setPolicyAttribution } from './attribution'
import type { Enricher } from './enrich'
import { RESERVED_IDENTITY_LABELS } from './enrich'
import { EventType, parseIpBytes } from './event'
import {
  type Endpoint,
  type Flow,
  FlowType,
  IPVersion,
  L7FlowType,
  type Timestamp,
  TrafficDirection,
  Verdict,
} from './types'

/** Thrown for a malformed L7 record; the message names the field. */
export class L7RecordError extends Error {
  readonly code = 'INVALID_L7_RECORD' as const
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`L7 record ${path}: ${message}`)
    this.name = 'L7RecordError'
  }
}

function checkPeer(p: L7Peer | undefined, path: string): L7Peer {
  if (!p || typeof p !== 'object') throw new L7RecordError(path, 'expected { ip, port }')
  try {
    parseIpBytes(p.ip)
    if (p.ip === '') throw new Error('empty')
  } catch {
    throw new L7RecordError(`${path}.ip`, `expected an IP address, got '${String(p.ip)}'`)
  }
  if (!Number.isInteger(p.port) || p.port < 0 || p.port > 65535) {
    throw new L7RecordError(`${path}.port`, `expected a port 0..65535, got ${String(p.port)}`)
  }
  return p
}

function toTimestamp(t: Date | Timestamp | undefined): Timestamp {
  if (t === undefined) {
    const ms = Date.now()
    return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 }
  }
  if (t instanceof Date) {
    const ms = t.getTime()
    return { seconds: Math.floor(ms / 1000), nanos: (ms - Math.floor(ms / 1000) * 1000) * 1e6 }
  }
  return t
}

const VERDICTS = {
  forwarded: Verdict.FORWARDED,
  denied: Verdict.DROPPED,
  error: Verdict.ERROR,
  redirected: Verdict.REDIRECTED,
} as const

function endpoint(peer: L7Peer, enricher: Enricher | undefined): Endpoint {
  const info = enricher?.endpointByIp?.(peer.ip)
  const identity = peer.identity ?? info?.identity ?? 0
  const ep: Endpoint = { identity }
  if (info?.endpointId) ep.ID = info.endpointId
  if (info?.namespace) ep.namespace = info.namespace
  if (info?.podName) ep.podName = info.podName
  if (info?.workloads) ep.workloads = info.workloads
  if (info?.clusterName) ep.clusterName = info.clusterName
  const labels =
    info?.labels ?? enricher?.identityLabels?.(identity) ?? RESERVED_IDENTITY_LABELS[identity]
  if (labels) ep.labels = [...labels]
  return ep
}

/**
 * Build the Flow for an L7 record (Type L7, event type 129 like Cilium's access log).
 * @throws L7RecordError naming the field of a malformed record.
 */
export function l7RecordToFlow(
  record: L7Record,
  opts: { nodeName?: string; enricher?: Enricher } = {},
): Flow {
  if (!record || typeof record !== 'object') throw new L7RecordError('', 'expected an object')
  const src = checkPeer(record.source, 'source')
  const dst = checkPeer(record.destination, 'destination')
  const kinds = [record.http, record.kafka, record.dns].filter((x) => x !== undefined).length
  if (kinds !== 1) {
    throw new L7RecordError(
      'http|kafka|dns',
      `expected exactly one of http, kafka, dns; got ${kinds}`,
    )
  }
  const verdict = VERDICTS[record.verdict ?? 'forwarded']
  if (verdict === undefined) {
    throw new L7RecordError(
      'verdict',
      `expected forwarded|denied|error|redirected, got '${record.verdict}'`,
    )
  }
  const type = record.type ?? 'request'
  const l7Type =
    type === 'request'
      ? L7FlowType.REQUEST
      : type === 'response'
        ? L7FlowType.RESPONSE
        : L7FlowType.SAMPLE
  const reply = type === 'response'
  const transport = record.transport ?? (record.dns ? 'udp' : 'tcp')
  // The response travels from the server back to the client: swap the sides like Hubble does.
  const [s, d] = reply ? [dst, src] : [src, dst]
  const ports = { sourcePort: s.port, destinationPort: d.port }
  const enricher = opts.enricher
  const flow: Flow = {
    time: toTimestamp(record.time),
    verdict,
    Type: FlowType.L7,
    IP: {
      source: s.ip,
      destination: d.ip,
      ipVersion: s.ip.includes(':') ? IPVersion.IPv6 : IPVersion.IPv4,
    },
    l4: transport === 'udp' ? { UDP: ports } : { TCP: ports },
    source: endpoint(s, enricher),
    destination: endpoint(d, enricher),
    eventType: { type: EventType.ACCESS_LOG, subType: 0 },
    trafficDirection:
      record.trafficDirection === 'egress' ? TrafficDirection.EGRESS : TrafficDirection.INGRESS,
    isReply: { value: reply },
    l7: { type: l7Type },
  }
  if (opts.nodeName) flow.nodeName = opts.nodeName
  if (record.latencyNs) (flow.l7 as NonNullable<Flow['l7']>).latencyNs = record.latencyNs
  if (record.http) (flow.l7 as NonNullable<Flow['l7']>).http = record.http
  if (record.kafka) (flow.l7 as NonNullable<Flow['l7']>).kafka = record.kafka
  if (record.dns) (flow.l7 as NonNullable<Flow['l7']>).dns = record.dns
  if (verdict === Verdict.DROPPED) {
    flow.dropReason = 133
    flow.dropReasonDesc = 133
  }
  if (record.proxyPort) flow.proxyPort = record.proxyPort
  if (record.policies?.length && enricher?.policiesByRef)
    setPolicyAttribution(flow, enricher.policiesByRef(record.policies))
  const ss = enricher?.serviceOfBackend?.(s.ip)
  if (ss) flow.sourceService = ss
  const ds =
    enricher?.serviceByFrontend?.(d.ip, d.port, transport === 'udp' ? 17 : 6) ??
    enricher?.serviceOfBackend?.(d.ip)
  if (ds) flow.destinationService = ds
  if (enricher?.namesOf) {
    const sn = enricher.namesOf(s.ip)
    if (sn?.length) flow.sourceNames = [...sn]
    const dn = enricher.namesOf(d.ip)
    if (dn?.length) flow.destinationNames = [...dn]
  }
  return flow
}
