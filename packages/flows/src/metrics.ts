/**
 * Prometheus metrics (prom-client): datapath counters derived from events, Hubble-style flow
 * metrics, and gauges/counters the agent feeds (endpoints, identities, policies, BPF maps).
 */
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { policyNames } from './attribution'
import { dropReasonDescription, dropReasonName } from './drop-reasons'
import {
  eventTypeName,
  kebab,
  l4ProtocolName,
  l7ProtocolName,
  lostSourceName,
  observationPointName,
  verdictName,
} from './names'
import type { FlowSink } from './observer'
import { type Flow, FlowType, IPVersion, LostEventSource, Verdict } from './types'

/**
 * One datapath forward/drop counter as the datapath's metrics map reports it (the shape of
 * `Datapath.counters()` from @membrane/datapath): reason 0 = forwarded.
 */
export interface DatapathCounter {
  reason: number
  direction: 'ingress' | 'egress' | 'unknown'
  packets: bigint | number
  bytes: bigint | number
}

/** Options of {@link FlowMetrics}. */
export interface FlowMetricsOptions {
  /** Registry to register on (default: a new one, not prom-client's global registry). */
  registry?: Registry
}

const DIRECTIONS = ['UNKNOWN', 'INGRESS', 'EGRESS']
const RCODES = [
  'No Error',
  'Format Error',
  'Server Failure',
  'Non-Existent Domain',
  'Not Implemented',
  'Query Refused',
]

/**
 * All metrics of the flows package on one registry. Register it as a sink of the observer
 * (`observer.addSink(metrics)`) and serve it with {@link serveMetrics}.
 *
 * Datapath counters (`membrane_drop_count_total` ...) are counted from the events the datapath
 * reports, so they count what the datapath chose to report (every drop; forwards at the trace
 * points it emits).
 */
export class FlowMetrics implements FlowSink {
  readonly registry: Registry
  private readonly cache = new Map<string, { inc(n?: number): void }>()
  private readonly collectors: (() => void | Promise<void>)[] = []
  private datapathCounters: (() => readonly DatapathCounter[]) | undefined

  readonly dropCount: Counter<'reason' | 'direction'>
  readonly dropBytes: Counter<'reason' | 'direction'>
  readonly forwardCount: Counter<'direction'>
  readonly forwardBytes: Counter<'direction'>
  readonly policyVerdicts: Counter<'direction' | 'match' | 'action'>
  readonly eventsLost: Counter
  readonly endpoints: Gauge
  readonly identities: Gauge<'type'>
  readonly policies: Gauge
  readonly mapOps: Counter<'map_name' | 'operation' | 'outcome'>
  readonly mapPressure: Gauge<'map_name'>
  readonly flowsProcessed: Counter<'type' | 'subtype' | 'verdict'>
  readonly hubblePolicyVerdicts: Counter<'direction' | 'match' | 'action' | 'policy'>
  readonly hubbleDrops: Counter<'reason' | 'protocol'>
  readonly tcpFlags: Counter<'flag' | 'family'>
  readonly httpRequests: Counter<'method' | 'protocol' | 'reporter'>
  readonly httpResponses: Counter<'method' | 'status' | 'reporter'>
  readonly httpDuration: Histogram<'method' | 'reporter'>
  readonly dnsQueries: Counter<'rcode' | 'qtypes' | 'ips_returned'>
  readonly dnsResponses: Counter<'rcode' | 'qtypes' | 'ips_returned'>
  readonly kafkaRequests: Counter<'topic' | 'api_key' | 'error_code' | 'reporter'>
  readonly lostEvents: Counter<'source'>

