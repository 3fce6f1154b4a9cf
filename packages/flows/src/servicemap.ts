/** A service map from flows: who talks to whom, with verdicts, as data and as an SVG picture. */
import { l4ProtocolName } from './names'
import {
  type Endpoint,
  type Flow,
  L7FlowType,
  type Service,
  TraceObservationPoint,
  Verdict,
} from './types'

/** A workload (or service) on the map. */
export interface MapNode {
  id: string
  label: string
  namespace?: string
  /**
   * 'workload' (pods), 'service' (a destination reached through a service: its backends fold
   * into it), 'reserved' (world, host, ...) or 'ip' (unknown address).
   */
  kind: 'workload' | 'service' | 'reserved' | 'ip'
}

/** How many L7 requests of one kind an edge carried, by verdict. */
export interface MapL7 {
  /** 'HTTP', 'DNS' or 'Kafka'. */
  protocol: string
  /** 'POST /v1/request-landing', 'example.com.', 'produce deathstar-plans' ... */
  request: string
  allowed: number
  denied: number
  audited: number
}

/** A policy that decided some of an edge's connections or requests. */
export interface MapPolicy {
  verdict: 'allowed' | 'denied' | 'audit'
  name: string
  namespace?: string
  kind?: string
}

/**
 * A directed edge: the connections from one workload to one destination service (or workload),
 * with their verdicts. Counts are connections (all the events of one connection — trace, policy
 * verdict, drop, retransmitted SYNs, replies — count once, with the strongest verdict seen:
 * denied over audit over allowed) and, in `l7`, requests.
 */
export interface MapEdge {
  from: string
  to: string
  /** 'TCP/80', 'UDP/53', 'ICMPv4' ... (sorted). */
  ports: string[]
  allowed: number
  denied: number
  audited: number
  /** L7 requests seen by the proxy serving this edge (responses are not counted again). */
  l7: MapL7[]
  /** The policies named by the flows as deciding (Hubble's *_allowed_by / *_denied_by). */
  policies: MapPolicy[]
  /** Connections and requests whose flows named no deciding policy. */
  unattributed: number
}

/** The service map. */
export interface ServiceMap {
  nodes: MapNode[]
  edges: MapEdge[]
}

const HASH_SUFFIX = /-[a-z0-9]{6,10}-[a-z0-9]{5}$|-[a-z0-9]{5}$/
const APP_KEYS = ['k8s:app.kubernetes.io/name=', 'k8s:app=', 'k8s:k8s-app=', 'k8s:name=']

function workload(ep: Endpoint | undefined, ip: string | undefined): MapNode {
  const labels = ep?.labels ?? []
  const ns = ep?.namespace
  for (const key of APP_KEYS) {
    const l = labels.find((x) => x.startsWith(key))
    if (l) {
      const name = l.slice(key.length)
      return {
        id: `${ns ?? ''}/${name}`,
        label: ns ? `${ns}/${name}` : name,
        ...(ns ? { namespace: ns } : {}),
        kind: 'workload',
      }
    }
  }
  if (ep?.podName) {
    const name = ep.podName.replace(HASH_SUFFIX, '')
    return {
      id: `${ns ?? ''}/${name}`,
      label: ns ? `${ns}/${name}` : name,
      ...(ns ? { namespace: ns } : {}),
      kind: 'workload',
    }
  }
  const reserved = labels.find((l) => l.startsWith('reserved:'))
  if (reserved) {
    const name = reserved.slice('reserved:'.length)
    return { id: `reserved:${name}`, label: name, kind: 'reserved' }
  }
  return { id: `ip:${ip ?? '?'}`, label: ip ?? '?', kind: 'ip' }
}

function serviceNode(svc: Service): MapNode {
  const ns = svc.namespace
  return {
    id: `service:${ns ?? ''}/${svc.name}`,
    label: ns ? `${ns}/${svc.name}` : svc.name,
    ...(ns ? { namespace: ns } : {}),
    kind: 'service',
  }
}

type Verdictish = 'allowed' | 'denied' | 'audit'
const RANK: Record<Verdictish, number> = { allowed: 0, audit: 1, denied: 2 }

function verdictOf(flow: Flow): Verdictish {
  if (flow.verdict === Verdict.DROPPED || flow.verdict === Verdict.ERROR) return 'denied'
  if (flow.verdict === Verdict.AUDIT) return 'audit'
  return 'allowed'
}

