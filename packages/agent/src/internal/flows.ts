import {
  dropReasonName,
  type EndpointInfo,
  type Enricher,
  eventLabel,
  type Flow,
  type FlowFilter,
  FlowObserver,
  FlowType,
  type Policy,
  type RedactOptions,
  type Service,
  TrafficDirection,
  Verdict,
} from '@membrane/flows'
import { invalid } from '../errors'

const name = <T extends Record<string, number>>(table: T, value: number | undefined) =>
  value === undefined
    ? undefined
    : (Object.entries(table).find(([, v]) => v === value)?.[0] ?? String(value))

/** A flow as the API and `membrane observe -o json` print it: enums by name, time as ISO text. */
export interface FlowJson {
  time?: string
  verdict?: string
  dropReasonDesc?: string
  Type?: string
  trafficDirection?: string
  IP?: Flow['IP']
  l4?: Flow['l4']
  source?: Flow['source']
  destination?: Flow['destination']
  destinationService?: Flow['destinationService']
  l7?: Flow['l7']
  isReply?: boolean
  nodeName?: string
  /** What kind of event: 'policy verdict (ingress)', 'drop', 'trace (to-endpoint)', 'L7 request' ... */
  event: string
  egressAllowedBy?: Flow['egressAllowedBy']
  ingressAllowedBy?: Flow['ingressAllowedBy']
  egressDeniedBy?: Flow['egressDeniedBy']
  ingressDeniedBy?: Flow['ingressDeniedBy']
  summary: string
}

/** Turn a Flow record into its JSON view. */
export function flowToJson(f: Flow): FlowJson {
  const time = f.time
    ? new Date(f.time.seconds * 1000 + Math.floor((f.time.nanos ?? 0) / 1e6)).toISOString()
    : undefined
  const http = f.l7?.http
  const tcp = f.l4?.TCP
  let summary = ''
  if (http) {
    summary =
      `HTTP ${http.method ?? ''} ${http.url ?? ''}${http.code ? ` => ${http.code}` : ''}`.trim()
  } else if (tcp) {
    const flags = Object.entries(tcp.flags ?? {})
      .filter(([, v]) => v)
      .map(([k]) => k)
    summary = `TCP${flags.length ? ` Flags: ${flags.join(', ')}` : ''}`
  } else if (f.l4?.UDP) summary = 'UDP'
  else if (f.l4?.ICMPv4) summary = 'ICMPv4'
  return {
    ...(time ? { time } : {}),
    verdict: name(Verdict, f.verdict),
    ...(f.dropReasonDesc ? { dropReasonDesc: dropReasonName(f.dropReasonDesc) } : {}),
    Type: name(FlowType, f.Type),
    ...(f.trafficDirection !== undefined
      ? { trafficDirection: name(TrafficDirection, f.trafficDirection) }
      : {}),
    ...(f.IP ? { IP: f.IP } : {}),
    ...(f.l4 ? { l4: f.l4 } : {}),
    ...(f.source ? { source: f.source } : {}),
    ...(f.destination ? { destination: f.destination } : {}),
    ...(f.destinationService ? { destinationService: f.destinationService } : {}),
    ...(f.l7 ? { l7: f.l7 } : {}),
    ...(f.isReply ? { isReply: f.isReply.value } : {}),
    ...(f.nodeName ? { nodeName: f.nodeName } : {}),
    event: eventLabel(f),
    ...(f.egressAllowedBy?.length ? { egressAllowedBy: f.egressAllowedBy } : {}),
    ...(f.ingressAllowedBy?.length ? { ingressAllowedBy: f.ingressAllowedBy } : {}),
    ...(f.egressDeniedBy?.length ? { egressDeniedBy: f.egressDeniedBy } : {}),
    ...(f.ingressDeniedBy?.length ? { ingressDeniedBy: f.ingressDeniedBy } : {}),
    summary,
  }
}

const VERDICTS = Object.keys(Verdict)

/**
 * Build a Hubble FlowFilter from the query of `/v1/flows` (the flags of `membrane observe`):
 * verdict, from-endpoint, to-endpoint, port, protocol, http-method, from-identity, to-identity.
 */
export function filterFromQuery(q: URLSearchParams): FlowFilter | undefined {
  const f: FlowFilter = {}
  const verdict = q.get('verdict')
  if (verdict !== null) {
    const v = verdict.toUpperCase()
    if (!VERDICTS.includes(v))
      throw invalid(
        'verdict',
        `expected one of ${VERDICTS.join(', ')}, got ${JSON.stringify(verdict)}`,
      )
    f.verdict = [Verdict[v as keyof typeof Verdict]]
  }
  const from = q.get('from-endpoint')
  if (from !== null) f.sourcePod = [from.includes('/') ? from : `default/${from}`]
  const to = q.get('to-endpoint')
  if (to !== null) f.destinationPod = [to.includes('/') ? to : `default/${to}`]
  const port = q.get('port')
  if (port !== null) {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535)
      throw invalid('port', `expected a port number, got ${JSON.stringify(port)}`)
    f.destinationPort = [port]
  }
  const protocol = q.get('protocol')
  if (protocol !== null) f.protocol = [protocol.toLowerCase()]
  const method = q.get('http-method')
  if (method !== null) f.httpMethod = [method.toUpperCase()]
  for (const [key, field] of [
    ['from-identity', 'sourceIdentity'],
    ['to-identity', 'destinationIdentity'],
  ] as const) {
    const v = q.get(key)
    if (v === null) continue
    if (!/^[0-9]+$/.test(v))
      throw invalid(key, `expected a numeric identity, got ${JSON.stringify(v)}`)
    f[field] = [Number(v)]
  }
  return Object.keys(f).length ? f : undefined
}

/** What the agent tells the flow enricher (kept current by the agent). */
export interface EnricherSource {
  identityLabels(id: number): readonly string[] | undefined
  endpointByIp(ip: string): EndpointInfo | undefined
  serviceByFrontend(ip: string, port: number, protocol: number): Service | undefined
  /** Policy attribution of a datapath verdict (see flows' Enricher.policiesOf). */
  policiesOf(ruleSet: number, endpointId: number, direction: number): readonly Policy[] | undefined
  /** Policies by ref, for L7 records. */
  policiesByRef(refs: readonly string[]): readonly Policy[] | undefined
}

/** The agent's flow pipeline: an observer ring fed by the datapath and the L7 proxy. */
export function createObserver(
  nodeName: string,
  source: EnricherSource,
  redact: RedactOptions = {},
  nodeLabels: readonly string[] = [],
): FlowObserver {
  const enricher: Enricher = {
    identityLabels: (id) => source.identityLabels(id),
    endpointByIp: (ip) => source.endpointByIp(ip),
    serviceByFrontend: (ip, port, proto) => source.serviceByFrontend(ip, port, proto),
    policiesOf: (ruleSet, endpointId, direction) =>
      source.policiesOf(ruleSet, endpointId, direction),
    policiesByRef: (refs) => source.policiesByRef(refs),
  }
  return new FlowObserver({ nodeName, enricher, redact, nodeLabels })
}
