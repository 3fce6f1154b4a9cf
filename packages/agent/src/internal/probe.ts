/**
 * `membrane policy probe`: the endpoint × endpoint × port truth table. The prediction comes from
 * the policy repository's trace (the same evaluation the compiler and the proxy use; nothing is
 * evaluated here); the measurement from real connections made inside the workloads' network
 * namespaces, through the datapath and the L7 proxy, to throwaway listeners started for the
 * probe. Cells where the two disagree are the differences.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import type { HttpRequest, HttpRule, TraceResult } from '@membrane/policy'

/**
 * The program of a probe worker (CommonJS for `node -e`, so it needs no file and no loader):
 * one per namespace, driven by JSON lines on stdin. `listen` starts HTTP listeners (a raw TCP
 * connect is accepted by them too), `connect` makes one TCP connection, `http` one request.
 * It exits when its stdin closes, so the listeners never outlive the probe.
 */
const WORKER = `
const net = require('node:net')
// A timer that expired while the process waited for the CPU runs before the I/O that completed
// in the meantime: the verdict waits one turn (setImmediate runs after the poll phase), so a
// connection that did complete is never called a timeout.
const after = (ms, fn) => setTimeout(() => setImmediate(fn), ms)
const http = require('node:http')
const send = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
const ops = {
  listen(m, done) {
    const out = {}
    let left = m.ports.length
    if (left === 0) return done({ ports: out })
    for (const port of m.ports) {
      const srv = http.createServer((req, res) => {
        req.resume()
        res.setHeader('x-membrane-probe', '1')
        res.end('probe\\n')
      })
      srv.keepAliveTimeout = 500
      srv.on('connection', (s) => s.on('error', () => {}))
      srv.once('error', (e) => { out[port] = e.code || 'error'; if (--left === 0) done({ ports: out }) })
      srv.listen(port, '0.0.0.0', () => { out[port] = 'ok'; if (--left === 0) done({ ports: out }) })
    }
  },
  connect(m, done) {
    const s = net.connect({ host: m.host, port: m.port })
    let over = false
    const finish = (result) => { if (over) return; over = true; clearTimeout(t); s.destroy(); done({ result }) }
    const t = after(m.timeoutMs, () => finish('timeout'))
    s.once('connect', () => finish('connected'))
    s.once('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'error ' + (e.code || e.message)))
  },
  http(m, done) {
    let over = false
    const finish = (r) => { if (over) return; over = true; clearTimeout(t); req.destroy(); done(r) }
    const t = after(m.timeoutMs, () => finish({ result: 'timeout' }))
    const req = http.request({ host: m.host, port: m.port, method: m.method, path: m.path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { if (body.length < 256) body += c })
      res.on('end', () => finish({ result: 'response', status: res.statusCode, probe: res.headers['x-membrane-probe'] === '1', body: body.slice(0, 64) }))
      res.on('error', () => finish({ result: 'error' }))
    })
    req.on('error', (e) => finish({ result: e.code === 'ECONNREFUSED' ? 'refused' : 'error ' + (e.code || e.message) }))
    req.end()
  },
}
let buf = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (c) => {
  buf += c
  let i
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i)
    buf = buf.slice(i + 1)
    let m
    try { m = JSON.parse(line) } catch { continue }
    const op = ops[m.op]
    if (op) op(m, (r) => send({ id: m.id, ...r }))
  }
})
process.stdin.on('end', () => process.exit(0))
send({ ready: true })
`

/** How long a worker may take to start in its namespace (a busy node takes seconds). */
const WORKER_START_MS = 30_000

/** A worker process inside one network namespace. */
class ProbeWorker {
  readonly #child: ChildProcess
  readonly #pending = new Map<number, (r: Record<string, unknown>) => void>()
  #next = 1
  #exited = false

