/**
 * HTTP through the proxy vs direct to the same server, side by side in one run: wrk (Debian),
 * 50 connections, one thread (the machine has 2 cores), keep-alive; alternating rounds so both see the same machine load.
 * Figures: requests/s and p50/p99 latency per path (the fast engine; the Node-http engine's
 * requests/s and p50 beside it), the throughput ratio, the p50 overhead at 50 connections and
 * unloaded (one connection), and the CPU time (user + system, from /proc) the proxy and the
 * upstream spend per request during the proxied rounds: what the proxy costs next to the server
 * it guards, a figure the load of other work on the machine disturbs less than throughput.
 * Ratios and overheads are medians over direct/proxied pairs run back to back in alternating
 * order (the one-connection pairs short and three times as many), so load drift cancels.
 * The proxy and the upstream run in their own processes (bench/_servers.ts); the proxy as the
 * agent runs it (one L7Proxy listener, each request's two records sent as JSON lines to a
 * stand-in of the agent in a third process); no datapath (a static origin stands in for the
 * redirect), so this measures the proxy itself.
 *
 * wrk is closed-loop: each connection sends its next request as soon as the previous answer is
 * in, so at 50 connections the machine runs saturated and p50 is ~50 / throughput — queueing on
 * the two shared cores, not the proxy's cost per request. The `http.paced<rate>.*` figures are
 * the open-loop measurement at the target load: bench/_paced.ts (its own process) offers
 * PACED_RATE req/s in total over 50 keep-alive connections on a fixed timetable and measures each
 * latency from the request's due time (no coordinated omission); direct and through the same
 * proxy, alternating rounds. Figures: p50/p99 per path, the p50 overhead, achieved rate, errors.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { hasCommand, median, reportFigure, run } from '@membrane/test-utils'

const SERVERS = fileURLToPath(new URL('./_servers.ts', import.meta.url))
const TSX = createRequire(import.meta.url).resolve('tsx')
const SECONDS = Number(process.env.MEMBRANE_L7_SECONDS ?? 5)
const ROUNDS = Number(process.env.MEMBRANE_L7_ROUNDS ?? 3)
/** One-connection rounds: short, and three times as many. */
const ONE_SECONDS = Math.max(1, Math.round(SECONDS / 2))
const ONE_ROUNDS = ROUNDS * 3
const CONNECTIONS = 50
const PACED = fileURLToPath(new URL('./_paced.ts', import.meta.url))
const PACED_RATE = Number(process.env.MEMBRANE_L7_PACED_RATE ?? 5000)
const children: ChildProcess[] = []

function start(role: string, ...args: string[]): Promise<number> {
  return startChild(role, ...args).then(([port]) => port)
}

function startChild(role: string, ...args: string[]): Promise<[number, ChildProcess]> {
  const child = spawn(
    process.execPath,
    ['--conditions=@membrane/source', '--import', TSX, SERVERS, role, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(child)
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (l) =>
      resolve([Number(l), child]),
    )
    child.once('exit', (code) => reject(new Error(`${role} exited ${code}`)))
  })
}

/** CPU time (user + system) of a process so far, in clock ticks (/proc/<pid>/stat). */
function cpuTicks(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/** wrk's latency in ms from "1.23ms" / "456.00us" / "1.20s". */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text)
  if (!m) return Number.NaN
  const v = Number(m[1])
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v
}

async function wrk(
  url: string,
  connections = CONNECTIONS,
  watch: ChildProcess[] = [],
  seconds = SECONDS,
) {
  const before = watch.map((c) => cpuTicks(c.pid))
  const { stdout } = await run('wrk', [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--latency',
    url,
  ])
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
  const p50 = ms(/\n\s+50%\s+(\S+)/.exec(stdout)?.[1] ?? '')
  const p99 = ms(/\n\s+99%\s+(\S+)/.exec(stdout)?.[1] ?? '')
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1]
  if (errors) throw new Error(`wrk saw ${errors} non-2xx responses on ${url}:\n${stdout}`)
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1])
  // Microseconds of CPU per request of each watched process (clock ticks are 10 ms).
  const cpu = watch.map((c, i) => ((cpuTicks(c.pid) - (before[i] as number)) * 1e4) / requests)
  return { rps, p50, p99, cpu }
}

