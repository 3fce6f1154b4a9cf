/** A service map from flows: who talks to whom, with verdicts, as data and as an SVG picture. */
import { l4ProtocolName } from './names'
import { type Endpoint, type Flow, Verdict } from './types'

/** A workload on the map. */
export interface MapNode {
  id: string
  label: string
  namespace?: string
  /** 'workload' (pods), 'reserved' (world, host, ...) or 'ip' (unknown address). */
  kind: 'workload' | 'reserved' | 'ip'
}

/** A directed edge: traffic from one workload to another on one port. */
export interface MapEdge {
  from: string
  to: string
  /** 'TCP/80', 'UDP/53', 'ICMPv4', 'HTTP' ... */
  port: string
  allowed: number
  denied: number
  audited: number
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

function portLabel(flow: Flow): string {
  if (flow.l7?.http) return 'HTTP'
  if (flow.l7?.dns) return 'DNS'
  if (flow.l7?.kafka) return 'Kafka'
  const proto = l4ProtocolName(flow)
  const p = flow.l4?.TCP ?? flow.l4?.UDP ?? flow.l4?.SCTP
  return p ? `${proto}/${p.destinationPort}` : proto || 'IP'
}

/**
 * Builds a service map incrementally (memory grows with the number of workload pairs, not with
 * the number of flows). Replies are folded into the request direction (a reply from B to A counts
 * on the A -> B edge) so the map shows who initiates.
 */
export class ServiceMapBuilder {
  private readonly nodes = new Map<string, MapNode>()
  private readonly edges = new Map<string, MapEdge>()

  /** Count one flow. */
  add(flow: Flow): void {
    let a = workload(flow.source, flow.IP?.source)
    let b = workload(flow.destination, flow.IP?.destination)
    let port = portLabel(flow)
    if (flow.isReply?.value) {
      ;[a, b] = [b, a]
      const p = flow.l4?.TCP ?? flow.l4?.UDP ?? flow.l4?.SCTP
      if (p && !flow.l7) port = `${l4ProtocolName(flow)}/${p.sourcePort}`
    }
    this.nodes.set(a.id, a)
    this.nodes.set(b.id, b)
    const key = `${a.id}\u0000${b.id}\u0000${port}`
    let e = this.edges.get(key)
    if (!e) {
      e = { from: a.id, to: b.id, port, allowed: 0, denied: 0, audited: 0 }
      this.edges.set(key, e)
    }
    if (flow.verdict === Verdict.DROPPED || flow.verdict === Verdict.ERROR) e.denied++
    else if (flow.verdict === Verdict.AUDIT) e.audited++
    else e.allowed++
  }

  /** The map so far (sorted, a snapshot). */
  map(): ServiceMap {
    return {
      nodes: [...this.nodes.values()].sort((x, y) => x.id.localeCompare(y.id)),
      edges: [...this.edges.values()]
        .map((e) => ({ ...e }))
        .sort((x, y) => `${x.from} ${x.to} ${x.port}`.localeCompare(`${y.from} ${y.to} ${y.port}`)),
    }
  }
}

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

/** The colour class of an edge: allowed, denied, mixed (both) or audit. */
export function edgeClass(e: MapEdge): keyof typeof EDGE_COLORS {
  if (e.denied > 0 && e.allowed > 0) return 'mixed'
  if (e.denied > 0) return 'denied'
  if (e.audited > 0 && e.allowed === 0) return 'audit'
  return 'allowed'
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
const COL_GAP = 120
const ROW_GAP = 36
const PAD = 40

/**
 * Render a service map as a standalone SVG document: workloads as boxes in columns (callers to
 * the left of callees), one arrow per workload pair and port, coloured by verdict (green allowed,
 * red denied, orange both, amber audit), labelled with the port and counts.
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
  const pos = new Map<string, { x: number; y: number }>()
  const top = PAD + (opts.title ? 36 : 0)
  let maxRows = 0
  for (const [r, col] of columns) {
    maxRows = Math.max(maxRows, col.length)
    for (const [i, n] of col.entries()) {
      pos.set(n.id, { x: PAD + r * (NODE_W + COL_GAP), y: top + i * (NODE_H + ROW_GAP) })
    }
  }
  const ncols = Math.max(1, ...[...columns.keys()].map((r) => r + 1))
  const width = PAD * 2 + ncols * NODE_W + (ncols - 1) * COL_GAP
  const legendY = top + Math.max(1, maxRows) * (NODE_H + ROW_GAP) + 40
  const height = legendY + 40
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
  const pairCount = new Map<string, number>()
  for (const e of map.edges) {
    const a = pos.get(e.from)
    const b = pos.get(e.to)
    if (!a || !b) continue
    const pairKey = `${e.from}\u0000${e.to}`
    const k = pairCount.get(pairKey) ?? 0
    pairCount.set(pairKey, k + 1)
    const cls = edgeClass(e)
    const color = EDGE_COLORS[cls]
    const off = k * 14
    let d: string
    let lx: number
    let ly: number
    if (e.from === e.to) {
      const x = a.x + NODE_W / 2
      const y = a.y
      d = `M${x - 20},${y} C${x - 40},${y - 50 - off} ${x + 40},${y - 50 - off} ${x + 20},${y}`
      lx = x
      ly = y - 42 - off
    } else if (b.x > a.x) {
      const x1 = a.x + NODE_W
      const y1 = a.y + NODE_H / 2 + off - 7
      const x2 = b.x
      const y2 = b.y + NODE_H / 2 + off - 7
      const mx = (x1 + x2) / 2
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`
      lx = mx
      ly = (y1 + y2) / 2 - 4
    } else {
      // same column or backwards: loop around below
      const x1 = a.x + NODE_W / 2 + off
      const y1 = a.y + NODE_H
      const x2 = b.x + NODE_W / 2 + off
      const y2 = b.y + NODE_H
      const dip = Math.max(y1, y2) + 40 + off
      d = `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`
      lx = (x1 + x2) / 2
      ly = dip - 8
    }
    const counts = [
      e.allowed ? `${e.allowed} allowed` : '',
      e.denied ? `${e.denied} denied` : '',
      e.audited ? `${e.audited} audit` : '',
    ]
      .filter(Boolean)
      .join(', ')
    out.push(
      `<g class="edge ${cls}" data-from="${esc(e.from)}" data-to="${esc(e.to)}"><title>${esc(`${e.from} -> ${e.to} ${e.port}: ${counts}`)}</title><path d="${d}" fill="none" stroke="${color}" stroke-width="2"${cls === 'denied' ? ' stroke-dasharray="6 4"' : ''} marker-end="url(#arrow-${cls})"/><text x="${lx}" y="${ly}" text-anchor="middle" fill="${color}" font-size="11">${esc(e.port)} (${esc(counts)})</text></g>`,
    )
  }
  for (const n of map.nodes) {
    const p = pos.get(n.id)
    if (!p) continue
    const fill = n.kind === 'workload' ? '#e3f2fd' : n.kind === 'reserved' ? '#f3e5f5' : '#eeeeee'
    const label = n.label.length > 28 ? `${n.label.slice(0, 27)}…` : n.label
    out.push(
      `<g class="node ${n.kind}" data-id="${esc(n.id)}"><title>${esc(n.label)}</title><rect x="${p.x}" y="${p.y}" width="${NODE_W}" height="${NODE_H}" rx="8" fill="${fill}" stroke="#455a64"/><text x="${p.x + NODE_W / 2}" y="${p.y + NODE_H / 2 + 4}" text-anchor="middle">${esc(label)}</text></g>`,
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