  private constructor(child: ChildProcess) {
    this.#child = child
    child.once('exit', () => {
      this.#exited = true
      for (const resolve of this.#pending.values()) resolve({ result: 'error worker exited' })
      this.#pending.clear()
    })
  }

  /** Start a worker in `netns` (with `ip netns exec`; no shell) and wait until it is ready. */
  static start(netns: string, startMs: number): Promise<ProbeWorker> {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', WORKER], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // No NODE_OPTIONS (loaders of the agent's own process): the worker is plain CommonJS.
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    })
    const worker = new ProbeWorker(child)
    return new Promise((resolve, reject) => {
      let err = ''
      let rest = ''
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`probe worker in ${netns} did not start within ${startMs} ms`))
      }, startMs)
      child.stderr?.on('data', (c: Buffer) => {
        if (err.length < 2000) err += c.toString()
      })
      child.once('error', (e) => {
        clearTimeout(timer)
        reject(e)
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`probe worker in ${netns} exited (${code}): ${err.trim()}`))
      })
      child.stdout?.on('data', (c: Buffer) => {
        rest += c.toString()
        const lines = rest.split('\n')
        rest = lines.pop() ?? ''
        for (const line of lines) {
          let m: Record<string, unknown>
          try {
            m = JSON.parse(line) as Record<string, unknown>
          } catch {
            continue
          }
          if (m.ready) {
            clearTimeout(timer)
            resolve(worker)
          } else if (typeof m.id === 'number') {
            worker.#pending.get(m.id)?.(m)
            worker.#pending.delete(m.id)
          }
        }
      })
    })
  }

  call(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.#exited) return Promise.resolve({ result: 'error worker exited' })
    const id = this.#next++
    return new Promise((resolve) => {
      this.#pending.set(id, resolve)
      this.#child.stdin?.write(`${JSON.stringify({ ...msg, id })}\n`)
    })
  }

  /** End the worker (its listeners close with it); SIGKILL when it does not exit at once. */
  async close(): Promise<void> {
    if (this.#exited) return
    const gone = new Promise<void>((r) => this.#child.once('exit', () => r()))
    this.#child.stdin?.end()
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 2_000)
    await gone
    clearTimeout(timer)
  }
}

/** A workload of the probe. */
export interface ProbeEndpoint {
  /** `namespace/name`. */
  ref: string
  ip: string
  identity?: number
  /** Its network namespace; an endpoint without one (interface mode) is predicted, not measured. */
  netns?: string
}

/** What the prediction needs from the agent: its repository's trace, and the policy's ports. */
export interface ProbeDeps {
  trace(from: ProbeEndpoint, to: ProbeEndpoint, port: number, http?: HttpRequest): TraceResult
  /** Ports named by the policies that apply to traffic from `sources` to `dst` (TCP). */
  policyPorts(dst: ProbeEndpoint, sources: readonly ProbeEndpoint[]): number[]
}

/** Options of a probe (bounds included). */
export interface ProbeOptions {
  /** Probe these ports on every destination instead of the ones its policies name. */
  ports?: number[]
  /** Per connection or request. Default 1000 ms. */
  timeoutMs?: number
  /** A connect that timed out is tried this many times more. Default 1. */
  retries?: number
  /** Connections in flight at once. Default 32. */
  concurrency?: number
  /** The whole measurement; cells not measured by then are `skipped`. Default 60000 ms. */
  deadlineMs?: number
  /** Measure with real connections (default true); false: the prediction alone. */
  measure?: boolean
  /** Put each cell's trace in the answer (the walkthrough). */
  explain?: boolean
}

/** What a cell's verdict is: reached, not reached, or reached with L7 rules in force. */
export type ProbeVerdict = 'allowed' | 'denied' | 'l7'

/** One HTTP request of an L7 cell: what trace says, what the proxy did. */
export interface ProbeRequest {
  method: string
  path: string
  predicted: 'allowed' | 'denied'
  /** `allowed` (reached the listener), `denied` (the proxy's 403), or what failed. */
  measured?: string
  status?: number
}

/** One cell: source → destination:port/TCP. */
export interface ProbeCell {
  from: string
  to: string
  port: number
  predicted: ProbeVerdict
  /** A verdict, or `skipped` (deadline), `unmeasured` (no namespace, no listener). */
  measured?: ProbeVerdict | 'skipped' | 'unmeasured'
  /** The TCP connect's outcome: connected, refused, timeout, error CODE. */
  connect?: string
  requests?: ProbeRequest[]
  /** Measured and equal to the prediction (requests included). */
  match?: boolean
  note?: string
  trace?: TraceResult
}

/** The answer of a probe. */
export interface ProbeResult {
  endpoints: { ref: string; ip: string; identity?: number }[]
  /** The ports probed on each destination. */
  ports: Record<string, number[]>
  cells: ProbeCell[]
  /** Measured cells whose measurement differs from the prediction. */
  differences: number
  /** False when the deadline cut the measurement short. */
  complete: boolean
  elapsedMs: number
}

/** At most this many ports per destination by default (policies naming more are cut). */
const MAX_DEFAULT_PORTS = 16
const ACCESS_DENIED = /^Access denied/