interface Paced {
  due: number
  completed: number
  errors: number
  late: number
  rate: number
  p50: number
  p99: number
  serviceP50: number
  lagP50: number
  lagP99: number
}

/** One open-loop run of bench/_paced.ts (its own process): PACED_RATE req/s over 50 connections. */
async function paced(url: string, seconds = SECONDS): Promise<Paced> {
  const { stdout } = await run(process.execPath, [
    '--import',
    TSX,
    PACED,
    url,
    String(PACED_RATE),
    String(CONNECTIONS),
    String(seconds),
  ])
  const result = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Paced
  if (result.rate < PACED_RATE * 0.95) {
    process.stderr.write(`paced: ${url} achieved ${result.rate} of ${PACED_RATE} req/s\n`)
  }
  return result
}

/** Open loop at the target load, direct and through the proxy, alternating rounds. */
async function pacedFigures(direct: string, proxied: string) {
  await paced(direct, 2) // warm-up
  await paced(proxied, 2)
  const d: Paced[] = []
  const p: Paced[] = []
  for (let i = 0; i < ROUNDS; i++) {
    d.push(await paced(direct))
    p.push(await paced(proxied))
  }
  const name = `http.paced${PACED_RATE}`
  const base = {
    connections: CONNECTIONS,
    offeredRate: PACED_RATE,
    seconds: SECONDS,
    rounds: ROUNDS,
    client: 'bench/_paced.ts (open loop, latency from due time)',
  }
  const figures = (path: 'direct' | 'proxy', xs: Paced[]) => {
    const p50 = median(xs.map((x) => x.p50))
    reportFigure({
      name: `${name}.${path}.p50`,
      value: p50,
      unit: 'ms',
      ...base,
      perRound: xs.map((x) => x.p50),
      serviceP50: median(xs.map((x) => x.serviceP50)),
      sendLagP50: median(xs.map((x) => x.lagP50)),
    })
    reportFigure({
      name: `${name}.${path}.p99`,
      value: median(xs.map((x) => x.p99)),
      unit: 'ms',
      ...base,
      perRound: xs.map((x) => x.p99),
      sendLagP99: median(xs.map((x) => x.lagP99)),
      lateRequests: xs.map((x) => x.late),
    })
    reportFigure({
      name: `${name}.${path}.rate`,
      value: median(xs.map((x) => x.rate)),
      unit: 'req/s',
      ...base,
      perRound: xs.map((x) => x.rate),
      completed: xs.reduce((a, x) => a + x.completed, 0),
      due: xs.reduce((a, x) => a + x.due, 0),
    })
    reportFigure({
      name: `${name}.${path}.errors`,
      value: xs.reduce((a, x) => a + x.errors, 0),
      unit: 'requests',
      ...base,
    })
    return p50
  }
  const dp50 = figures('direct', d)
  const pp50 = figures('proxy', p)
  reportFigure({
    name: `${name}.p50_overhead`,
    value: Number((pp50 - dp50).toFixed(3)),
    unit: 'ms',
    ...base,
    target: 1,
  })
}