function ports(flow: Flow): { sourcePort: number; destinationPort: number } | undefined {
  return flow.l4?.TCP ?? flow.l4?.UDP ?? flow.l4?.SCTP
}

/** The request side's port label ('TCP/80'); replies are turned around. */
function portLabel(flow: Flow): string {
  const proto = l4ProtocolName(flow)
  const p = ports(flow)
  if (!p) return proto || 'IP'
  return `${proto}/${flow.isReply?.value ? p.sourcePort : p.destinationPort}`
}

/** One key for every event of a connection, whichever direction the packet went. */
function connectionKey(flow: Flow): string | undefined {
  const ip = flow.IP
  if (!ip) return undefined
  const p = ports(flow)
  let a = `${ip.source} ${p?.sourcePort ?? ''}`
  let b = `${ip.destination} ${p?.destinationPort ?? ''}`
  if (flow.isReply?.value) [a, b] = [b, a]
  return `${l4ProtocolName(flow)}|${a}|${b}`
}

const isHost = (ep: Endpoint | undefined) => ep?.labels?.includes('reserved:host') ?? false

/** The policies a flow names as deciding its verdict, with the verdict they decided. */
function decidingPolicies(flow: Flow, v: Verdictish): MapPolicy[] {
  const lists =
    v === 'allowed'
      ? [flow.egressAllowedBy, flow.ingressAllowedBy]
      : [flow.egressDeniedBy, flow.ingressDeniedBy]
  const out: MapPolicy[] = []
  for (const list of lists)
    for (const p of list ?? [])
      out.push({
        verdict: v,
        name: p.name,
        ...(p.namespace ? { namespace: p.namespace } : {}),
        ...(p.kind ? { kind: p.kind } : {}),
      })
  return out
}

function l7Request(flow: Flow): { protocol: string; request: string } | undefined {
  const l7 = flow.l7
  if (!l7) return undefined
  if (l7.http) {
    let path = l7.http.url ?? ''
    try {
      path = new URL(path, 'http://x').pathname
    } catch {}
    return { protocol: 'HTTP', request: `${l7.http.method ?? ''} ${path}`.trim() }
  }
  if (l7.dns) return { protocol: 'DNS', request: l7.dns.query ?? '' }
  if (l7.kafka)
    return {
      protocol: 'Kafka',
      request: `${l7.kafka.apiKey ?? ''} ${l7.kafka.topic ?? ''}`.trim(),
    }
  return undefined
}

interface EdgeState {
  edge: MapEdge
  ports: Set<string>
  l7: Map<string, MapL7>
  policies: Map<string, MapPolicy>
}

interface Connection {
  edge: EdgeState
  verdict: Verdictish
  attributed: boolean
}

/**
 * Connections remembered (the least recently seen forgotten first); a forgotten one that shows
 * again counts again, and so does a new connection that reuses a remembered 5-tuple.
 */
const MAX_CONNECTIONS = 65_536

/**
 * Builds a service map incrementally: one edge per source workload and destination service (or
 * workload), counting connections and L7 requests, not events. Memory grows with the number of
 * workload pairs plus at most {@link MAX_CONNECTIONS} remembered connections.
 *
 * - Every event of one connection (trace points, policy verdicts, drops, retransmissions, replies)
 *   counts once, with the strongest verdict seen: denied, then audit, then allowed.
 * - Backends reached through a service fold into the service's node.
 * - The L7 proxy's hops (the redirect to the proxy, the proxy's own connection to the
 *   destination) are not nodes or connections of their own: the proxy serves the client's edge,
 *   whose L7 requests it reports. A denial on the proxy's upstream leg still counts, on the edge
 *   of the client's identity when that is known.
 */
export class ServiceMapBuilder {
  private readonly nodes = new Map<string, MapNode>()
  private readonly edges = new Map<string, EdgeState>()
  private readonly connections = new Map<string, Connection>()
  /** A backend workload's service, learnt from flows that name it. */
  private readonly serviceOf = new Map<string, MapNode>()
  /** A security identity's workload, learnt from flows (to place the proxy's upstream leg). */
  private readonly byIdentity = new Map<number, MapNode>()

