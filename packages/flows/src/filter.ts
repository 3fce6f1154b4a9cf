/**
 * Flow filters with Hubble's semantics: within one filter every set field must match (AND), the
 * values listed for one field are alternatives (OR); a list of filters matches when any filter
 * matches (OR). GetFlows returns whitelist-matching flows that no blacklist filter matches.
 */
import { parseIpBytes } from './event'
import type { Endpoint, Flow, TCPFlags } from './types'

/**
 * Hubble's FlowFilter, camelCase like the decoded protobuf. Every field of Hubble's message is
 * here: most are honoured, the few Membrane cannot evaluate ({@link REFUSED_FILTER_FIELDS}) are
 * refused with a {@link FilterError} naming them, so a filter is never silently ignored.
 */
export interface FlowFilter {
  uuid?: string[]
  /** Exact IPs or CIDRs. */
  sourceIp?: string[]
  /** `namespace/pod-name-prefix`, `pod-name-prefix` (any namespace) or `namespace/`. */
  sourcePod?: string[]
  /** DNS names, `*` matches any run of characters. */
  sourceFqdn?: string[]
  /** Label selectors: `k8s:app=web`, `app in (a,b)`, `!debug`, `env!=prod`, comma = AND. */
  sourceLabel?: string[]
  /** `namespace/service-name-prefix` like sourcePod. */
  sourceService?: string[]
  destinationIp?: string[]
  destinationPod?: string[]
  destinationFqdn?: string[]
  destinationLabel?: string[]
  destinationService?: string[]
  trafficDirection?: number[]
  verdict?: number[]
  eventType?: { type: number; matchSubType?: boolean; subType?: number }[]
  /** `404`, or a prefix with `+`: `4+` (any 4xx), `50+`. */
  httpStatusCode?: string[]
  /** tcp, udp, sctp, icmp, icmpv4, icmpv6, http, kafka, dns (case-insensitive). */
  protocol?: string[]
  /** Port numbers as strings. */
  sourcePort?: string[]
  destinationPort?: string[]
  reply?: boolean[]
  /** Regular expressions on the DNS query name. */
  dnsQuery?: string[]
  sourceIdentity?: number[]
  destinationIdentity?: number[]
  httpMethod?: string[]
  /** Regular expressions on the HTTP URL path. */
  httpPath?: string[]
  /** A flow matches one entry when every flag set in the entry is set on the flow. */
  tcpFlags?: TCPFlags[]
  /** Node name patterns, `*` wildcards. */
  nodeName?: string[]
  ipVersion?: number[]
  /** Workloads (`name`, `kind`; an empty part matches any) of the source endpoint. */
  sourceWorkload?: { name?: string; kind?: string }[]
  destinationWorkload?: { name?: string; kind?: string }[]
  /** Cluster name patterns, `*` wildcards. */
  sourceClusterName?: string[]
  destinationClusterName?: string[]
  /** DropReason numbers. */
  dropReasonDesc?: number[]
  /** Interfaces: a flow matches when every set part (index, name) is equal. */
  interface?: { index?: number; name?: string }[]
  /** Regular expressions on the full HTTP URL. */
  httpUrl?: string[]
  /** HTTP headers: a flow matches when it carries a header with this key and value. */
  httpHeader?: { key?: string; value?: string }[]
  /** Label selectors on the node's labels (like sourceLabel). */
  nodeLabels?: string[]
  /** Whether the packet was encrypted. */
  encrypted?: boolean[]
  /** Refused (see {@link REFUSED_FILTER_FIELDS}). */
  sourceIpXlated?: string[]
  traceId?: string[]
  ipTraceId?: (number | string)[]
  experimental?: { celExpression?: string[] }
}

/**
 * FlowFilter fields Membrane declares but cannot evaluate, and why: a filter that sets one is
 * refused (FilterError -> gRPC INVALID_ARGUMENT) rather than answered with every flow.
 */
export const REFUSED_FILTER_FIELDS = {
  sourceIpXlated: 'flows carry no post-translation source address (IP.source_xlated)',
  traceId: 'flows carry no trace context',
  ipTraceId: 'flows carry no IP trace id',
  'experimental.celExpression': 'there is no CEL evaluator',
} as const