  constructor(opts: FlowMetricsOptions = {}) {
    this.registry = opts.registry ?? new Registry()
    const registers = [this.registry]
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers })
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers })

    this.dropCount = counter(
      'membrane_drop_count_total',
      'Packets dropped by the datapath, by reason and direction',
      ['reason', 'direction'],
    )
    this.dropBytes = counter(
      'membrane_drop_bytes_total',
      'Bytes dropped by the datapath, by reason and direction',
      ['reason', 'direction'],
    )
    this.forwardCount = counter(
      'membrane_forward_count_total',
      'Packets forwarded by the datapath, by direction',
      ['direction'],
    )
    this.forwardBytes = counter(
      'membrane_forward_bytes_total',
      'Bytes forwarded by the datapath, by direction',
      ['direction'],
    )
    this.policyVerdicts = counter(
      'membrane_policy_verdict_total',
      'Policy verdicts of the datapath',
      ['direction', 'match', 'action'],
    )
    this.eventsLost = counter(
      'membrane_datapath_events_lost_total',
      'Datapath events lost because the ring buffer was full',
    )
    this.endpoints = gauge('membrane_endpoints', 'Endpoints managed by this node')
    this.identities = gauge('membrane_identities', 'Security identities known to this node', [
      'type',
    ])
    this.policies = gauge('membrane_policies', 'Policy rules loaded')
    this.mapOps = counter(
      'membrane_bpf_map_ops_total',
      'BPF map operations by map, operation and outcome',
      ['map_name', 'operation', 'outcome'],
    )
    this.mapPressure = gauge(
      'membrane_bpf_map_pressure',
      'Fill level of a BPF map (entries / max entries)',
      ['map_name'],
    )
    this.flowsProcessed = counter(
      'hubble_flows_processed_total',
      'Flows processed, by type, subtype and verdict',
      ['type', 'subtype', 'verdict'],
    )
    this.hubblePolicyVerdicts = counter(
      'hubble_policy_verdicts_total',
      'Policy verdicts (L3/L4 policy verdict events and L7 records) by direction, match type, ' +
        'action and deciding policies (namespace/name, comma-separated)',
      ['direction', 'match', 'action', 'policy'],
    )
    this.hubbleDrops = counter('hubble_drop_total', 'Dropped flows by reason and protocol', [
      'reason',
      'protocol',
    ])
    this.tcpFlags = counter('hubble_tcp_flags_total', 'TCP flag occurrences', ['flag', 'family'])
    this.httpRequests = counter('hubble_http_requests_total', 'HTTP requests seen by the proxy', [
      'method',
      'protocol',
      'reporter',
    ])
    this.httpResponses = counter(
      'hubble_http_responses_total',
      'HTTP responses seen by the proxy',
      ['method', 'status', 'reporter'],
    )
    this.httpDuration = new Histogram({
      name: 'hubble_http_request_duration_seconds',
      help: 'HTTP request latency (response time) in seconds',
      labelNames: ['method', 'reporter'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    this.dnsQueries = counter('hubble_dns_queries_total', 'DNS queries seen by the proxy', [
      'rcode',
      'qtypes',
      'ips_returned',
    ])
    this.dnsResponses = counter('hubble_dns_responses_total', 'DNS responses seen by the proxy', [
      'rcode',
      'qtypes',
      'ips_returned',
    ])
    this.kafkaRequests = counter(
      'hubble_kafka_requests_total',
      'Kafka requests seen by the proxy',
      ['topic', 'api_key', 'error_code', 'reporter'],
    )
    this.lostEvents = counter(
      'hubble_lost_events_total',
      'Events lost before they became flows, by source',
      ['source'],
    )
  }

  /** Run `fn` before every scrape (to refresh gauges lazily, e.g. map pressure). */
  addCollector(fn: () => void | Promise<void>): void {
    this.collectors.push(fn)
  }

  /**
   * Take `membrane_drop_count_total`, `membrane_drop_bytes_total`, `membrane_forward_count_total`
   * and `membrane_forward_bytes_total` from the datapath's own counters (read at every scrape)
   * instead of counting events: exact, including packets the datapath did not report as events.
   * @example
   * metrics.useDatapathCounters(() => datapath.counters())
   */
  useDatapathCounters(read: () => readonly DatapathCounter[]): void {
    this.datapathCounters = read
  }

  private readDatapathCounters(read: () => readonly DatapathCounter[]): void {
    const counters = read()
    for (const c of [this.dropCount, this.dropBytes, this.forwardCount, this.forwardBytes])
      c.reset()
    for (const c of counters) {
      const dir = c.direction === 'unknown' ? 'UNKNOWN' : c.direction.toUpperCase()
      const packets = Number(c.packets)
      const bytes = Number(c.bytes)
      if (c.reason === 0) {
        if (packets) this.forwardCount.labels(dir).inc(packets)
        if (bytes) this.forwardBytes.labels(dir).inc(bytes)
      } else {
        const desc = dropReasonDescription(c.reason)
        if (packets) this.dropCount.labels(desc, dir).inc(packets)
        if (bytes) this.dropBytes.labels(desc, dir).inc(bytes)
      }
    }
  }

  /** Set the endpoint gauge. */
  setEndpointCount(n: number): void {
    this.endpoints.set(n)
  }
  /** Set the identity gauge for a type (e.g. 'cluster_local', 'reserved', 'cidr'). */
  setIdentityCount(n: number, type = 'all'): void {
    this.identities.labels(type).set(n)
  }
  /** Set the policy rule gauge. */
  setPolicyCount(n: number): void {
    this.policies.set(n)
  }
  /** Count one BPF map operation. */
  recordMapOp(mapName: string, operation: string, ok: boolean): void {
    this.mapOps.labels(mapName, operation, ok ? 'success' : 'fail').inc()
  }
  /** Set a map's fill ratio (0..1). */
  setMapPressure(mapName: string, ratio: number): void {
    this.mapPressure.labels(mapName).set(ratio)
  }

  private bump(key: string, make: () => { inc(n?: number): void }, n = 1): void {
    let c = this.cache.get(key)
    if (!c) {
      c = make()
      this.cache.set(key, c)
    }
    c.inc(n)
  }

  /** FlowSink: count one flow. */
  observeFlow(flow: Flow, wireBytes: number): void {
    const verdict = verdictName(flow.verdict)
    const type = eventTypeName(flow)
    const subtype =
      type === 'Trace'
        ? kebab(observationPointName(flow.traceObservationPoint ?? 0))
        : type === 'L7'
          ? l7ProtocolName(flow)
          : ''
    this.bump(`fp|${type}|${subtype}|${verdict}`, () =>
      this.flowsProcessed.labels(type, subtype, verdict),
    )
    const dir = DIRECTIONS[flow.trafficDirection ?? 0] ?? 'UNKNOWN'
    this.countPolicyVerdict(flow, dir)
    if (flow.Type === FlowType.L3_L4) {
      if (this.datapathCounters) {
        // datapath counters come from the datapath's map at scrape time
      } else if (flow.verdict === Verdict.DROPPED) {
        const reason = flow.dropReasonDesc ?? 0
        const desc = dropReasonDescription(reason)
        this.bump(`dc|${reason}|${dir}`, () => this.dropCount.labels(desc, dir))
        if (wireBytes)
          this.bump(`db|${reason}|${dir}`, () => this.dropBytes.labels(desc, dir), wireBytes)
      } else if (flow.verdict === Verdict.FORWARDED || flow.verdict === Verdict.REDIRECTED) {
        this.bump(`fc|${dir}`, () => this.forwardCount.labels(dir))
        if (wireBytes) this.bump(`fb|${dir}`, () => this.forwardBytes.labels(dir), wireBytes)
      }
      if (flow.verdict === Verdict.DROPPED) {
        const reason = flow.dropReasonDesc ?? 0
        const proto = l4ProtocolName(flow)
        this.bump(`hd|${reason}|${proto}`, () =>
          this.hubbleDrops.labels(dropReasonName(reason), proto),
        )
      }
      if (flow.policyMatchType !== undefined) {
        const action =
          flow.verdict === Verdict.DROPPED
            ? 'deny'
            : flow.verdict === Verdict.REDIRECTED
              ? 'redirect'
              : flow.verdict === Verdict.AUDIT
                ? 'audit'
                : 'allow'
        const match = MATCH_NAMES[flow.policyMatchType] ?? String(flow.policyMatchType)
        this.bump(`pv|${dir}|${match}|${action}`, () =>
          this.policyVerdicts.labels(dir.toLowerCase(), match, action),
        )
      }
      const f = flow.l4?.TCP?.flags
      if (f) {
        const family = flow.IP?.ipVersion === IPVersion.IPv6 ? 'IPv6' : 'IPv4'
        const flag = f.SYN ? (f.ACK ? 'SYN-ACK' : 'SYN') : f.FIN ? 'FIN' : f.RST ? 'RST' : ''
        if (flag) this.bump(`tf|${flag}|${family}`, () => this.tcpFlags.labels(flag, family))
      }
    }
    const l7 = flow.l7
    if (l7) {
      const reporter = flow.trafficDirection === 2 ? 'client' : 'server'
      if (l7.http) {
        const method = l7.http.method ?? ''
        if (l7.type === 1)
          this.httpRequests.labels(method, l7.http.protocol ?? 'HTTP/1.1', reporter).inc()
        if (l7.type === 2) {
          this.httpResponses.labels(method, String(l7.http.code ?? 0), reporter).inc()
          if (l7.latencyNs) this.httpDuration.labels(method, reporter).observe(l7.latencyNs / 1e9)
        }
      } else if (l7.dns) {
        const qtypes = (l7.dns.qtypes ?? []).join(',')
        const rcode = RCODES[l7.dns.rcode ?? 0] ?? String(l7.dns.rcode)
        const ips = String(l7.dns.ips?.length ?? 0)
        if (l7.type === 2) this.dnsResponses.labels(rcode, qtypes, ips).inc()
        else this.dnsQueries.labels('', qtypes, '0').inc()
      } else if (l7.kafka) {
        this.kafkaRequests
          .labels(
            l7.kafka.topic ?? '',
            l7.kafka.apiKey ?? '',
            String(l7.kafka.errorCode ?? 0),
            reporter,
          )
          .inc()
      }
    }
  }

  /**
   * hubble_policy_verdicts_total, counted as Hubble counts it: policy verdict events (not from
   * the host identity) with their match type, and L7 records as match `l7/<protocol>`; action
   * is the verdict's name in lower case. The `policy` label names the deciding policies.
   */
  private countPolicyVerdict(flow: Flow, dir: string): void {
    const type = flow.eventType?.type
    let match: string
    if (type === 5) {
      if (flow.source?.identity === 1) return
      match = MATCH_NAMES[flow.policyMatchType ?? 0] ?? String(flow.policyMatchType)
    } else if (type === 129 && flow.l7) {
      const l7 = flow.l7
      match = `l7/${l7.http ? 'http' : l7.dns ? 'dns' : l7.kafka ? 'kafka' : ''}`
    } else return
    const deciding =
      flow.trafficDirection === 1
        ? (flow.ingressAllowedBy ?? flow.ingressDeniedBy)
        : (flow.egressAllowedBy ?? flow.egressDeniedBy)
    const policy = deciding ? policyNames(deciding) : ''
    const action = verdictName(flow.verdict).toLowerCase()
    const direction = dir.toLowerCase()
    this.bump(`hpv|${direction}|${match}|${action}|${policy}`, () =>
      this.hubblePolicyVerdicts.labels(direction, match, action, policy),
    )
  }

  /** FlowSink: count lost events. */
  observeLost(source: LostEventSource, count: number): void {
    this.lostEvents.labels(lostSourceName(source)).inc(count)
    if (source === LostEventSource.PERF_EVENT_RING_BUFFER) this.eventsLost.inc(count)
  }

  /** The exposition text (runs the collectors first). */
  async metrics(): Promise<string> {
    if (this.datapathCounters) this.readDatapathCounters(this.datapathCounters)
    for (const c of this.collectors) await c()
    return this.registry.metrics()
  }
}

/** Cilium's policy match type names in lower case, by number. */
const MATCH_NAMES = ['none', 'l3-l4', 'l3-only', 'l4-only', 'all', 'l3-proto', 'proto-only']

/** A running metrics endpoint. */
export interface MetricsServer {
  port: number
  server: Server
  close(): Promise<void>
}

/**
 * Serve `GET /metrics` on a port (0 = any free port).
 * @example
 * const m = await serveMetrics(metrics, { port: 9962 })
 */
export function serveMetrics(
  metrics: FlowMetrics,
  opts: { port?: number; host?: string } = {},
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n')
      return
    }
    metrics.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(e)}\n`),
    )
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 9962, opts.host ?? '127.0.0.1', () => {
      const addr = server.address()
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : 0,
        server,
        close: () => new Promise((r) => server.close(() => r())),
      })
    })
  })
}
