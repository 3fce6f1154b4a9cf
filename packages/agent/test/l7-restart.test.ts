import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describeKernel, killAndWait, run } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { testConfig } from './helpers'

const demo = join(import.meta.dirname, '..', '..', '..', 'examples', 'star-wars')
const L7 = readFileSync(join(demo, 'policies', 'sw_l3_l4_l7_policy.yaml'), 'utf8')

describeKernel('L7 enforcement across an agent restart', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon | undefined
  let server: ChildProcess | undefined
  let ds: EndpointView
  let tie: EndpointView

  const ship = async (method: string, path: string) =>
    JSON.parse(
      (
        await run('ip', [
          'netns',
          'exec',
          tie.netns!,
          process.execPath,
          join(demo, 'src', 'ship.mjs'),
          method,
          `http://${ds.ipv4}${path}`,
          '2000',
        ])
      ).stdout,
    ) as { status?: number; body?: string; error?: string }

  beforeAll(async () => {
    daemon = await startDaemon({ config })
    const client = new AgentClient(config.socketPath)
    const status = await client.get<AgentStatus>('/v1/status')
    expect(status.components.l7proxy?.state, status.components.l7proxy?.detail).toBe('ok')
    ds = (
      await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name: 'deathstar',
        labels: { org: 'empire', class: 'deathstar' },
      })
    ).endpoint
    tie = (
      await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name: 'tiefighter',
        labels: { org: 'empire' },
      })
    ).endpoint
    server = spawn(
      'ip',
      [
        'netns',
        'exec',
        ds.netns!,
        process.execPath,
        join(demo, 'src', 'deathstar.mjs'),
        '80',
        'ds',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    )
    await new Promise((r) => server!.stdout!.once('data', r))
    await client.post('/v1/policies', { text: L7 })
  })
  afterAll(async () => {
    if (server) await killAndWait(server)
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('answers 403 for a denied request before and after a restart (the proxy comes back)', async () => {
    expect(await ship('POST', '/v1/request-landing')).toMatchObject({ status: 200 })
    expect(await ship('PUT', '/v1/exhaust-port')).toMatchObject({
      status: 403,
      body: 'Access denied',
    })
    await daemon!.stop()
    daemon = await startDaemon({ config })
    expect(await ship('PUT', '/v1/exhaust-port')).toMatchObject({
      status: 403,
      body: 'Access denied',
    })
    expect(await ship('POST', '/v1/request-landing')).toMatchObject({ status: 200 })
  })

  it('restarts the proxy process on the same port when it dies', async () => {
    const client = new AgentClient(config.socketPath)
    const proxyOf = async () => {
      const c = (await client.get<AgentStatus>('/v1/status')).components.l7proxy!
      const m = /:(\d+) \(process (\d+)/.exec(c.detail)
      return { state: c.state, port: Number(m?.[1]), pid: Number(m?.[2]) }
    }
    const before = await proxyOf()
    expect(before.state).toBe('ok')
    process.kill(before.pid, 'SIGKILL')
    let after = await proxyOf()
    for (let i = 0; i < 300 && (after.state !== 'ok' || after.pid === before.pid); i++) {
      await new Promise((r) => setTimeout(r, 100))
      after = await proxyOf()
    }
    expect(after.state).toBe('ok')
    expect(after.pid).not.toBe(before.pid)
    expect(after.port).toBe(before.port) // the datapath's redirects keep pointing at it
    expect(await ship('PUT', '/v1/exhaust-port')).toMatchObject({ status: 403 })
    expect(await ship('POST', '/v1/request-landing')).toMatchObject({ status: 200 })
  })
})
