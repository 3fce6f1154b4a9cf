/**
 * DNS lookups per second through the DNS proxy vs direct to the same dnsmasq (Debian), side by
 * side in one run: a UDP client keeps WINDOW queries in flight for a few seconds per round,
 * alternating direct and proxied rounds. The proxy runs in its own process
 * (bench/_servers.ts; a static origin stands in for the datapath redirect); every answer goes
 * through the learn path (cache + hook) before it is forwarded.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePort, hasCommand, median, percentile, reportFigure } from '@membrane/test-utils'
import { buildDnsQuery } from '../src/index'

const SERVERS = fileURLToPath(new URL('./_servers.ts', import.meta.url))
const TSX = createRequire(import.meta.url).resolve('tsx')
const SECONDS = Number(process.env.MEMBRANE_L7_SECONDS ?? 4)
const ROUNDS = Number(process.env.MEMBRANE_L7_ROUNDS ?? 3)
const WINDOW = 64
const NAMES = 50
const children: ChildProcess[] = []

function startProxy(upstreamPort: number): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--conditions=@membrane/source', '--import', TSX, SERVERS, 'dns-proxy', String(upstreamPort)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(child)
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (l) =>
      resolve(Number(l)),
    )
    child.once('exit', (code) => reject(new Error(`dns-proxy exited ${code}`)))
  })
}

async function startDnsmasq(): Promise<number> {
  const port = await freePort()
  const args = [
    '--no-daemon',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--bind-interfaces',
    '--listen-address=127.0.0.1',
    `--port=${port}`,
    '--pid-file=',
    '--user=root',
    '--dns-forward-max=1000',
  ]
  for (let i = 0; i < NAMES; i++) args.push(`--host-record=h${i}.example.test,10.77.0.${i + 1},300`)
  const child = spawn('dnsmasq', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  children.push(child)
  await new Promise((r) => setTimeout(r, 500))
  if (child.exitCode !== null) throw new Error('dnsmasq exited')
  return port
}

/** Keep WINDOW queries in flight against port for SECONDS; answered/s and latencies (ms). */
function load(port: number): Promise<{ qps: number; p50: number; p99: number; lost: number }> {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    const sent = new Map<number, bigint>()
    const lat: number[] = []
    let next = 1
    let answered = 0
    let stop = false
    const send = () => {
      const id = next++ & 0xffff
      sent.set(id, process.hrtime.bigint())
      s.send(buildDnsQuery(id, `h${id % NAMES}.example.test`), port, '127.0.0.1')
    }
    s.on('message', (m) => {
      const id = m.readUInt16BE(0)
      const t0 = sent.get(id)
      if (t0 === undefined) return
      sent.delete(id)
      answered++
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6)
      if (!stop) send()
    })
    // Replace queries lost to a full socket buffer so the window stays full.
    const refill = setInterval(() => {
      const now = process.hrtime.bigint()
      for (const [id, t0] of sent)
        if (now - t0 > 1_000_000_000n) {
          sent.delete(id)
          if (!stop) send()
        }
    }, 200)
    s.bind(0, '127.0.0.1', () => {
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < WINDOW; i++) send()
      setTimeout(() => {
        stop = true
        const secs = Number(process.hrtime.bigint() - t0) / 1e9
        clearInterval(refill)
        s.close()
        resolve({
          qps: answered / secs,
          p50: percentile(lat, 50),
          p99: percentile(lat, 99),
          lost: sent.size,
        })
      }, SECONDS * 1000)
    })
  })
}

async function main() {
  if (!hasCommand('dnsmasq')) {
    reportFigure({ name: 'dns.skipped', value: 0, unit: 'none', reason: 'dnsmasq not installed' })
    return
  }
  const upstream = await startDnsmasq()
  const proxy = await startProxy(upstream)
  await load(upstream)
  await load(proxy)
  const d = []
  const p = []
  for (let i = 0; i < ROUNDS; i++) {
    d.push(await load(upstream))
    p.push(await load(proxy))
  }
  const base = { window: WINDOW, seconds: SECONDS, rounds: ROUNDS, names: NAMES }
  const dq = median(d.map((x) => x.qps))
  const pq = median(p.map((x) => x.qps))
  reportFigure({ name: 'dns.direct.qps', value: Math.round(dq), unit: 'lookups/s', ...base })
  reportFigure({
    name: 'dns.proxy.qps',
    value: Math.round(pq),
    unit: 'lookups/s',
    ...base,
    target: 5000,
  })
  reportFigure({
    name: 'dns.direct.p50',
    value: Number(median(d.map((x) => x.p50)).toFixed(3)),
    unit: 'ms',
    ...base,
  })
  reportFigure({
    name: 'dns.proxy.p50',
    value: Number(median(p.map((x) => x.p50)).toFixed(3)),
    unit: 'ms',
    ...base,
  })
  reportFigure({
    name: 'dns.proxy.p99',
    value: Number(median(p.map((x) => x.p99)).toFixed(3)),
    unit: 'ms',
    ...base,
  })
  reportFigure({
    name: 'dns.proxy.qps_ratio',
    value: Number((pq / dq).toFixed(3)),
    unit: 'ratio',
    ...base,
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
