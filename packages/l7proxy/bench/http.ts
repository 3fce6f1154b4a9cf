/**
 * HTTP through the proxy vs direct to the same server, side by side in one run: wrk (Debian),
 * 50 connections, one thread (the machine has 2 cores), keep-alive; alternating rounds so both see the same machine load.
 * Figures: requests/s and p50/p99 latency per path (the fast engine; the Node-http engine's
 * requests/s and p50 beside it), the throughput ratio, the p50 overhead at 50 connections and
 * unloaded (one connection).
 * The proxy and the upstream run in their own processes (bench/_servers.ts); no datapath (a
 * static origin stands in for the redirect), so this measures the proxy itself.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { hasCommand, median, reportFigure, run } from '@membrane/test-utils'

const SERVERS = fileURLToPath(new URL('./_servers.ts', import.meta.url))
const TSX = createRequire(import.meta.url).resolve('tsx')
const SECONDS = Number(process.env.MEMBRANE_L7_SECONDS ?? 5)
const ROUNDS = Number(process.env.MEMBRANE_L7_ROUNDS ?? 3)
const CONNECTIONS = 50
const children: ChildProcess[] = []

function start(role: string, arg?: string): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--conditions=@membrane/source', '--import', TSX, SERVERS, role, ...(arg ? [arg] : [])],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(child)
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (l) =>
      resolve(Number(l)),
    )
    child.once('exit', (code) => reject(new Error(`${role} exited ${code}`)))
  })
}

/** wrk's latency in ms from "1.23ms" / "456.00us" / "1.20s". */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text)
  if (!m) return Number.NaN
  const v = Number(m[1])
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v
}

async function wrk(url: string, connections = CONNECTIONS) {
  const { stdout } = await run('wrk', [
    '-t1',
    `-c${connections}`,
    `-d${SECONDS}s`,
    '--latency',
    url,
  ])
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
  const p50 = ms(/\n\s+50%\s+(\S+)/.exec(stdout)?.[1] ?? '')
  const p99 = ms(/\n\s+99%\s+(\S+)/.exec(stdout)?.[1] ?? '')
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1]
  if (errors) throw new Error(`wrk saw ${errors} non-2xx responses on ${url}:\n${stdout}`)
  return { rps, p50, p99 }
}

async function main() {
  if (!hasCommand('wrk')) {
    reportFigure({ name: 'http.skipped', value: 0, unit: 'none', reason: 'wrk not installed' })
    return
  }
  const upstream = await start('upstream')
  const proxy = await start('http-proxy', String(upstream))
  const nodeProxy = await start('http-proxy-node', String(upstream))
  const direct = `http://127.0.0.1:${upstream}/public/index.html`
  const proxied = `http://127.0.0.1:${proxy}/public/index.html`
  const nodeProxied = `http://127.0.0.1:${nodeProxy}/public/index.html`
  await wrk(direct) // warm-up (JIT, connection setup)
  await wrk(proxied)
  const d: Array<{ rps: number; p50: number; p99: number }> = []
  const p: Array<{ rps: number; p50: number; p99: number }> = []
  const n: Array<{ rps: number; p50: number; p99: number }> = []
  for (let i = 0; i < ROUNDS; i++) {
    d.push(await wrk(direct))
    p.push(await wrk(proxied))
    n.push(await wrk(nodeProxied))
  }
  const base = { connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, client: 'wrk -t1' }
  const summary = (xs: typeof d) => ({
    rps: median(xs.map((x) => x.rps)),
    p50: median(xs.map((x) => x.p50)),
    p99: median(xs.map((x) => x.p99)),
  })
  const sd = summary(d)
  const sp = summary(p)
  reportFigure({ name: 'http.direct.rps', value: Math.round(sd.rps), unit: 'req/s', ...base })
  reportFigure({
    name: 'http.proxy.rps',
    value: Math.round(sp.rps),
    unit: 'req/s',
    ...base,
    target: 5000,
  })
  const sn = summary(n)
  reportFigure({
    name: 'http.proxy_node_engine.rps',
    value: Math.round(sn.rps),
    unit: 'req/s',
    ...base,
  })
  reportFigure({ name: 'http.proxy_node_engine.p50', value: sn.p50, unit: 'ms', ...base })
  reportFigure({ name: 'http.direct.p50', value: sd.p50, unit: 'ms', ...base })
  reportFigure({ name: 'http.proxy.p50', value: sp.p50, unit: 'ms', ...base })
  reportFigure({ name: 'http.direct.p99', value: sd.p99, unit: 'ms', ...base })
  reportFigure({ name: 'http.proxy.p99', value: sp.p99, unit: 'ms', ...base })
  reportFigure({
    name: 'http.proxy.rps_ratio',
    value: Number((sp.rps / sd.rps).toFixed(3)),
    unit: 'ratio',
    ...base,
  })
  // Unloaded: one connection, one request at a time — the latency the proxy adds per request.
  const d1 = []
  const p1 = []
  for (let i = 0; i < ROUNDS; i++) {
    d1.push(await wrk(direct, 1))
    p1.push(await wrk(proxied, 1))
  }
  const one = { ...base, connections: 1 }
  const sd1 = summary(d1)
  const sp1 = summary(p1)
  reportFigure({ name: 'http.direct.p50_1conn', value: sd1.p50, unit: 'ms', ...one })
  reportFigure({ name: 'http.proxy.p50_1conn', value: sp1.p50, unit: 'ms', ...one })
  reportFigure({ name: 'http.proxy.rps_1conn', value: Math.round(sp1.rps), unit: 'req/s', ...one })
  reportFigure({
    name: 'http.proxy.p50_overhead_1conn',
    value: Number((sp1.p50 - sd1.p50).toFixed(3)),
    unit: 'ms',
    ...one,
    target: 1,
  })
  reportFigure({
    name: 'http.proxy.p50_overhead',
    value: Number((sp.p50 - sd.p50).toFixed(3)),
    unit: 'ms',
    ...base,
    target: 1,
  })
}

main()
  .catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`)
    process.exitCode = 1
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM')
  })