/** A literal regex (no metacharacters) is its own example; anything else has none. */
function literal(pattern: string | undefined): string | undefined {
  if (pattern === undefined) return undefined
  return /^[A-Za-z0-9/_.~-]*$/.test(pattern) ? pattern : undefined
}

/**
 * The HTTP requests of an L7 cell: one the rules allow and one they deny, each checked with
 * trace (a rule without a literal method and path gives no allowed example).
 */
function l7Requests(
  deps: ProbeDeps,
  from: ProbeEndpoint,
  to: ProbeEndpoint,
  port: number,
  t: TraceResult,
): ProbeRequest[] {
  const rules: HttpRule[] = []
  for (const d of [t.egress, t.ingress])
    for (const r of d.l7?.rules ?? []) if (r.rules.parser === 'http') rules.push(...r.rules.http)
  const candidates: HttpRequest[] = []
  for (const r of rules) {
    const method = r.method === undefined ? 'GET' : literal(r.method)
    const path = r.path === undefined ? '/' : literal(r.path)
    if (method && path && !r.host && !r.headers?.length && !r.headerMatches?.length)
      candidates.push({ method, path })
  }
  const out: ProbeRequest[] = []
  const allowed = candidates.find((c) => deps.trace(from, to, port, c).verdict === 'allowed')
  if (allowed) out.push({ method: allowed.method!, path: allowed.path!, predicted: 'allowed' })
  for (const c of [
    { method: 'GET', path: '/membrane-probe/denied' },
    { method: 'DELETE', path: '/membrane-probe/denied' },
  ]) {
    if (deps.trace(from, to, port, c).verdict === 'denied') {
      out.push({ ...c, predicted: 'denied' })
      break
    }
  }
  return out
}

/** The prediction of one cell. */
function predict(t: TraceResult): ProbeVerdict {
  if (t.verdict === 'denied') return 'denied'
  const l7 = [t.egress.l7, t.ingress.l7].some((x) => x && !x.wildcard)
  return l7 ? 'l7' : 'allowed'
}

/** Run `tasks` with at most `limit` in flight. */
async function bounded(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < tasks.length) await tasks[next++]!()
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane))
}

/**
 * Predict, then (unless `measure` is false) measure every cell of the matrix: `endpoints` ×
 * `endpoints` (an endpoint to itself is left out: that traffic never leaves its namespace) × the
 * ports of each destination. Workers and listeners are always removed before it returns.
 */
export async function runProbe(
  deps: ProbeDeps,
  endpoints: { from: ProbeEndpoint[]; to: ProbeEndpoint[] },
  options: ProbeOptions = {},
): Promise<ProbeResult> {
  const started = Date.now()
  const timeoutMs = options.timeoutMs ?? 1000
  const deadline = started + (options.deadlineMs ?? 60_000)
  const ports: Record<string, number[]> = {}
  const cells: ProbeCell[] = []
  const requests = new Map<ProbeCell, ProbeRequest[]>()
  for (const to of endpoints.to) {
    const list =
      options.ports ??
      deps
        .policyPorts(
          to,
          endpoints.from.filter((f) => f.ref !== to.ref),
        )
        .slice(0, MAX_DEFAULT_PORTS)
    ports[to.ref] = list.length > 0 ? list : [80]
  }
  for (const from of endpoints.from) {
    for (const to of endpoints.to) {
      if (from.ref === to.ref) continue
      for (const port of ports[to.ref]!) {
        const t = deps.trace(from, to, port)
        const cell: ProbeCell = { from: from.ref, to: to.ref, port, predicted: predict(t) }
        if (cell.predicted === 'l7') {
          const reqs = l7Requests(deps, from, to, port, t)
          if (reqs.length > 0) requests.set(cell, reqs)
          else cell.note = 'L7 rules with no literal HTTP request to try: connect only'
        }
        if (options.explain) cell.trace = t
        cells.push(cell)
      }
    }
  }
  let complete = true
  if (options.measure !== false) {
    complete = await measure(endpoints, ports, cells, requests, {
      timeoutMs,
      deadline,
      concurrency: options.concurrency ?? 32,
      retries: options.retries ?? 1,
    })
  }
  return {
    endpoints: [
      ...new Map([...endpoints.from, ...endpoints.to].map((e) => [e.ref, e])).values(),
    ].map((e) => ({
      ref: e.ref,
      ip: e.ip,
      ...(e.identity !== undefined ? { identity: e.identity } : {}),
    })),
    ports,
    cells,
    differences: cells.filter((c) => c.match === false).length,
    complete,
    elapsedMs: Date.now() - started,
  }
}

