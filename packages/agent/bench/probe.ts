// npm run bench -- agent/probe
// `membrane policy probe` on 50 endpoints × 5 ports (issue 19): 50 × 49 × 5 = 12 250 cells, half
// of them denied (a denied cell costs the connect timeout). One policy selects every endpoint and
// allows ingress on 5 ports from tier=front only. Figures: the prediction alone, and predicted +
// measured with a 300 ms connect timeout (a timeout is tried once more) and 128 connections in
// flight.
import { rmSync } from 'node:fs'
import { reportFigure } from '@membrane/test-utils'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import type { ProbeResult } from '../src/internal/probe'
import { benchConfig } from './_fixture'

const ENDPOINTS = 50
const PORTS = [8001, 8002, 8003, 8004, 8005]
const TIMEOUT_MS = 300
const CONCURRENCY = 128

const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: front-only
  namespace: default
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints:
        - matchLabels:
            tier: front
      toPorts:
        - ports:
${PORTS.map((p) => `            - port: "${p}"\n              protocol: TCP`).join('\n')}
`

const { config, dir } = benchConfig('bp')
let daemon: AgentDaemon | undefined
try {
  daemon = await startDaemon({ config })
  const client = new AgentClient(config.socketPath!)
  for (let i = 0; i < ENDPOINTS; i++) {
    await client.post('/v1/endpoints', {
      name: `ep-${i}`,
      labels: { app: `svc-${i}`, tier: i % 2 === 0 ? 'front' : 'back' },
    })
  }
  await client.post('/v1/policies', { text: policy })
  const extra = { endpoints: ENDPOINTS, ports: PORTS.length }

  let t0 = performance.now()
  const predicted = await client.post<ProbeResult>('/v1/policy/probe', { measure: false })
  reportFigure({
    name: 'agent.probe_predict_50x5',
    value: +(performance.now() - t0).toFixed(0),
    unit: 'ms',
    cells: predicted.cells.length,
    ...extra,
  })

  t0 = performance.now()
  const r = await client.post<ProbeResult>('/v1/policy/probe', {
    timeoutMs: TIMEOUT_MS,
    concurrency: CONCURRENCY,
    deadlineMs: 600_000,
  })
  const ms = performance.now() - t0
  if (!r.complete) throw new Error('the probe hit its deadline')
  const figure = {
    cells: r.cells.length,
    denied: r.cells.filter((c) => c.measured === 'denied').length,
    differences: r.differences,
    timeoutMs: TIMEOUT_MS,
    concurrency: CONCURRENCY,
    ...extra,
  }
  reportFigure({
    name: 'agent.probe_measure_50x5',
    value: +(ms / 1000).toFixed(2),
    unit: 's',
    ...figure,
  })
  reportFigure({
    name: 'agent.probe_measure_50x5.cells_per_second',
    value: Math.round(r.cells.length / (ms / 1000)),
    unit: 'cells/s',
    ...figure,
  })
} finally {
  await daemon?.stop({ purge: true })
  rmSync(dir, { recursive: true, force: true })
}
