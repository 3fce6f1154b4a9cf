// Flows pipeline benchmark: datapath records -> decode -> enrich -> ring -> protobuf -> gRPC
// stream (unix socket) -> a client process that decodes every flow. JSON lines on stdout.
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { reportFigure, requireKernel } from '@membrane/test-utils'
import { eventToFlow, monotonicClock } from '../src/convert'
import { StaticEnricher } from '../src/enrich'
import { decodeEvent, EventType, encodeEvent } from '../src/event'
import { FlowObserver } from '../src/observer'
import { encodeFlow } from '../src/proto'
import { startObserverServer } from '../src/server'

const quick = process.env.MEMBRANE_BENCH_QUICK === '1'
/** Run only the named cases (comma list of: stages, fast, decoding, slow, kernel); default all. */
const only = (process.env.MEMBRANE_BENCH_ONLY ?? '').split(',').filter(Boolean)
const want = (c: string) => only.length === 0 || only.includes(c)
const TOTAL = quick ? 1_000_000 : 10_000_000
const SLOW_TOTAL = quick ? 200_000 : 1_000_000
const SLOW_RATE = 5_000
const BURST = 512 // records per ring-buffer wake-up

function enricher(): StaticEnricher {
  const e = new StaticEnricher()
  for (let i = 1; i <= 64; i++) {
    e.endpoints.set(`10.0.${i >> 8}.${i & 255}`, {
      endpointId: i,
      identity: 1000 + (i % 8),
      namespace: 'default',
      podName: `app${i % 8}-7d9f8b6c5d-${i}`,
      labels: [`k8s:app=app${i % 8}`, 'k8s:io.kubernetes.pod.namespace=default'],
    })
  }
  for (let i = 0; i < 8; i++) e.identities.set(1000 + i, [`k8s:app=app${i}`])
  // Policy attribution on: verdicts and policy drops name their policies.
  const policy = (name: string) =>
    Object.freeze({
      name,
      namespace: 'default',
      labels: [`k8s:io.cilium.k8s.policy.name=${name}`],
      revision: 1,
      kind: 'CiliumNetworkPolicy',
    })
  for (let s = 1; s <= 4; s++) e.ruleSets.set(s, Object.freeze([policy(`allow-${s}`)]))
  for (let i = 1; i <= 64; i++)
    for (const d of [1, 2])
      e.defaultDeny.set(StaticEnricher.defaultDenyKey(i, d), Object.freeze([policy(`app${i % 8}`)]))
  e.services.set(StaticEnricher.serviceKey('10.96.0.10', 80, 6), {
    name: 'web',
    namespace: 'default',
  })
  return e
}

// A pool of distinct records like the datapath writes: traces, drops, policy verdicts.
function records(n: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const kind = i % 10
    out.push(
      encodeEvent({
        type: kind < 7 ? EventType.TRACE : kind < 9 ? EventType.DROP : EventType.POLICY_VERDICT,
        subtype: kind < 7 ? i % 12 : kind < 9 ? 133 : 0,
        action: 1,
        matchType: 1,
        direction: 1 + (i % 2),
        protocol: i % 5 === 0 ? 17 : 6,
        tcpFlags: 0x12,
        endpointId: 1 + (i % 64),
        ifindex: 4,
        srcIdentity: 1000 + (i % 8),
        dstIdentity: 1000 + ((i + 3) % 8),
        len: 60 + (i % 1400),
        ktimeNs: Number(process.hrtime.bigint()),
        sport: 30000 + i,
        dport: 80,
        saddr: `10.0.0.${1 + (i % 64)}`,
        daddr: `10.0.0.${1 + ((i + 7) % 64)}`,
        smac: '02:00:00:00:00:01',
        dmac: '02:00:00:00:00:02',
        ruleSet: kind === 9 ? 1 + (i % 4) : 0,
      }),
    )
  }
  return out
}

function rate(n: number, fn: () => void): number {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn()
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  return n / s
}

const gc = (globalThis as { gc?: () => void }).gc
const heapMiB = () => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed / 2 ** 20
}

// ---- 1. stages, in-process ----
if (want('stages')) {
  const pool = records(4096)
  const clock = monotonicClock()
  const enr = enricher()
  let i = 0
  const next = () => pool[i++ & 4095] as Buffer
  const N = quick ? 200_000 : 1_000_000
  reportFigure({
    name: 'decode',
    value: Math.round(rate(N, () => decodeEvent(next()))),
    unit: 'events/s',
  })
  reportFigure({
    name: 'decode+enrich',
    value: Math.round(
      rate(N, () => eventToFlow(decodeEvent(next()), { enricher: enr, clock, nodeName: 'n' })),
    ),
    unit: 'events/s',
  })
  const flows = pool.map((r) =>
    eventToFlow(decodeEvent(r), { enricher: enr, clock, nodeName: 'n' }),
  )
  reportFigure({
    name: 'encode Flow protobuf',
    value: Math.round(rate(N, () => encodeFlow(flows[i++ & 4095] as never))),
    unit: 'flows/s',
  })
}

