// npm run bench -- agent/api-latency
// Latency of a small API request (GET /v1/endpoints, sequential) while a 4 MB policy import
// (about 11 000 valid CiliumNetworkPolicies, a 3.95 MB request body) is being processed, next to
// the same request on an idle agent. Target: p99 <= 50 ms during the import (issue 20; before
// parsing moved to a worker thread the API was blocked for the whole parse).
import { rmSync } from 'node:fs'
import { request } from 'node:http'
import { median, percentile, reportFigure } from '@membrane/test-utils'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { benchConfig, bigPolicyText } from './_fixture'

const IDLE_SAMPLES = 300
const ENDPOINTS = 5

const { config, dir } = benchConfig('bl')

/** POST a body on the API socket; resolves with the status once the answer is complete. */
function post(path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: config.socketPath,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

async function timedGet(client: AgentClient): Promise<number> {
  const t0 = performance.now()
  await client.get('/v1/endpoints')
  return performance.now() - t0
}

let daemon: AgentDaemon | undefined
try {
  daemon = await startDaemon({ config })
  const client = new AgentClient(config.socketPath!)
  for (let i = 0; i < ENDPOINTS; i++) {
    await client.post('/v1/endpoints', { name: `ep-${i}`, labels: { app: `svc-${i}` } })
  }
  const idle: number[] = []
  for (let i = 0; i < IDLE_SAMPLES; i++) idle.push(await timedGet(client))

  const text = bigPolicyText(3_700_000)
  const body = JSON.stringify({ text, source: 'big.yaml' })
  const during: number[] = []
  let done = false
  const t0 = performance.now()
  const importing = post('/v1/policies', body).finally(() => {
    done = true
  })
  while (!done) during.push(await timedGet(client))
  const status = await importing
  const importMs = performance.now() - t0
  if (status !== 200) throw new Error(`the import answered ${status}`)

  const extra = { request: 'GET /v1/endpoints', importBytes: body.length, endpoints: ENDPOINTS }
  reportFigure({
    name: 'agent.api_latency_idle.p50',
    value: +median(idle).toFixed(2),
    unit: 'ms',
    ...extra,
  })
  reportFigure({
    name: 'agent.api_latency_idle.p99',
    value: +percentile(idle, 99).toFixed(2),
    unit: 'ms',
    ...extra,
  })
  reportFigure({
    name: 'agent.api_latency_during_4mb_import.p50',
    value: +median(during).toFixed(2),
    unit: 'ms',
    samples: during.length,
    ...extra,
  })
  reportFigure({
    name: 'agent.api_latency_during_4mb_import.p99',
    value: +percentile(during, 99).toFixed(2),
    unit: 'ms',
    target: 50,
    samples: during.length,
    ...extra,
  })
  reportFigure({
    name: 'agent.api_latency_during_4mb_import.max',
    value: +Math.max(...during).toFixed(2),
    unit: 'ms',
    samples: during.length,
    ...extra,
  })
  reportFigure({
    name: 'agent.policy_import_4mb',
    value: +importMs.toFixed(0),
    unit: 'ms',
    ...extra,
  })
} finally {
  await daemon?.stop({ purge: true })
  rmSync(dir, { recursive: true, force: true })
}