async function main() {
  if (!hasCommand('wrk')) {
    reportFigure({ name: 'http.skipped', value: 0, unit: 'none', reason: 'wrk not installed' })
    return
  }
  const [upstream, upstreamChild] = await startChild('upstream')
  // The proxies send their records to a stand-in of the agent, as the agent's proxy process does.
  const agentSocket = join(tmpdir(), `membrane-bench-agent-${process.pid}.sock`)
  rmSync(agentSocket, { force: true })
  await start('agent', agentSocket)
  const [proxy, proxyChild] = await startChild('http-proxy', String(upstream), agentSocket)
  const nodeProxy = await start('http-proxy-node', String(upstream), agentSocket)
  const direct = `http://127.0.0.1:${upstream}/public/index.html`
  const proxied = `http://127.0.0.1:${proxy}/public/index.html`
  const nodeProxied = `http://127.0.0.1:${nodeProxy}/public/index.html`
  await wrk(direct) // warm-up (JIT, connection setup)
  await wrk(proxied)
  type Round = Awaited<ReturnType<typeof wrk>>
  const d: Round[] = []
  const p: Round[] = []
  const n: Round[] = []
  for (let i = 0; i < ROUNDS; i++) {
    // Direct and proxied back to back, in alternating order, so drift in the machine's load
    // hits both sides of each round's ratio alike.
    const viaProxy = () => wrk(proxied, CONNECTIONS, [proxyChild, upstreamChild])
    if (i % 2 === 0) {
      d.push(await wrk(direct))
      p.push(await viaProxy())
    } else {
      p.push(await viaProxy())
      d.push(await wrk(direct))
    }
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
  // The median of the per-round ratios (each from one direct/proxied pair).
  const ratios = p.map((x, i) => x.rps / (d[i] as Round).rps)
  reportFigure({
    name: 'http.proxy.rps_ratio',
    value: Number(median(ratios).toFixed(3)),
    unit: 'ratio',
    ...base,
    perRound: ratios.map((r) => Number(r.toFixed(3))),
    target: 0.6,
  })
  // CPU per request while proxied: the proxy next to the upstream server it guards.
  const proxyCpu = median(p.map((x) => x.cpu[0] as number))
  const upstreamCpu = median(p.map((x) => x.cpu[1] as number))
  reportFigure({
    name: 'http.proxy.cpu_per_request',
    value: Number(proxyCpu.toFixed(1)),
    unit: 'us',
    ...base,
    perRound: p.map((x) => Number((x.cpu[0] as number).toFixed(1))),
  })
  reportFigure({
    name: 'http.upstream.cpu_per_request',
    value: Number(upstreamCpu.toFixed(1)),
    unit: 'us',
    ...base,
    perRound: p.map((x) => Number((x.cpu[1] as number).toFixed(1))),
  })
  reportFigure({
    name: 'http.proxy.cpu_ratio_to_upstream',
    value: Number((proxyCpu / upstreamCpu).toFixed(3)),
    unit: 'ratio',
    ...base,
    target: 1,
  })
  // Unloaded: one connection, one request at a time — the latency the proxy adds per request.
  // Short pairs, many of them, in alternating order; the overhead is the median of the pairs'
  // differences.
  const d1: Round[] = []
  const p1: Round[] = []
  for (let i = 0; i < ONE_ROUNDS; i++) {
    if (i % 2 === 0) {
      d1.push(await wrk(direct, 1, [], ONE_SECONDS))
      p1.push(await wrk(proxied, 1, [], ONE_SECONDS))
    } else {
      p1.push(await wrk(proxied, 1, [], ONE_SECONDS))
      d1.push(await wrk(direct, 1, [], ONE_SECONDS))
    }
  }
  const one = { ...base, connections: 1, seconds: ONE_SECONDS, rounds: ONE_ROUNDS }
  const overheads = p1.map((x, i) => x.p50 - (d1[i] as Round).p50)
  const sd1 = summary(d1)
  const sp1 = summary(p1)
  reportFigure({ name: 'http.direct.p50_1conn', value: sd1.p50, unit: 'ms', ...one })
  reportFigure({ name: 'http.proxy.p50_1conn', value: sp1.p50, unit: 'ms', ...one })
  reportFigure({ name: 'http.proxy.rps_1conn', value: Math.round(sp1.rps), unit: 'req/s', ...one })
  reportFigure({
    name: 'http.proxy.p50_overhead_1conn',
    value: Number(median(overheads).toFixed(3)),
    unit: 'ms',
    ...one,
    perRound: overheads.map((o) => Number(o.toFixed(3))),
    target: 0.05,
  })
  reportFigure({
    name: 'http.proxy.p50_overhead',
    value: Number((sp.p50 - sd.p50).toFixed(3)),
    unit: 'ms',
    ...base,
    target: 1,
  })
  await pacedFigures(direct, proxied)
}

main()
  .catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`)
    process.exitCode = 1
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM')
  })
