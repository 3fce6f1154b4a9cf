import { randomBytes, timingSafeEqual } from 'node:crypto'
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { EDGE_COLORS } from '@membrane/flows'
import type { Agent } from './agent'
import { STREAMED } from './api'
import { AgentError } from './errors'
import { flowToJson } from './internal/flows'

type Handler = (ctx: { res: ServerResponse; query: URLSearchParams }) => unknown

/** Name of the cookie that carries the web token for the browser. */
const COOKIE = 'membrane_token'

/**
 * The bearer token of the read-only TCP listener, kept in `file` (mode 0600, in the root-only
 * socket directory): read when it exists, made (32 random bytes, base64url) when it does not, so
 * it survives restarts and a Prometheus `credentials_file` keeps working.
 */
export function loadOrCreateWebToken(file: string): string {
  try {
    const fd = openSync(file, 'wx', 0o600)
    try {
      const token = randomBytes(32).toString('base64url')
      writeSync(fd, `${token}\n`)
      return token
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  const fd = openSync(file, 'r')
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || (st.mode & 0o077) !== 0 || st.uid !== (process.getuid?.() ?? 0)) {
      throw new AgentError(
        'INVALID_INPUT',
        `web token file ${file} must be a regular file of the agent's user with mode 0600; remove it to get a new one`,
        { field: 'socketPath' },
      )
    }
    const token = readFileSync(fd, 'utf8').trim()
    if (token.length < 32) {
      throw new AgentError('INVALID_INPUT', `web token file ${file} holds no usable token`, {
        field: 'socketPath',
      })
    }
    return token
  } finally {
    closeSync(fd)
  }
}

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Authenticate a request to the read-only TCP listener; answers it (401, or the redirect that
 * sets the browser's cookie) and returns false when the route must not run.
 *
 * - `/healthz` is open (a liveness probe learns only whether the agent runs);
 * - `Authorization: Bearer <token>` (Prometheus: `authorization.credentials_file`, scripts);
 * - the `membrane_token` cookie (HttpOnly, SameSite=Strict) the browser gets by opening
 *   `/ui?token=<token>` once; that answer redirects to `/ui` so the token leaves the address bar.
 */
export function authorizeWeb(req: IncomingMessage, res: ServerResponse, token: string): boolean {
  const url = new URL(req.url ?? '/', 'http://membrane')
  if (url.pathname === '/healthz') return true
  const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1]
  const cookie = (req.headers.cookie ?? '')
    .split(';')
    .map((c) => c.trim().split('='))
    .find(([k]) => k === COOKIE)?.[1]
  if (sameToken(auth, token) || sameToken(cookie, token)) return true
  if (url.pathname === '/ui' && sameToken(url.searchParams.get('token') ?? undefined, token)) {
    res.statusCode = 303
    res.setHeader('set-cookie', `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`)
    res.setHeader('location', '/ui')
    res.setHeader('cache-control', 'no-store')
    res.end()
    return false
  }
  const e = new AgentError(
    'UNAUTHORIZED',
    'the metrics and UI listener needs the token of the agent (the web.token file next to its API socket): Authorization: Bearer <token>, or open /ui?token=<token> once in the browser',
  )
  res.statusCode = e.status
  res.setHeader('www-authenticate', 'Bearer realm="membrane"')
  res.setHeader('content-type', 'application/json')
  res.end(`${JSON.stringify(e.toJSON())}\n`)
  return false
}

/** The flows the UI shows (most recent last). */
function recentFlows(agent: Agent, n: number) {
  const out = []
  for (const e of agent.observer.ring.entries()) if (e.flow) out.push(e.flow)
  return out.slice(-n)
}

/** What the web page polls: one JSON document with everything it draws. */
function uiState(agent: Agent) {
  const status = agent.status()
  return {
    node: status.nodeName,
    router: status.router,
    components: status.components,
    bandwidthMode: status.bandwidthMode,
    endpoints: agent.listEndpoints(),
    policies: agent.listPolicies().map(({ document: _d, ...p }) => p),
    services: agent.listServices(),
    identities: agent.listIdentities().filter((i) => i.id >= 256),
    serviceMap: agent.serviceMap(),
    flows: recentFlows(agent, 200).map(flowToJson),
  }
}