// ---- 2/3. end to end over gRPC ----
const here = fileURLToPath(new URL('.', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'mb-flows-bench-'))

function startClient(
  target: string,
  flowsPerSecond: number,
  mode = 'count',
): Promise<ChildProcess> {
  const child = fork(join(here, '_client.ts'), [target, String(flowsPerSecond), mode], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child))
    child.once('exit', (c) => reject(new Error(`bench client exited ${c}`)))
  })
}

interface Counts {
  flows: number
  lostRing: number
  lostOther: number
}
function ask(child: ChildProcess): Promise<Counts> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Counts))
    child.send({ cmd: 'report' })
  })
}
async function stop(child: ChildProcess): Promise<Counts> {
  const done = new Promise<Counts>((resolve) => {
    child.on('message', (m: Counts & { done?: boolean }) => {
      if (m.done) resolve(m)
    })
  })
  child.send({ cmd: 'stop' })
  const c = await done
  await new Promise((r) => child.once('exit', r))
  return c
}

async function endToEnd(label: string, total: number, clientRate: number, mode = 'count') {
  const observer = new FlowObserver({ nodeName: 'bench', enricher: enricher() })
  const server = await startObserverServer(observer, {
    address: `unix://${join(dir, `${label}.sock`)}`,
    maxBufferedBytes: Number(process.env.MEMBRANE_BENCH_MAXBUF ?? 4 << 20),
  })
  const client = await startClient(server.target, clientRate, mode)
  const pool = records(8192)
  const heapBefore = heapMiB()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  let produced = 0
  while (produced < total) {
    const end = Math.min(total, produced + BURST)
    for (; produced < end; produced++) observer.ingestEvent(pool[produced & 8191] as Buffer)
    await new Promise((r) => setImmediate(r))
  }
  const produceS = Number(process.hrtime.bigint() - t0) / 1e9
  // let the stream drain (or, for a slow client, stop once it has had 2 s more)
  let counts = await ask(client)
  const waitUntil = Date.now() + (clientRate ? 2000 : 30_000)
  while (counts.flows + counts.lostRing < total && Date.now() < waitUntil) {
    await new Promise((r) => setTimeout(r, 50))
    counts = await ask(client)
  }
  const totalS = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const cpuS = (cpu.user + cpu.system) / 1e6
  counts = await stop(client)
  const heapAfter = heapMiB()
  await server.close()
  const extra = {
    events: total,
    client: `${clientRate ? `${clientRate} flows/s` : 'unpaced'}, ${mode}`,
    burst: BURST,
    ring: observer.ring.capacity,
  }
  reportFigure({
    name: `${label}: events ingested`,
    value: Math.round(total / produceS),
    unit: 'events/s',
    ...extra,
  })
  reportFigure({
    // This machine's cores are shared: events per CPU-second of the server process is the
    // figure that does not depend on how much CPU the scheduler gave us.
    name: `${label}: events per server CPU-second (decode+enrich+encode+send)`,
    value: Math.round(total / cpuS),
    unit: 'events/cpu-s',
    ...extra,
  })
  reportFigure({
    name: `${label}: flows delivered to client`,
    value: Math.round(counts.flows / totalS),
    unit: 'flows/s',
    ...extra,
  })
  reportFigure({ name: `${label}: flows received`, value: counts.flows, unit: 'flows', ...extra })
  reportFigure({
    name: `${label}: reported lost (ring overwrote before send)`,
    value: counts.lostRing,
    unit: 'flows',
    ...extra,
  })
  reportFigure({
    name: `${label}: unaccounted (events - received - reported lost)`,
    value: total - counts.flows - counts.lostRing,
    unit: 'flows',
    ...extra,
  })
  reportFigure({
    name: `${label}: heap before`,
    value: Number(heapBefore.toFixed(1)),
    unit: 'MiB',
    ...extra,
  })
  reportFigure({
    name: `${label}: heap after`,
    value: Number(heapAfter.toFixed(1)),
    unit: 'MiB',
    ...extra,
  })
}

try {
  if (want('fast')) await endToEnd('grpc fast client', TOTAL, 0, 'raw')
  if (want('grpcjs')) await endToEnd('grpc-js counting client', SLOW_TOTAL, 0, 'count')
  if (want('decoding')) await endToEnd('grpc decoding client', SLOW_TOTAL, 0, 'decode')
  if (want('slow')) await endToEnd('grpc slow client', SLOW_TOTAL, SLOW_RATE, 'raw')

  // ---- 4. the real kernel ring buffer as the source ----
  const k = requireKernel(['root', 'bpf', 'clang'])
  if (!want('kernel')) {
    // not asked for
  } else if (k.ok) {
    const { kernelRingBench } = await import('./_kernel')
    await kernelRingBench(dir, quick ? 200_000 : 2_000_000, enricher(), startClient, stop, ask)
  } else {
    process.stderr.write(`bench: skipping the kernel ring-buffer case: ${k.reason}\n`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