  /** Count one flow. */
  add(flow: Flow): void {
    if (
      flow.traceObservationPoint === TraceObservationPoint.TO_PROXY ||
      flow.traceObservationPoint === TraceObservationPoint.FROM_PROXY
    )
      return
    const reply = flow.isReply?.value ?? false
    const client = reply ? flow.destination : flow.source
    const server = reply ? flow.source : flow.destination
    const clientIp = reply ? flow.IP?.destination : flow.IP?.source
    const serverIp = reply ? flow.IP?.source : flow.IP?.destination
    const verdict = verdictOf(flow)
    let a = workload(client, clientIp)
    if (flow.proxyPort && isHost(client) && !flow.l7) {
      // The proxy's upstream leg: only a denial says something the client's edge does not.
      const served =
        client?.identity !== undefined ? this.byIdentity.get(client.identity) : undefined
      if (verdict === 'allowed' || !served) return
      a = served
    }
    let b = workload(server, serverIp)
    if (b.kind === 'workload') {
      if (!reply && flow.destinationService?.name)
        this.serviceOf.set(b.id, serviceNode(flow.destinationService))
      b = this.serviceOf.get(b.id) ?? b
    }
    for (const [n, ep] of [
      [a, client],
      [b, server],
    ] as const)
      if (n.kind === 'workload' && ep?.identity !== undefined) this.byIdentity.set(ep.identity, n)

    const key = connectionKey(flow)
    let conn = key === undefined ? undefined : this.connections.get(key)
    if (conn && key !== undefined) {
      // Least recently seen is forgotten first.
      this.connections.delete(key)
      this.connections.set(key, conn)
    }
    const edge = conn?.edge ?? this.edge(a, b)
    const policies = decidingPolicies(flow, verdict)
    for (const p of policies)
      edge.policies.set(`${p.verdict}\u0000${p.kind}\u0000${p.namespace}\u0000${p.name}`, p)
    const e = edge.edge

    const req = flow.l7 ? l7Request(flow) : undefined
    if (req) {
      if (flow.l7?.type === L7FlowType.RESPONSE) return // its request was counted
      const k = `${req.protocol} ${req.request}`
      let r = edge.l7.get(k)
      if (!r) {
        r = { ...req, allowed: 0, denied: 0, audited: 0 }
        edge.l7.set(k, r)
      }
      r[COUNTER[verdict]]++
      if (policies.length === 0) e.unattributed++
      return
    }
    if (flow.l7) return // an L7 record of an unknown protocol: nothing to count

    edge.ports.add(portLabel(flow))
    if (!conn) {
      conn = { edge, verdict, attributed: policies.length > 0 }
      e[COUNTER[verdict]]++
      if (!conn.attributed) e.unattributed++
      if (key !== undefined) {
        this.connections.set(key, conn)
        if (this.connections.size > MAX_CONNECTIONS) {
          const oldest = this.connections.keys().next().value
          if (oldest !== undefined) this.connections.delete(oldest)
        }
      }
      return
    }
    if (RANK[verdict] > RANK[conn.verdict]) {
      e[COUNTER[conn.verdict]]--
      e[COUNTER[verdict]]++
      conn.verdict = verdict
      // The stronger verdict's deciders are the ones that count.
      if (conn.attributed && policies.length === 0) {
        conn.attributed = false
        e.unattributed++
      }
    }
    if (!conn.attributed && policies.length > 0 && RANK[verdict] === RANK[conn.verdict]) {
      conn.attributed = true
      e.unattributed--
    }
  }

  private edge(a: MapNode, b: MapNode): EdgeState {
    this.nodes.set(a.id, a)
    this.nodes.set(b.id, b)
    const key = `${a.id}\u0000${b.id}`
    let e = this.edges.get(key)
    if (!e) {
      e = {
        edge: {
          from: a.id,
          to: b.id,
          ports: [],
          allowed: 0,
          denied: 0,
          audited: 0,
          l7: [],
          policies: [],
          unattributed: 0,
        },
        ports: new Set(),
        l7: new Map(),
        policies: new Map(),
      }
      this.edges.set(key, e)
    }
    return e
  }

