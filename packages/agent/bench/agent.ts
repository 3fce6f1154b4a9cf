// npm run bench -- agent
// 1. time from `endpoint create` (API call) to policy enforced (BPF policy map filled, programs
//    attached) over 50 endpoints with 250 CNPs loaded: p50/p99 (target p99 <= 250 ms; anchor:
//    Cilium's scalability report, < 600 ms with 250 CNPs);
// 2. agent RSS with 100 endpoints;
// 3. restart-to-reconciled with 100 endpoints (graceful stop, start on the same state and pins).
import { rmSync } from 'node:fs'
import { median, percentile, reportFigure } from '@membrane/test-utils'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { benchConfig, cnp } from './_fixture'

const CNPS = 250
const TIMED = 50
const TOTAL = 100

const { config, dir } = benchConfig('bn')

let daemon: AgentDaemon | undefined
try {
  daemon = await startDaemon({ config })
  const client = new AgentClient(config.socketPath)
  const status = await client.get<AgentStatus>('/v1/status')
  const enforced = status.components.datapath?.state === 'ok'
  if (!enforced)
    process.stderr.write(`datapath not loaded: ${status.components.datapath?.detail}\n`)
  await client.post('/v1/policies', {
    text: Array.from({ length: CNPS }, (_, i) => cnp(i)).join('---\n'),
  })

  const durations: number[] = []
  for (let i = 0; i < TOTAL; i++) {
    const t0 = performance.now()
    const { endpoint } = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: `ep-${i}`,
      labels: { app: `svc-${i % CNPS}`, role: `client-${(i + 1) % CNPS}` },
    })
    if (enforced) {
      // Enforced = attached and its BPF policy map holds its entries (read back from the kernel).
      const map = await client.get<{ source: string; entries: unknown[] }>(
        `/v1/bpf/policy/default/ep-${i}`,
      )
      if (!endpoint.enforcing || map.source !== 'bpf' || map.entries.length === 0) {
        throw new Error(`endpoint ep-${i} not enforcing after create`)
      }
    }
    const ms = performance.now() - t0
    if (i < TIMED) durations.push(ms)
  }
  const extra = {
    endpoints: TIMED,
    cnps: CNPS,
    enforced,
    anchor: 'Cilium scalability report: < 600 ms with 250 CNPs',
  }
  reportFigure({
    name: 'agent.endpoint_create_to_enforced.p50',
    value: +median(durations).toFixed(1),
    unit: 'ms',
    ...extra,
  })
  reportFigure({
    name: 'agent.endpoint_create_to_enforced.p99',
    value: +percentile(durations, 99).toFixed(1),
    unit: 'ms',
    target: 250,
    ...extra,
  })

  global.gc?.()
  reportFigure({
    name: 'agent.rss_with_endpoints',
    value: +(process.memoryUsage().rss / 1024 / 1024).toFixed(1),
    unit: 'MiB',
    endpoints: TOTAL,
    cnps: CNPS,
    note: 'the agent process (in-process daemon, API served over its unix socket)',
  })

  await daemon.stop()
  daemon = undefined
  const t0 = performance.now()
  daemon = await startDaemon({ config })
  const restartMs = performance.now() - t0
  const eps = await client.get<EndpointView[]>('/v1/endpoints')
  const ready = eps.filter((e) => e.health === 'ready' && (!enforced || e.enforcing)).length
  if (ready !== TOTAL) throw new Error(`only ${ready} of ${TOTAL} endpoints reconciled`)
  reportFigure({
    name: 'agent.restart_to_reconciled',
    value: +restartMs.toFixed(0),
    unit: 'ms',
    endpoints: TOTAL,
    cnps: CNPS,
    enforced,
  })
} finally {
  await daemon?.stop({ purge: true })
  rmSync(dir, { recursive: true, force: true })
}