/**
 * Routes of the TCP listener (loopback by default): the web UI at `/ui` and its read-only JSON,
 * `/metrics`, `/healthz`. Nothing here changes state: control stays on the root-only socket.
 */
export function webRoutes(agent: Agent, extra: { metrics?: () => Promise<string> } = {}) {
  const route = (method: string, path: string, handler: Handler) => ({
    method,
    pattern: new RegExp(`^${path}$`),
    handler: handler as never,
  })
  const send = (res: ServerResponse, type: string, body: string) => {
    res.setHeader('content-type', type)
    res.setHeader('cache-control', 'no-store')
    res.setHeader('x-content-type-options', 'nosniff')
    res.end(body)
    return STREAMED
  }
  return [
    route('GET', '/healthz', () => ({ ok: agent.running })),
    route('GET', '/', ({ res }) => {
      res.statusCode = 302
      res.setHeader('location', '/ui')
      res.end()
      return STREAMED
    }),
    route('GET', '/ui', ({ res }) => {
      res.setHeader(
        'content-security-policy',
        "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:",
      )
      return send(res, 'text/html; charset=utf-8', UI_HTML)
    }),
    route('GET', '/ui/state.json', () => uiState(agent)),
    route('GET', '/ui/servicemap.svg', ({ res }) =>
      send(res, 'image/svg+xml', agent.serviceMapSvg()),
    ),
    route('GET', '/metrics', async ({ res }) => {
      const text = extra.metrics ? await extra.metrics() : ''
      return send(res, 'text/plain; version=0.0.4; charset=utf-8', text)
    }),
  ]
}

