/** Printing flows the way `hubble observe` does: compact lines, JSON (protojson-style), table. */
import protobuf from 'protobufjs'
import { attributionText } from './attribution'
import { dropReasonDescription } from './drop-reasons'
import {
  eventTypeName,
  kebab,
  l7TypeName,
  lostSourceName,
  observationPointName,
  tcpFlagsText,
  trafficDirectionName,
  verdictName,
} from './names'
import { encodeFlow, PROTO_FILES } from './proto'
import { type Endpoint, type Flow, type FlowsResponse, type Timestamp, Verdict } from './types'

/** Output formats of {@link formatResponse}. */
export type OutputFormat = 'compact' | 'json' | 'table' | 'dict'

const ANSI = {
  reset: '\x1b[0m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  cyan: '\x1b[36m',
  dim: '\x1b[2m',
} as const

function paint(text: string, color: keyof typeof ANSI, on: boolean): string {
  return on ? `${ANSI[color]}${text}${ANSI.reset}` : text
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** 'Nov 21 20:30:01.123' in UTC. */
function compactTime(t: Timestamp | undefined): string {
  if (!t) return '(no time)'
  const d = new Date(t.seconds * 1000 + Math.floor(t.nanos / 1e6))
  const p = (n: number, w = 2) => String(n).padStart(w, '0')
  return `${MONTHS[d.getUTCMonth()]} ${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`
}

/** RFC 3339 with nanoseconds, as protojson prints a Timestamp. */
function rfc3339(t: Timestamp): string {
  const d = new Date(t.seconds * 1000)
  const base = d.toISOString().slice(0, 19)
  const nanos = t.nanos ? `.${String(t.nanos).padStart(9, '0').replace(/0+$/, '')}` : ''
  return `${base}${nanos}Z`
}

function port(flow: Flow, src: boolean): number | undefined {
  const p = flow.l4?.TCP ?? flow.l4?.UDP ?? flow.l4?.SCTP
  if (!p) return undefined
  return src ? p.sourcePort : p.destinationPort
}

/** Hubble-style endpoint text: `ns/pod:port (ID:identity)` or `ip:port (world)`. */
function endpointText(flow: Flow, src: boolean): string {
  const ep: Endpoint | undefined = src ? flow.source : flow.destination
  const ip = src ? flow.IP?.source : flow.IP?.destination
  const pt = port(flow, src)
  const host = ep?.podName ? `${ep.namespace ? `${ep.namespace}/` : ''}${ep.podName}` : (ip ?? '?')
  const hostPort =
    pt !== undefined
      ? host.includes(':') && !ep?.podName
        ? `[${host}]:${pt}`
        : `${host}:${pt}`
      : host
  const svc = src ? flow.sourceService : flow.destinationService
  const reserved = ep?.labels?.find((l) => l.startsWith('reserved:'))
  const ident = reserved
    ? `(${reserved.slice('reserved:'.length)})`
    : ep?.identity
      ? `(ID:${ep.identity})`
      : ''
  const names = (src ? flow.sourceNames : flow.destinationNames)?.[0]
  return [
    hostPort,
    svc ? `[svc ${svc.namespace ? `${svc.namespace}/` : ''}${svc.name}]` : '',
    names ? `(${names})` : '',
    ident,
  ]
    .filter(Boolean)
    .join(' ')
}

/** The type column: observation point, drop reason, policy verdict, L7 kind. */
function typeText(flow: Flow): string {
  const type = eventTypeName(flow)
  switch (type) {
    case 'Trace':
      return kebab(observationPointName(flow.traceObservationPoint ?? 0))
    case 'Drop':
      return dropReasonDescription(flow.dropReasonDesc ?? 0)
    case 'PolicyVerdict': {
      const m = ['none', 'L3-L4', 'L3-Only', 'L4-Only', 'all', 'L3-Proto', 'Proto-Only'][
        flow.policyMatchType ?? 0
      ]
      return `policy-verdict:${m ?? flow.policyMatchType} ${trafficDirectionName(flow.trafficDirection ?? 0)}`
    }
    case 'L7': {
      const proto = flow.l7?.http ? 'http' : flow.l7?.dns ? 'dns' : flow.l7?.kafka ? 'kafka' : 'l7'
      return `${proto}-${kebab(l7TypeName(flow.l7?.type ?? 0)).replace('unknown-l7-type', 'sample')}`
    }
    case 'SockTrace':
      return 'sock-xlate'
    default:
      return type.toLowerCase()
  }
}

/** The summary column: TCP flags, ICMP type, or the L7 request/response line. */
function summaryText(flow: Flow): string {
  const l7 = flow.l7
  if (l7?.http) {
    const h = l7.http
    const lat = l7.latencyNs ? ` ${Math.round(l7.latencyNs / 1e6)}ms` : ''
    return l7.type === 2
      ? `${h.protocol ?? 'HTTP/1.1'} ${h.code ?? 0}${lat} (${h.method ?? ''} ${h.url ?? ''})`
      : `${h.protocol ?? 'HTTP/1.1'} ${h.method ?? ''} ${h.url ?? ''}`
  }
  if (l7?.dns) {
    const d = l7.dns
    const q = `${d.query ?? ''} ${(d.qtypes ?? []).join(',')}`.trim()
    return l7.type === 2
      ? `DNS Answer "${(d.ips ?? []).join(',')}" TTL: ${d.ttl ?? 0} (Query ${q})`
      : `DNS Query ${q}`
  }
  if (l7?.kafka) {
    const k = l7.kafka
    return `Kafka ${l7.type === 2 ? 'response' : 'request'} ${k.apiKey ?? ''} topic '${k.topic ?? ''}' error ${k.errorCode ?? 0}`
  }
  const l4 = flow.l4
  if (l4?.TCP) return `TCP Flags: ${tcpFlagsText(l4.TCP.flags) || 'none'}`
  if (l4?.ICMPv4) return `ICMPv4 type ${l4.ICMPv4.type} code ${l4.ICMPv4.code}`
  if (l4?.ICMPv6) return `ICMPv6 type ${l4.ICMPv6.type} code ${l4.ICMPv6.code}`
  if (l4?.UDP) return 'UDP'
  if (l4?.SCTP) return 'SCTP'
  return ''
}

/** The verdict as printed: policy verdicts read ALLOWED / DENIED, like hubble observe. */
function verdictText(flow: Flow): string {
  if (eventTypeName(flow) === 'PolicyVerdict') {
    if (flow.verdict === Verdict.FORWARDED) return 'ALLOWED'
    if (flow.verdict === Verdict.DROPPED) return 'DENIED'
  }
  return verdictName(flow.verdict)
}

function verdictColor(v: number): keyof typeof ANSI {
  if (v === Verdict.FORWARDED || v === Verdict.TRANSLATED) return 'green'
  if (v === Verdict.DROPPED || v === Verdict.ERROR) return 'red'
  return 'yellow'
}

/** One compact line (no trailing newline). */
export function compactLine(
  flow: Flow,
  opts: { color?: boolean; nodeName?: boolean } = {},
): string {
  const c = opts.color ?? false
  const reply = flow.isReply?.value === true
  const src = paint(endpointText(flow, true), 'cyan', c)
  const dst = paint(endpointText(flow, false), 'cyan', c)
  const arrow = reply ? `${dst} <- ${src}` : `${src} -> ${dst}`
  const node = opts.nodeName && flow.nodeName ? ` [${flow.nodeName}]` : ''
  const summary = summaryText(flow)
  const by = attributionText(flow)
  return `${compactTime(flow.time)}${node}: ${arrow} ${typeText(flow)} ${paint(verdictText(flow), verdictColor(flow.verdict), c)}${summary ? ` (${summary})` : ''}${by ? ` [${by}]` : ''}`
}

let jsonFlowType: protobuf.Type | undefined

/**
 * A flow as protojson-style JSON with the .proto field names (what `hubble observe -o json`
 * prints): enums by name, 64-bit integers as strings, times in RFC 3339.
 */
export function flowToJSON(flow: Flow): Record<string, unknown> {
  if (!jsonFlowType) {
    const root = new protobuf.Root()
    root.resolvePath = (_o, target) =>
      target.startsWith('google/protobuf/') ? target : PROTO_FILES.flow
    root.loadSync(PROTO_FILES.flow, { keepCase: true })
    jsonFlowType = root.lookupType('flow.Flow')
  }
  const t = jsonFlowType
  const obj = t.toObject(t.decode(encodeFlow(flow)), { enums: String, longs: String }) as Record<
    string,
    unknown
  >
  if (flow.time) obj.time = rfc3339(flow.time)
  if (flow.isReply) obj.is_reply = flow.isReply.value
  if (flow.l7?.latencyNs !== undefined && obj.l7)
    (obj.l7 as Record<string, unknown>).latency_ns = String(flow.l7.latencyNs)
  obj.Summary = summaryText(flow)
  return obj
}

/** A GetFlowsResponse as JSON (`{"flow": ..., "node_name": ..., "time": ...}`). */
function responseToJSON(r: FlowsResponse): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (r.flow) out.flow = flowToJSON(r.flow)
  if (r.lostEvents) {
    out.lost_events = {
      source: lostSourceName(r.lostEvents.source),
      num_events_lost: String(r.lostEvents.numEventsLost),
      ...(r.lostEvents.cpu ? { cpu: r.lostEvents.cpu.value } : {}),
    }
  }
  if (r.nodeName) out.node_name = r.nodeName
  if (r.time) out.time = rfc3339(r.time)
  return out
}

/** Column widths of the table format. */
const TABLE_COLUMNS = [
  ['TIMESTAMP', 19],
  ['SOURCE', 36],
  ['DESTINATION', 36],
  ['TYPE', 20],
  ['VERDICT', 10],
  ['SUMMARY', 0],
] as const

/** The table header line. */
export function tableHeader(): string {
  return TABLE_COLUMNS.map(([h, w]) => (w ? h.padEnd(w) : h)).join(' ')
}

/** One table row. */
function tableRow(flow: Flow, opts: { color?: boolean } = {}): string {
  const cells = [
    compactTime(flow.time),
    endpointText(flow, true),
    endpointText(flow, false),
    typeText(flow),
    verdictText(flow),
    [summaryText(flow), attributionText(flow)].filter(Boolean).join(' '),
  ]
  return cells
    .map((cell, i) => {
      const w = TABLE_COLUMNS[i]?.[1] ?? 0
      const text = w ? cell.padEnd(w) : cell
      return i === 4 && opts.color ? paint(text, verdictColor(flow.verdict), true) : text
    })
    .join(' ')
}

/** One flow as a `key: value` block (hubble observe -o dict), ending with a separator line. */
function dictBlock(flow: Flow, opts: { color?: boolean; nodeName?: boolean } = {}): string {
  const rows: [string, string][] = [['TIMESTAMP', compactTime(flow.time)]]
  if (opts.nodeName && flow.nodeName) rows.push(['NODE', flow.nodeName])
  rows.push(
    ['SOURCE', endpointText(flow, true)],
    ['DESTINATION', endpointText(flow, false)],
    ['TYPE', typeText(flow)],
    ['VERDICT', paint(verdictText(flow), verdictColor(flow.verdict), opts.color ?? false)],
    ['SUMMARY', summaryText(flow)],
  )
  const by = attributionText(flow)
  if (by) rows.push(['POLICIES', by])
  return `${rows.map(([k, v]) => `${k.padStart(11)}: ${v}`).join('\n')}\n------------`
}

/**
 * Format one response in the given output format (no trailing newline). Loss notices print as
 * `EVENTS LOST: <source> <count>` in compact and table formats.
 */
export function formatResponse(
  r: FlowsResponse,
  format: OutputFormat,
  opts: { color?: boolean; nodeName?: boolean } = {},
): string {
  if (format === 'json') return JSON.stringify(responseToJSON(r))
  if (r.lostEvents) {
    const text = `EVENTS LOST: ${lostSourceName(r.lostEvents.source)} ${r.lostEvents.numEventsLost}`
    return paint(text, 'yellow', opts.color ?? false)
  }
  if (!r.flow) return ''
  if (format === 'dict') return dictBlock(r.flow, opts)
  return format === 'table' ? tableRow(r.flow, opts) : compactLine(r.flow, opts)
}