async function measure(
  endpoints: { from: ProbeEndpoint[]; to: ProbeEndpoint[] },
  ports: Record<string, number[]>,
  cells: ProbeCell[],
  requests: Map<ProbeCell, ProbeRequest[]>,
  o: { timeoutMs: number; deadline: number; concurrency: number; retries: number },
): Promise<boolean> {
  const workers = new Map<string, ProbeWorker>()
  const byRef = new Map([...endpoints.from, ...endpoints.to].map((e) => [e.ref, e]))
  /** Per destination and port: why there is no listener (a workload's own server is fine). */
  const noListener = new Map<string, string>()
  /** Endpoints whose worker did not start, and why. */
  const noWorker = new Map<string, string>()
  let complete = true
  try {
    const netnsOf = [...byRef.values()].filter((e) => e.netns)
    await bounded(
      netnsOf.map((e) => async () => {
        const startMs = Math.min(WORKER_START_MS, o.deadline - Date.now())
        if (startMs <= 0) {
          noWorker.set(e.ref, 'deadline reached before its worker started')
          return
        }
        try {
          workers.set(e.ref, await ProbeWorker.start(e.netns!, startMs))
        } catch (error) {
          noWorker.set(e.ref, (error as Error).message)
        }
      }),
      Math.max(1, Math.min(o.concurrency, 8)),
    )
    for (const to of endpoints.to) {
      const w = workers.get(to.ref)
      if (!w) continue
      const r = await w.call({ op: 'listen', ports: ports[to.ref] })
      for (const [port, state] of Object.entries((r.ports ?? {}) as Record<string, string>)) {
        // In use: the workload serves that port itself, and answers the probe's connections.
        if (state !== 'ok' && state !== 'EADDRINUSE') noListener.set(`${to.ref}:${port}`, state)
      }
    }
    const tasks = cells.map((cell) => async () => {
      const src = workers.get(cell.from)
      const dst = byRef.get(cell.to)!
      if (!src || !workers.has(cell.to)) {
        cell.measured = 'unmeasured'
        cell.note =
          noWorker.get(cell.from) ??
          noWorker.get(cell.to) ??
          'no network namespace to measure from or in'
        return
      }
      const why = noListener.get(`${cell.to}:${cell.port}`)
      if (why) {
        cell.measured = 'unmeasured'
        cell.note = `no listener on ${cell.port}: ${why}`
        return
      }
      const left = o.deadline - Date.now()
      if (left <= 0) {
        cell.measured = 'skipped'
        complete = false
        return
      }
      // A timeout is a dropped SYN, or a lost one (a busy node, a neighbour not yet resolved):
      // it is tried again, so that a verdict is never a single lost packet.
      for (let attempt = 0; attempt <= o.retries; attempt++) {
        const timeoutMs = Math.min(o.timeoutMs, Math.max(1, o.deadline - Date.now()))
        const c = await src.call({ op: 'connect', host: dst.ip, port: cell.port, timeoutMs })
        cell.connect = String(c.result)
        if (cell.connect !== 'timeout' || Date.now() >= o.deadline) break
      }
      const reached = cell.connect === 'connected' || cell.connect === 'refused'
      const reqs = requests.get(cell)
      if (!reached || cell.predicted !== 'l7' || !reqs) {
        cell.measured = reached ? (cell.predicted === 'l7' && !reqs ? 'l7' : 'allowed') : 'denied'
        cell.match = cell.measured === cell.predicted
        return
      }
      let proxyDenied = false
      for (const req of reqs) {
        const r = await src.call({
          op: 'http',
          host: dst.ip,
          port: cell.port,
          method: req.method,
          path: req.path,
          timeoutMs: Math.min(o.timeoutMs, Math.max(1, o.deadline - Date.now())),
        })
        if (r.result === 'response') {
          req.status = r.status as number
          const denied = r.status === 403 && !r.probe && ACCESS_DENIED.test(String(r.body))
          req.measured = denied ? 'denied' : 'allowed'
          proxyDenied ||= denied
        } else req.measured = String(r.result)
      }
      cell.requests = reqs
      cell.measured = proxyDenied ? 'l7' : 'allowed'
      cell.match = cell.measured === 'l7' && reqs.every((r) => r.measured === r.predicted)
    })
    await bounded(tasks, Math.max(1, o.concurrency))
  } finally {
    await Promise.all([...workers.values()].map((w) => w.close()))
  }
  for (const cell of cells) {
    if (cell.measured === undefined) cell.measured = 'unmeasured'
    if (cell.requests === undefined && requests.has(cell)) cell.requests = requests.get(cell)
  }
  return complete
}