const UI_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Membrane</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --allowed: ${EDGE_COLORS.allowed}; --denied: ${EDGE_COLORS.denied}; --mixed: ${EDGE_COLORS.mixed}; --audit: ${EDGE_COLORS.audit}; }
  * { box-sizing: border-box; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2230; background: #f6f7f9; }
  header { background: #1d2230; color: #fff; padding: 10px 20px; display: flex; flex-wrap: wrap; gap: 4px 20px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr)); }
  section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 14px; min-width: 0; overflow: hidden; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 4px 0 8px; }
  /* Tables never push the page wider than the window: fixed layout, long cells cut with an
     ellipsis (the whole text is the cell's tooltip), lists of labels wrap. */
  table { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: 13px; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eef0f3; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; vertical-align: top; }
  td.wrap { white-space: normal; overflow-wrap: anywhere; }
  th { font-weight: 600; color: #555; font-size: 12px; }
  .ok { color: var(--allowed); } .bad { color: var(--denied); } .warn { color: var(--mixed); }
  tr.FORWARDED td.verdict, tr.REDIRECTED td.verdict { color: var(--allowed); font-weight: 600; }
  tr.DROPPED td.verdict, tr.ERROR td.verdict { color: var(--denied); font-weight: 600; }
  tr.AUDIT td.verdict { color: var(--audit); font-weight: 600; }
  td.event { color: #37474f; }
  .muted { color: #777; }
  #servicemap svg { max-width: 100%; height: auto; display: block; }
  #servicemap g.edge { cursor: pointer; }
  #servicemap g.edge.selected path { stroke-width: 4; }
  #edge-detail { margin-top: 8px; overflow-wrap: anywhere; }
  #edge-detail ul { margin: 4px 0; padding-left: 20px; }
  .v-allowed { color: var(--allowed); } .v-denied { color: var(--denied); } .v-audit { color: var(--audit); } .v-mixed { color: var(--mixed); }
</style>
</head>
<body>
<header><h1>Membrane</h1><span id="node"></span><span id="bandwidth" class="muted"></span></header>
<main>
  <section><h2>Components</h2><table id="components"><colgroup><col style="width:28%"><col style="width:14%"><col></colgroup><thead><tr><th>component</th><th>state</th><th>detail</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Endpoints</h2><table id="endpoints"><colgroup><col style="width:22%"><col style="width:17%"><col style="width:12%"><col><col style="width:11%"><col style="width:13%"></colgroup><thead><tr><th>endpoint</th><th>IPv4</th><th>identity</th><th>labels</th><th>health</th><th>enforcing</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Policies</h2><table id="policies"><colgroup><col style="width:30%"><col style="width:19%"><col style="width:21%"><col></colgroup><thead><tr><th>kind</th><th>namespace</th><th>name</th><th>imported</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Services</h2><table id="services"><colgroup><col style="width:24%"><col style="width:27%"><col style="width:15%"><col></colgroup><thead><tr><th>service</th><th>frontend</th><th>algorithm</th><th>backends</th></tr></thead><tbody></tbody></table></section>
  <section class="wide"><h2>Service map</h2><div id="servicemap" class="muted">no flows yet</div><div id="edge-detail" class="muted">Click an arrow for its connections, requests and deciding policies.</div></section>
  <section class="wide"><h2>Flows</h2><table id="flows"><colgroup><col style="width:9.5%"><col style="width:15%"><col style="width:16%"><col style="width:16%"><col style="width:17.5%"><col style="width:12%"><col></colgroup><thead><tr><th>time</th><th>event</th><th>source</th><th>destination</th><th>verdict</th><th>policy</th><th>summary</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
'use strict'
function cell(tr, text, cls) {
  const td = document.createElement('td')
  td.textContent = text === undefined || text === null ? '' : String(text)
  td.title = td.textContent
  if (cls) td.className = cls
  tr.appendChild(td)
  return td
}
// Rows are rebuilt only when their data changed, so a tooltip or a text selection survives
// the poll.
const shown = {}
function fill(id, rows, render) {
  const key = JSON.stringify(rows)
  if (shown[id] === key) return
  shown[id] = key
  const body = document.querySelector('#' + id + ' tbody')
  body.replaceChildren()
  for (const r of rows) {
    const tr = document.createElement('tr')
    render(tr, r)
    body.appendChild(tr)
  }
}
function labels(obj) {
  return Object.entries(obj || {}).map(([k, v]) => k + '=' + v).join(', ')
}
function who(ep, ip, port) {
  const name = ep && ep.podName ? ep.namespace + '/' + ep.podName : (ip || '?')
  return port ? name + ':' + port : name
}
function policyName(p) {
  return (p.kind ? p.kind + ' ' : '') + (p.namespace ? p.namespace + '/' : '') + p.name
}
// The deciding policies a flow names; traces and L7 responses decide nothing, other events
// without names say so.
function flowPolicy(f) {
  const parts = []
  for (const [key, word] of [['egressDeniedBy', 'denied by'], ['ingressDeniedBy', 'denied by'], ['egressAllowedBy', 'allowed by'], ['ingressAllowedBy', 'allowed by']])
    for (const p of f[key] || []) parts.push((f.verdict === 'AUDIT' && word === 'denied by' ? 'audit: would be denied by' : word) + ' ' + policyName(p))
  if (parts.length) return parts.join('; ')
  return f.event && (f.event.startsWith('trace') || f.event === 'L7 response') ? '' : 'policy unknown'
}
function counts(c) {
  return [c.allowed ? c.allowed + ' allowed' : '', c.denied ? c.denied + ' denied' : '', c.audited ? c.audited + ' audit' : ''].filter(Boolean).join(', ')
}
function cls(c) {
  return c.denied > 0 ? (c.allowed + c.audited > 0 ? 'v-mixed' : 'v-denied') : c.audited > 0 ? 'v-audit' : 'v-allowed'
}
let mapState = { nodes: [], edges: [] }
let selected = null
function showEdge() {
  const box = document.getElementById('edge-detail')
  for (const g of document.querySelectorAll('#servicemap g.edge'))
    g.classList.toggle('selected', !!selected && g.dataset.from === selected.from && g.dataset.to === selected.to)
  const e = selected && mapState.edges.find((x) => x.from === selected.from && x.to === selected.to)
  if (!e) return
  const label = (id) => (mapState.nodes.find((n) => n.id === id) || { label: id }).label
  box.classList.remove('muted')
  box.replaceChildren()
  const head = document.createElement('div')
  const b = document.createElement('b')
  b.textContent = label(e.from) + ' → ' + label(e.to)
  head.append(b, ' ' + e.ports.join(' ') + ': ')
  const c = document.createElement('span')
  c.className = cls(e)
  c.textContent = (counts(e) || 'no connection seen') + (counts(e) ? ' connection(s)' : '')
  head.append(c)
  box.append(head)
  const ul = document.createElement('ul')
  for (const r of e.l7) {
    const li = document.createElement('li')
    li.className = cls(r)
    li.textContent = r.protocol + ' ' + r.request + ': ' + counts(r)
    ul.append(li)
  }
  for (const p of e.policies) {
    const li = document.createElement('li')
    li.className = 'v-' + p.verdict
    li.textContent = (p.verdict === 'audit' ? 'audited by ' : p.verdict + ' by ') + policyName(p)
    ul.append(li)
  }
  if (e.unattributed > 0 || e.policies.length === 0) {
    const li = document.createElement('li')
    li.className = 'muted'
    li.textContent = 'policy unknown for ' + e.unattributed + ' connection(s) or request(s)'
    ul.append(li)
  }
  box.append(ul)
}
document.getElementById('servicemap').addEventListener('click', (ev) => {
  const g = ev.target.closest && ev.target.closest('g.edge')
  if (!g) return
  selected = { from: g.dataset.from, to: g.dataset.to }
  showEdge()
})
let lastMap = ''
async function refresh() {
  try {
    const s = await (await fetch('/ui/state.json', { cache: 'no-store' })).json()
    document.getElementById('node').textContent = 'node ' + s.node + ' · router ' + s.router
    document.getElementById('bandwidth').textContent = 'bandwidth: ' + s.bandwidthMode
    fill('components', Object.entries(s.components), (tr, [k, v]) => {
      cell(tr, k); cell(tr, v.state, v.state === 'ok' ? 'ok' : 'bad'); cell(tr, v.detail, 'wrap')
    })
    fill('endpoints', s.endpoints, (tr, e) => {
      tr.dataset.name = e.name
      cell(tr, e.namespace + '/' + e.name); cell(tr, e.ipv4); cell(tr, e.identity)
      cell(tr, labels(e.labels), 'wrap'); cell(tr, e.health, e.health === 'ready' ? 'ok' : 'bad')
      cell(tr, e.enforcing ? 'yes' : 'no', e.enforcing ? 'ok' : 'warn')
    })
    fill('policies', s.policies, (tr, p) => {
      cell(tr, p.kind); cell(tr, p.namespace || '-'); cell(tr, p.name); cell(tr, p.importedAt)
    })
    fill('services', s.services, (tr, v) => {
      cell(tr, v.key); cell(tr, v.vip + ':' + v.port + '/' + v.protocol); cell(tr, v.algorithm)
      cell(tr, v.backends.map((b) => b.address + ':' + b.port).join(', '), 'wrap')
    })
    const flows = s.flows.slice().reverse()
    fill('flows', flows, (tr, f) => {
      tr.className = f.verdict || ''
      tr.dataset.event = f.event
      const l4 = (f.l4 && (f.l4.TCP || f.l4.UDP)) || {}
      cell(tr, f.time ? f.time.slice(11, 23) : '')
      cell(tr, f.event, 'event')
      cell(tr, who(f.source, f.IP && f.IP.source, l4.sourcePort))
      cell(tr, who(f.destination, f.IP && f.IP.destination, l4.destinationPort))
      cell(tr, f.verdict + (f.dropReasonDesc ? ' (' + f.dropReasonDesc + ')' : ''), 'verdict wrap')
      cell(tr, flowPolicy(f), 'policy')
      cell(tr, f.summary)
    })
    mapState = s.serviceMap
    if (s.flows.length > 0) {
      const svg = await (await fetch('/ui/servicemap.svg', { cache: 'no-store' })).text()
      if (svg !== lastMap) {
        lastMap = svg
        const doc = new DOMParser().parseFromString(svg, 'image/svg+xml')
        const el = doc.documentElement
        const box = document.getElementById('servicemap')
        box.classList.remove('muted')
        if (el && el.nodeName === 'svg') {
          for (const bad of el.querySelectorAll('script, foreignObject')) bad.remove()
          box.replaceChildren(document.importNode(el, true))
        }
      }
    }
    showEdge()
    document.body.dataset.loaded = 'true'
  } catch (e) {
    document.getElementById('node').textContent = 'agent unreachable: ' + e
  }
}
refresh()
setInterval(refresh, 2000)
</script>
</body>
</html>
`