  /** The map so far (sorted, a snapshot). */
  map(): ServiceMap {
    return {
      nodes: [...this.nodes.values()].sort((x, y) => x.id.localeCompare(y.id)),
      edges: [...this.edges.values()]
        .map((s) => ({
          ...s.edge,
          ports: [...s.ports].sort(),
          l7: [...s.l7.values()]
            .map((r) => ({ ...r }))
            .sort((x, y) =>
              `${x.protocol} ${x.request}`.localeCompare(`${y.protocol} ${y.request}`),
            ),
          policies: [...s.policies.values()].sort((x, y) =>
            `${x.verdict} ${x.namespace} ${x.name}`.localeCompare(
              `${y.verdict} ${y.namespace} ${y.name}`,
            ),
          ),
        }))
        .sort((x, y) => `${x.from} ${x.to}`.localeCompare(`${y.from} ${y.to}`)),
    }
  }
}

const COUNTER = { allowed: 'allowed', denied: 'denied', audit: 'audited' } as const

/** Aggregate flows into a service map (see {@link ServiceMapBuilder}). */
export function buildServiceMap(flows: Iterable<Flow>): ServiceMap {
  const b = new ServiceMapBuilder()
  for (const f of flows) b.add(f)
  return b.map()
}

/** Edge colours by verdict mix. */
export const EDGE_COLORS = {
  allowed: '#2e7d32',
  denied: '#c62828',
  mixed: '#ef6c00',
  audit: '#f9a825',
} as const

/**
 * The colour class of an edge from its connections: allowed, denied, mixed (both) or audit (some
 * audited, none denied). An edge with no connection seen (only L7 records) takes its requests'.
 */
export function edgeClass(e: MapEdge): keyof typeof EDGE_COLORS {
  let { allowed, denied, audited } = e
  if (allowed + denied + audited === 0)
    for (const r of e.l7) {
      allowed += r.allowed
      denied += r.denied
      audited += r.audited
    }
  if (denied > 0 && allowed + audited > 0) return 'mixed'
  if (denied > 0) return 'denied'
  if (audited > 0) return 'audit'
  return 'allowed'
}

/** '3 allowed, 1 denied' (zero counts left out). */
function countsText(c: { allowed: number; denied: number; audited: number }): string {
  return [
    c.allowed ? `${c.allowed} allowed` : '',
    c.denied ? `${c.denied} denied` : '',
    c.audited ? `${c.audited} audit` : '',
  ]
    .filter(Boolean)
    .join(', ')
}

/** 'CiliumNetworkPolicy default/rule1'. */
function policyText(p: MapPolicy): string {
  return `${p.kind ? `${p.kind} ` : ''}${p.namespace ? `${p.namespace}/` : ''}${p.name}`
}

/** The lines of an edge's label: ports and connection counts, then one line per L7 request kind. */
function edgeLines(
  e: MapEdge,
): { text: string; cls: keyof typeof EDGE_COLORS; request?: string }[] {
  const conns = countsText(e)
  const lines: { text: string; cls: keyof typeof EDGE_COLORS; request?: string }[] = [
    {
      text: `${e.ports.join(' ') || 'L7'}${conns ? ` · ${conns}` : ''}`,
      cls: edgeClass(e),
    },
  ]
  for (const r of e.l7) {
    const cls =
      r.denied > 0
        ? r.allowed + r.audited > 0
          ? 'mixed'
          : 'denied'
        : r.audited > 0
          ? 'audit'
          : 'allowed'
    lines.push({ text: `${r.request} ${countsText(r)}`, cls, request: r.request })
  }
  return lines
}

/** The hover text of an edge: counts, requests, and the policies that decided them. */
function edgeTitle(e: MapEdge, label: (id: string) => string): string {
  const out = [`${label(e.from)} -> ${label(e.to)} ${e.ports.join(' ')}`]
  const conns = countsText(e)
  if (conns) out.push(`connections: ${conns}`)
  for (const r of e.l7) out.push(`${r.protocol} ${r.request}: ${countsText(r)}`)
  for (const p of e.policies)
    out.push(`${p.verdict === 'audit' ? 'audited' : p.verdict} by ${policyText(p)}`)
  if (e.unattributed > 0 || e.policies.length === 0)
    out.push(`policy unknown for ${e.unattributed} connection(s) or request(s)`)
  return out.join('\n')
}

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
}