const MARK: Record<string, string> = {
  allowed: '✓',
  denied: '✗',
  l7: 'L7',
  skipped: '…',
  unmeasured: '-',
}

/**
 * The truth table as text, cyclonus-style: rows are sources, columns destination:port, a cell
 * shows the measured verdict (✓ reached, ✗ not, L7 proxied with L7 rules enforced) and `!` with
 * the predicted one where they differ; the differences are listed below.
 */
export function renderProbe(r: ProbeResult): string {
  const cols: { to: string; port: number }[] = []
  for (const [to, ps] of Object.entries(r.ports)) for (const port of ps) cols.push({ to, port })
  const rows = [...new Set(r.cells.map((c) => c.from))]
  const cellAt = new Map(r.cells.map((c) => [`${c.from}>${c.to}:${c.port}`, c]))
  const short = (ref: string) => (ref.startsWith('default/') ? ref.slice(8) : ref)
  const head = ['from \\ to', ...cols.map((c) => `${short(c.to)}:${c.port}`)]
  const body = rows.map((from) => [
    short(from),
    ...cols.map((c) => {
      const cell = cellAt.get(`${from}>${c.to}:${c.port}`)
      if (!cell) return '.'
      const shown = cell.measured ?? cell.predicted
      const text = MARK[shown] ?? shown
      return cell.match === false ? `${text}!${MARK[cell.predicted]}` : text
    }),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
  const out = [line(head), ...body.map(line)]
  const measured = r.cells.some((c) => c.measured !== undefined)
  out.push('')
  out.push(
    measured
      ? `${r.cells.length} cells, ${r.differences} differ (measured!predicted); ✓ reached, ✗ not, L7 proxied with L7 rules enforced, - not measured, … past the deadline; ${r.elapsedMs} ms${r.complete ? '' : ' (INCOMPLETE: deadline)'}`
      : `${r.cells.length} cells predicted (not measured); ✓ allowed, ✗ denied, L7 through the proxy`,
  )
  for (const c of r.cells) {
    if (c.match !== false) continue
    const reqs = (c.requests ?? [])
      .map((q) => ` ${q.method} ${q.path}: predicted ${q.predicted}, measured ${q.measured}`)
      .join(';')
    out.push(
      `DIFF ${c.from} -> ${c.to}:${c.port}: predicted ${c.predicted}, measured ${c.measured} (connect ${c.connect})${reqs}`,
    )
  }
  return `${out.join('\n')}\n`
}

/** The walkthrough of one cell: its verdicts and the chain of rules trace derived them from. */
export function explainCell(c: ProbeCell): string {
  const out = [
    `${c.from} -> ${c.to}:${c.port}/TCP: predicted ${c.predicted}${c.measured ? `, measured ${c.measured}${c.connect ? ` (connect ${c.connect})` : ''}` : ''}${c.match === false ? '  DIFFERENT' : ''}`,
  ]
  const t = c.trace
  if (t) {
    for (const [name, d] of [
      ['egress', t.egress],
      ['ingress', t.ingress],
    ] as const) {
      out.push(`  ${name}: ${d.verdict} (${d.reason}): ${d.explanation}`)
      if (d.selectedBy.length) out.push(`    selected by ${d.selectedBy.join(', ')}`)
      for (const m of d.deniedBy)
        out.push(`    denied by ${m.id} (peer ${m.peer}${m.ports ? `, ports ${m.ports}` : ''})`)
      for (const m of d.allowedBy)
        out.push(
          `    allowed by ${m.id} (peer ${m.peer}${m.ports ? `, ports ${m.ports}` : ''}${m.l7 ? `, ${m.l7.parser} rules` : ''})`,
        )
      for (const m of d.notMatched) out.push(`    not matched: ${m.id} (${m.reason}: ${m.detail})`)
      if (d.l7) {
        for (const r of d.l7.rules) out.push(`    L7 ${r.rules.parser} rules of ${r.id}`)
      }
    }
  }
  for (const q of c.requests ?? [])
    out.push(
      `  ${q.method} ${q.path}: predicted ${q.predicted}${q.measured ? `, measured ${q.measured}${q.status ? ` (${q.status})` : ''}` : ''}`,
    )
  if (c.note) out.push(`  note: ${c.note}`)
  return `${out.join('\n')}\n`
}