/** Thrown for a filter value that cannot be parsed; `path` names it (e.g. `whitelist[0].sourceIp[1]`). */
export class FilterError extends Error {
  readonly code = 'INVALID_FILTER' as const
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`)
    this.name = 'FilterError'
  }
}

type Pred = (flow: Flow) => boolean

function anyOf<T>(values: readonly T[], build: (v: T, i: number) => Pred): Pred {
  const preds = values.map(build)
  if (preds.length === 1) return preds[0] as Pred
  return (flow) => {
    for (const p of preds) if (p(flow)) return true
    return false
  }
}

// ---------- IP / CIDR ----------

function ipMatcher(spec: string, path: string): (ip: string | undefined) => boolean {
  const slash = spec.indexOf('/')
  const addr = slash >= 0 ? spec.slice(0, slash) : spec
  let bytes: Uint8Array
  try {
    bytes = parseIpBytes(addr)
  } catch {
    throw new FilterError(path, `expected an IP address or CIDR, got '${spec}'`)
  }
  const v6 = addr.includes(':')
  const max = v6 ? 128 : 32
  const bits = slash >= 0 ? Number(spec.slice(slash + 1)) : max
  if (
    !Number.isInteger(bits) ||
    bits < 0 ||
    bits > max ||
    (slash >= 0 && !/^\d+$/.test(spec.slice(slash + 1)))
  ) {
    throw new FilterError(path, `expected a prefix length 0..${max} in '${spec}'`)
  }
  return (ip) => {
    if (!ip || ip.includes(':') !== v6) return false
    let other: Uint8Array
    try {
      other = parseIpBytes(ip)
    } catch {
      return false
    }
    const full = bits >> 3
    for (let i = 0; i < full; i++) if (other[i] !== bytes[i]) return false
    const rest = bits & 7
    if (rest === 0) return true
    const mask = (0xff << (8 - rest)) & 0xff
    return ((other[full] ?? 0) & mask) === ((bytes[full] ?? 0) & mask)
  }
}

// ---------- labels ----------

interface ParsedLabel {
  source: string
  key: string
  value: string
}

/** Split `source:key=value` (source optional, value optional). */
function parseLabel(label: string): ParsedLabel {
  const eq = label.indexOf('=')
  const head = eq >= 0 ? label.slice(0, eq) : label
  const value = eq >= 0 ? label.slice(eq + 1) : ''
  const colon = head.indexOf(':')
  return colon >= 0
    ? { source: head.slice(0, colon), key: head.slice(colon + 1), value }
    : { source: 'any', key: head, value }
}

type Requirement = {
  key: string
  source: string
  op: 'exists' | 'notexists' | 'in' | 'notin'
  values: string[]
}

function splitTopLevel(s: string): string[] {
  const out: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of s) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  out.push(cur)
  return out.map((x) => x.trim()).filter((x) => x !== '')
}

function keyOf(k: string): { source: string; key: string } {
  const colon = k.indexOf(':')
  return colon >= 0
    ? { source: k.slice(0, colon), key: k.slice(colon + 1) }
    : { source: 'any', key: k }
}

const KEY_RE = /^[A-Za-z0-9_.\-/:]+$/

/** Parse a Kubernetes-style label selector (with Cilium source prefixes) into requirements. */
export function parseLabelSelector(selector: string, path = 'selector'): Requirement[] {
  const reqs: Requirement[] = []
  const parts = splitTopLevel(selector)
  if (parts.length === 0) throw new FilterError(path, `empty label selector '${selector}'`)
  for (const part of parts) {
    const setOp = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part)
    const eqOp = setOp ? null : /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part)
    const notOp = setOp || eqOp ? null : /^!\s*(\S+)$/.exec(part)
    if (setOp) {
      const k = setOp[1] as string
      if (!KEY_RE.test(k)) throw new FilterError(path, `invalid label key '${k}' in '${selector}'`)
      const values = (setOp[3] as string).split(',').map((v) => v.trim())
      reqs.push({ ...keyOf(k), op: setOp[2] === 'in' ? 'in' : 'notin', values })
    } else if (eqOp) {
      const k = eqOp[1] as string
      if (!KEY_RE.test(k)) throw new FilterError(path, `invalid label key '${k}' in '${selector}'`)
      reqs.push({ ...keyOf(k), op: eqOp[2] === '!=' ? 'notin' : 'in', values: [eqOp[3] as string] })
    } else if (notOp) {
      reqs.push({ ...keyOf(notOp[1] as string), op: 'notexists', values: [] })
    } else if (KEY_RE.test(part)) {
      reqs.push({ ...keyOf(part), op: 'exists', values: [] })
    } else {
      throw new FilterError(path, `cannot parse label requirement '${part}' in '${selector}'`)
    }
  }
  return reqs
}

/** True when a label set satisfies every requirement of a parsed selector. */
export function labelsMatch(
  labels: readonly string[] | undefined,
  reqs: readonly Requirement[],
): boolean {
  const parsed = (labels ?? []).map(parseLabel)
  for (const r of reqs) {
    const hits = parsed.filter(
      (l) => l.key === r.key && (r.source === 'any' || l.source === r.source),
    )
    switch (r.op) {
      case 'exists':
        if (hits.length === 0) return false
        break
      case 'notexists':
        if (hits.length > 0) return false
        break
      case 'in':
        if (!hits.some((h) => r.values.includes(h.value))) return false
        break
      case 'notin':
        if (hits.some((h) => r.values.includes(h.value))) return false
        break
    }
  }
  return true
}

// ---------- helpers ----------

function globRegExp(pattern: string): RegExp {
  const esc = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
  return new RegExp(`^${esc}$`, 'i')
}

function regex(spec: string, path: string): RegExp {
  try {
    return new RegExp(spec)
  } catch (e) {
    throw new FilterError(path, `invalid regular expression '${spec}': ${(e as Error).message}`)
  }
}

function nsPrefixMatcher(
  spec: string,
): (ns: string | undefined, name: string | undefined) => boolean {
  const slash = spec.indexOf('/')
  if (slash < 0) return (_ns, name) => !!name && name.startsWith(spec)
  const wantNs = spec.slice(0, slash)
  const prefix = spec.slice(slash + 1)
  return (ns, name) => ns === wantNs && (prefix === '' || (!!name && name.startsWith(prefix)))
}

function ports(flow: Flow): { s: number; d: number } | undefined {
  const l4 = flow.l4
  const p = l4?.TCP ?? l4?.UDP ?? l4?.SCTP
  return p ? { s: p.sourcePort, d: p.destinationPort } : undefined
}

function portMatcher(spec: string, path: string): number {
  if (!/^\d{1,5}$/.test(spec) || Number(spec) > 65535) {
    throw new FilterError(path, `expected a port number 0..65535, got '${spec}'`)
  }
  return Number(spec)
}

const PROTOCOLS = [
  'tcp',
  'udp',
  'sctp',
  'icmp',
  'icmpv4',
  'icmpv6',
  'http',
  'kafka',
  'dns',
] as const

function protocolPred(spec: string, path: string): Pred {
  const p = spec.toLowerCase()
  switch (p) {
    case 'tcp':
      return (f) => !!f.l4?.TCP
    case 'udp':
      return (f) => !!f.l4?.UDP
    case 'sctp':
      return (f) => !!f.l4?.SCTP
    case 'icmp':
      return (f) => !!(f.l4?.ICMPv4 || f.l4?.ICMPv6)
    case 'icmpv4':
      return (f) => !!f.l4?.ICMPv4
    case 'icmpv6':
      return (f) => !!f.l4?.ICMPv6
    case 'http':
      return (f) => !!f.l7?.http
    case 'kafka':
      return (f) => !!f.l7?.kafka
    case 'dns':
      return (f) => !!f.l7?.dns
    default:
      throw new FilterError(
        path,
        `unknown protocol '${spec}' (expected one of ${PROTOCOLS.join(', ')})`,
      )
  }
}

function statusPred(spec: string, path: string): (code: number) => boolean {
  if (/^\d{3}$/.test(spec)) return (c) => c === Number(spec)
  if (/^\d{1,2}\+$/.test(spec)) {
    const prefix = spec.slice(0, -1)
    return (c) => c >= 100 && c <= 999 && String(c).startsWith(prefix)
  }
  throw new FilterError(path, `expected an HTTP status like '404' or '4+', got '${spec}'`)
}

const side = (f: Flow, src: boolean): Endpoint | undefined => (src ? f.source : f.destination)
const sideIp = (f: Flow, src: boolean) => (src ? f.IP?.source : f.IP?.destination)

function endpointPreds(filter: FlowFilter, src: boolean, path: string): Pred[] {
  const p = src ? 'source' : 'destination'
  const preds: Pred[] = []
  const ip = src ? filter.sourceIp : filter.destinationIp
  if (ip?.length) {
    const ms = ip.map((s, i) => ipMatcher(s, `${path}.${p}Ip[${i}]`))
    preds.push((f) => ms.some((m) => m(sideIp(f, src))))
  }
  const pod = src ? filter.sourcePod : filter.destinationPod
  if (pod?.length) {
    const ms = pod.map(nsPrefixMatcher)
    preds.push((f) => {
      const ep = side(f, src)
      return ms.some((m) => m(ep?.namespace, ep?.podName))
    })
  }
  const fqdn = src ? filter.sourceFqdn : filter.destinationFqdn
  if (fqdn?.length) {
    const res = fqdn.map(globRegExp)
    preds.push((f) => {
      const names = (src ? f.sourceNames : f.destinationNames) ?? []
      return res.some((r) => names.some((n) => r.test(n.replace(/\.$/, ''))))
    })
  }
  const label = src ? filter.sourceLabel : filter.destinationLabel
  if (label?.length) {
    const sels = label.map((s, i) => parseLabelSelector(s, `${path}.${p}Label[${i}]`))
    preds.push((f) => sels.some((r) => labelsMatch(side(f, src)?.labels, r)))
  }
  const svc = src ? filter.sourceService : filter.destinationService
  if (svc?.length) {
    const ms = svc.map(nsPrefixMatcher)
    preds.push((f) => {
      const s = src ? f.sourceService : f.destinationService
      return !!s && ms.some((m) => m(s.namespace, s.name))
    })
  }
  const id = src ? filter.sourceIdentity : filter.destinationIdentity
  if (id?.length) {
    const set = new Set(id)
    preds.push((f) => set.has(side(f, src)?.identity ?? 0))
  }
  const wl = src ? filter.sourceWorkload : filter.destinationWorkload
  if (wl?.length) {
    preds.push((f) => {
      const ws = side(f, src)?.workloads ?? []
      return wl.some((w) =>
        ws.some((x) => (!w.name || w.name === x.name) && (!w.kind || w.kind === x.kind)),
      )
    })
  }
  const cluster = src ? filter.sourceClusterName : filter.destinationClusterName
  if (cluster?.length) {
    const res = cluster.map(globRegExp)
    preds.push((f) => {
      const c = side(f, src)?.clusterName
      return !!c && res.some((r) => r.test(c))
    })
  }
  const port = src ? filter.sourcePort : filter.destinationPort
  if (port?.length) {
    const set = new Set(port.map((s, i) => portMatcher(s, `${path}.${p}Port[${i}]`)))
    preds.push((f) => {
      const ps = ports(f)
      return !!ps && set.has(src ? ps.s : ps.d)
    })
  }
  return preds
}

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR', 'NS'] as const

/**
 * Compile one filter into a predicate (AND across fields, OR within a field).
 * @throws FilterError naming `path` and the field for a value that does not parse.
 */
export function compileFilter(filter: FlowFilter, path = 'filter'): (flow: Flow) => boolean {
  for (const [field, why] of Object.entries(REFUSED_FILTER_FIELDS)) {
    const v =
      field === 'experimental.celExpression'
        ? filter.experimental?.celExpression
        : filter[field as keyof FlowFilter]
    if (Array.isArray(v) && v.length > 0)
      throw new FilterError(`${path}.${field}`, `not supported: ${why}`)
  }
  const preds: Pred[] = [
    ...endpointPreds(filter, true, path),
    ...endpointPreds(filter, false, path),
  ]
  if (filter.uuid?.length) {
    const set = new Set(filter.uuid)
    preds.push((f) => !!f.uuid && set.has(f.uuid))
  }
  if (filter.trafficDirection?.length) {
    const set = new Set(filter.trafficDirection)
    preds.push((f) => set.has(f.trafficDirection ?? 0))
  }
  if (filter.verdict?.length) {
    const set = new Set(filter.verdict)
    preds.push((f) => set.has(f.verdict))
  }
  if (filter.eventType?.length) {
    const ets = filter.eventType
    preds.push((f) =>
      ets.some(
        (e) =>
          f.eventType?.type === e.type &&
          (!e.matchSubType || f.eventType?.subType === (e.subType ?? 0)),
      ),
    )
  }
  if (filter.httpStatusCode?.length) {
    const ms = filter.httpStatusCode.map((s, i) => statusPred(s, `${path}.httpStatusCode[${i}]`))
    preds.push((f) => {
      const code = f.l7?.http?.code
      return !!code && ms.some((m) => m(code))
    })
  }
  if (filter.protocol?.length) {
    preds.push(anyOf(filter.protocol, (s, i) => protocolPred(s, `${path}.protocol[${i}]`)))
  }
  if (filter.reply?.length) {
    const set = new Set(filter.reply)
    preds.push((f) => f.isReply !== undefined && set.has(f.isReply.value))
  }
  if (filter.dnsQuery?.length) {
    const res = filter.dnsQuery.map((s, i) => regex(s, `${path}.dnsQuery[${i}]`))
    preds.push((f) => {
      const q = f.l7?.dns?.query
      return q !== undefined && res.some((r) => r.test(q))
    })
  }
  if (filter.httpMethod?.length) {
    const set = new Set(filter.httpMethod.map((m) => m.toUpperCase()))
    preds.push((f) => {
      const m = f.l7?.http?.method
      return !!m && set.has(m.toUpperCase())
    })
  }
  if (filter.httpPath?.length) {
    const res = filter.httpPath.map((s, i) => regex(s, `${path}.httpPath[${i}]`))
    preds.push((f) => {
      const url = f.l7?.http?.url
      if (url === undefined) return false
      let p = url
      try {
        p = new URL(url, 'http://x').pathname
      } catch {}
      return res.some((r) => r.test(p))
    })
  }
  if (filter.tcpFlags?.length) {
    const wants = filter.tcpFlags.map((w) => TCP_FLAG_NAMES.filter((n) => w[n]))
    preds.push((f) => {
      const fl = f.l4?.TCP?.flags
      return !!fl && wants.some((w) => w.every((n) => fl[n]))
    })
  }
  if (filter.nodeName?.length) {
    const res = filter.nodeName.map(globRegExp)
    preds.push((f) => res.some((r) => r.test(f.nodeName ?? '')))
  }
  if (filter.ipVersion?.length) {
    const set = new Set(filter.ipVersion)
    preds.push((f) => set.has(f.IP?.ipVersion ?? 0))
  }
  if (filter.dropReasonDesc?.length) {
    const set = new Set(filter.dropReasonDesc)
    preds.push((f) => set.has(f.dropReasonDesc ?? 0))
  }
  if (filter.interface?.length) {
    const want = filter.interface
    preds.push((f) => {
      const i = f.interface
      return (
        !!i && want.some((w) => (!w.index || w.index === i.index) && (!w.name || w.name === i.name))
      )
    })
  }
  if (filter.httpUrl?.length) {
    const res = filter.httpUrl.map((s, i) => regex(s, `${path}.httpUrl[${i}]`))
    preds.push((f) => {
      const url = f.l7?.http?.url
      return url !== undefined && res.some((r) => r.test(url))
    })
  }
  if (filter.httpHeader?.length) {
    const want = filter.httpHeader
    preds.push((f) => {
      const hs = f.l7?.http?.headers ?? []
      return want.some((w) =>
        hs.some(
          (h) =>
            (!w.key || h.key.toLowerCase() === w.key.toLowerCase()) &&
            (!w.value || h.value === w.value),
        ),
      )
    })
  }
  if (filter.nodeLabels?.length) {
    const sels = filter.nodeLabels.map((s, i) => parseLabelSelector(s, `${path}.nodeLabels[${i}]`))
    preds.push((f) => sels.some((r) => labelsMatch(f.nodeLabels, r)))
  }
  if (filter.encrypted?.length) {
    const set = new Set(filter.encrypted)
    preds.push((f) => set.has(f.IP?.encrypted ?? false))
  }
  if (preds.length === 0) return () => true
  if (preds.length === 1) return preds[0] as Pred
  return (flow) => {
    for (const p of preds) if (!p(flow)) return false
    return true
  }
}

/**
 * Compile a whitelist and blacklist: a flow passes when the whitelist is empty or any whitelist
 * filter matches, and no blacklist filter matches.
 */
export function compileFilters(
  whitelist: readonly FlowFilter[] = [],
  blacklist: readonly FlowFilter[] = [],
): (flow: Flow) => boolean {
  const w = whitelist.map((f, i) => compileFilter(f, `whitelist[${i}]`))
  const b = blacklist.map((f, i) => compileFilter(f, `blacklist[${i}]`))
  return (flow) => {
    if (w.length > 0 && !w.some((p) => p(flow))) return false
    for (const p of b) if (p(flow)) return false
    return true
  }
}