function ranks(map: ServiceMap): Map<string, number> {
  // Drop the back edges of a depth-first search so that cycles (A calls B, B calls A) do not
  // stretch the picture, then layer by longest path on what is left (a DAG).
  const out = new Map<string, string[]>()
  for (const e of map.edges)
    if (e.from !== e.to) out.set(e.from, [...(out.get(e.from) ?? []), e.to])
  const state = new Map<string, 1 | 2>()
  const forward: [string, string][] = []
  const visit = (id: string) => {
    state.set(id, 1)
    for (const to of out.get(id) ?? []) {
      const st = state.get(to)
      if (st === 1) continue // back edge
      forward.push([id, to])
      if (st === undefined) visit(to)
    }
    state.set(id, 2)
  }
  const indeg = new Map<string, number>(map.nodes.map((n) => [n.id, 0]))
  for (const e of map.edges) if (e.from !== e.to) indeg.set(e.to, (indeg.get(e.to) ?? 0) + 1)
  const order = [...map.nodes].sort((a, b) => (indeg.get(a.id) ?? 0) - (indeg.get(b.id) ?? 0))
  for (const n of order) if (!state.has(n.id)) visit(n.id)
  const rank = new Map<string, number>(map.nodes.map((n) => [n.id, 0]))
  for (let i = 0; i < map.nodes.length; i++) {
    let changed = false
    for (const [from, to] of forward) {
      const r = (rank.get(from) ?? 0) + 1
      if (r > (rank.get(to) ?? 0)) {
        rank.set(to, r)
        changed = true
      }
    }
    if (!changed) break
  }
  return rank
}

/** Options of {@link renderServiceMapSvg}. */
export interface ServiceMapSvgOptions {
  title?: string
}

const NODE_W = 190
const NODE_H = 44
const PAD = 40
const LINE_H = 14
/** Rough width of one character of the 11px edge labels. */
const CHAR_W = 6.2

/**
 * Render a service map as a standalone SVG document: workloads and services as boxes in columns
 * (callers to the left of callees), one arrow per source and destination, coloured by the verdict
 * of its connections (green allowed, red denied, orange both, amber audit), labelled with its ports,
 * connection counts and L7 requests; the hover text names the deciding policies. Each edge is a
 * `<g class="edge CLASS" data-from data-to data-allowed data-denied data-audited>`.
 * @example
 * writeFileSync('map.svg', renderServiceMapSvg(buildServiceMap(flows)))
 */
export function renderServiceMapSvg(
  input: ServiceMap | Iterable<Flow>,
  opts: ServiceMapSvgOptions = {},
): string {
  const map =
    'nodes' in input && 'edges' in input
      ? (input as ServiceMap)
      : buildServiceMap(input as Iterable<Flow>)
  const rank = ranks(map)
  const columns = new Map<number, MapNode[]>()
  for (const n of map.nodes) {
    const r = rank.get(n.id) ?? 0
    const col = columns.get(r) ?? []
    col.push(n)
    columns.set(r, col)
  }
  const lines = new Map(map.edges.map((e) => [e, edgeLines(e)]))
  const widest = Math.max(0, ...[...lines.values()].flat().map((l) => l.text.length))
  const colGap = Math.min(360, Math.max(120, Math.ceil(widest * CHAR_W) + 40))
  // Labels of a source's edges stack above the source's end of its arrows.
  const stacked = new Map<string, number>()
  for (const [e, l] of lines) stacked.set(e.from, (stacked.get(e.from) ?? 0) + l.length)
  const tallest = Math.max(1, ...stacked.values())
  const rowGap = Math.max(36, tallest * LINE_H + 16)
  const pos = new Map<string, { x: number; y: number }>()
  const top = PAD + (opts.title ? 36 : 0) + tallest * LINE_H
  let maxRows = 0
  for (const [r, col] of columns) {
    maxRows = Math.max(maxRows, col.length)
    for (const [i, n] of col.entries()) {
      pos.set(n.id, { x: PAD + r * (NODE_W + colGap), y: top + i * (NODE_H + rowGap) })
    }
  }
  const ncols = Math.max(1, ...[...columns.keys()].map((r) => r + 1))
  const width = PAD * 2 + ncols * NODE_W + (ncols - 1) * colGap
  const legendY = top + Math.max(1, maxRows) * (NODE_H + rowGap) + 40
  const height = legendY + 40
  const label = (id: string) => map.nodes.find((n) => n.id === id)?.label ?? id
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  )
  out.push('<defs>')
  for (const [name, color] of Object.entries(EDGE_COLORS)) {
    out.push(
      `<marker id="arrow-${name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${color}"/></marker>`,
    )
  }
  out.push('</defs>')
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`)
  if (opts.title)
    out.push(
      `<text x="${PAD}" y="${PAD}" font-size="16" font-weight="bold">${esc(opts.title)}</text>`,
    )
  // edges (under the nodes)
  const above = new Map<string, number>()
  for (const e of map.edges) {
    const a = pos.get(e.from)
    const b = pos.get(e.to)
    if (!a || !b) continue
    const cls = edgeClass(e)
    const color = EDGE_COLORS[cls]
    const text = lines.get(e) ?? []
    let d: string
    let lx: number
    let ly: number
    if (e.from === e.to) {
      const x = a.x + NODE_W / 2
      const y = a.y
      d = `M${x - 20},${y} C${x - 40},${y - 50} ${x + 40},${y - 50} ${x + 20},${y}`
      lx = x
      ly = y - 42 - (text.length - 1) * LINE_H
    } else if (b.x > a.x) {
      const x1 = a.x + NODE_W
      const y1 = a.y + NODE_H / 2
      const x2 = b.x
      const y2 = b.y + NODE_H / 2
      const mx = (x1 + x2) / 2
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`
      // Labels sit above the source's end of the arrow, where arrows from one column do not meet.
      const below = above.get(e.from) ?? 0
      above.set(e.from, below + text.length)
      lx = x1 + 12
      ly = y1 - 6 - (below + text.length - 1) * LINE_H
    } else {
      // same column or backwards: loop around below
      const x1 = a.x + NODE_W / 2
      const y1 = a.y + NODE_H
      const x2 = b.x + NODE_W / 2
      const y2 = b.y + NODE_H
      const dip = Math.max(y1, y2) + 40
      d = `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`
      lx = (x1 + x2) / 2
      ly = dip + LINE_H
    }
    const anchor = b.x > a.x && e.from !== e.to ? 'start' : 'middle'
    const texts = text
      .map(
        (l, i) =>
          `<text class="${l.request === undefined ? 'counts' : `l7 ${l.cls}`}"${l.request === undefined ? '' : ` data-request="${esc(l.request)}"`} x="${lx}" y="${ly + i * LINE_H}" text-anchor="${anchor}" fill="${EDGE_COLORS[l.cls]}" font-size="11">${esc(l.text)}</text>`,
      )
      .join('')
    out.push(
      `<g class="edge ${cls}" data-from="${esc(e.from)}" data-to="${esc(e.to)}" data-allowed="${e.allowed}" data-denied="${e.denied}" data-audited="${e.audited}"><title>${esc(edgeTitle(e, label))}</title><path d="${d}" fill="none" stroke="${color}" stroke-width="2"${cls === 'denied' ? ' stroke-dasharray="6 4"' : ''} marker-end="url(#arrow-${cls})"/>${texts}</g>`,
    )
  }
  for (const n of map.nodes) {
    const p = pos.get(n.id)
    if (!p) continue
    const fill =
      n.kind === 'workload'
        ? '#e3f2fd'
        : n.kind === 'service'
          ? '#e8f5e9'
          : n.kind === 'reserved'
            ? '#f3e5f5'
            : '#eeeeee'
    const text = n.label.length > 28 ? `${n.label.slice(0, 27)}…` : n.label
    out.push(
      `<g class="node ${n.kind}" data-id="${esc(n.id)}"><title>${esc(n.kind === 'service' ? `service ${n.label}` : n.label)}</title><rect x="${p.x}" y="${p.y}" width="${NODE_W}" height="${NODE_H}" rx="8" fill="${fill}" stroke="#455a64"/><text x="${p.x + NODE_W / 2}" y="${p.y + NODE_H / 2 + 4}" text-anchor="middle">${esc(text)}</text></g>`,
    )
  }
  let lx = PAD
  for (const [name, color] of Object.entries(EDGE_COLORS)) {
    out.push(
      `<g class="legend"><line x1="${lx}" y1="${legendY}" x2="${lx + 24}" y2="${legendY}" stroke="${color}" stroke-width="3"/><text x="${lx + 30}" y="${legendY + 4}">${name}</text></g>`,
    )
    lx += 100
  }
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
