import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { describeKernel, killAndWait, run } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import type { ServiceRecord } from '../src/state'
import { testConfig } from './helpers'

const demo = join(import.meta.dirname, '..', '..', '..', 'examples', 'star-wars', 'src')

describeKernel('services through the datapath', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon
  let client: AgentClient
  const servers: ChildProcess[] = []
  let ship: EndpointView

  const request = async (url: string) =>
    JSON.parse(
      (
        await run('ip', [
          'netns',
          'exec',
          ship.netns!,
          process.execPath,
          join(demo, 'ship.mjs'),
          'GET',
          url,
          '1500',
        ])
      ).stdout,
    ) as { status?: number; instance?: string; error?: string }

  beforeAll(async () => {
    daemon = await startDaemon({ config })
    client = new AgentClient(config.socketPath)
    const status = await client.get<AgentStatus>('/v1/status')
    expect(status.components.datapath?.state, status.components.datapath?.detail).toBe('ok')
    for (const name of ['web-1', 'web-2']) {
      const { endpoint } = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name,
        labels: { app: 'web' },
      })
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          endpoint.netns!,
          process.execPath,
          join(demo, 'deathstar.mjs'),
          '8080',
          name,
        ],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      )
      servers.push(child)
      await new Promise((r) => child.stdout!.once('data', r))
    }
    ship = (await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name: 'client' }))
      .endpoint
  })
  afterAll(async () => {
    await Promise.all(servers.map((s) => killAndWait(s)))
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('a ClusterIP with two backends (maglev) spreads connections over both', async () => {
    const svc = await client.post<ServiceRecord>('/v1/services', {
      name: 'web',
      vip: '10.96.7.7',
      port: 80,
      targetPort: 8080,
      algorithm: 'maglev',
      selector: { app: 'web' },
    })
    expect(svc.backends.map((b) => b.endpoint)).toEqual(['default/web-1', 'default/web-2'])
    const seen = new Map<string, number>()
    for (let i = 0; i < 16; i++) {
      const r = await request('http://10.96.7.7/v1')
      expect(r.status, JSON.stringify(r)).toBe(200)
      seen.set(r.instance!, (seen.get(r.instance!) ?? 0) + 1)
    }
    expect([...seen.keys()].sort()).toEqual(['web-1', 'web-2'])
  })

  it('follows its selector: a deleted backend endpoint stops receiving new connections', async () => {
    await client.delete('/v1/endpoints/default/web-2')
    const lb = await client.get<{ frontend: string; backends: string[] }[]>('/v1/bpf/lb')
    expect(lb.find((s) => s.frontend === '10.96.7.7:80/TCP')?.backends).toHaveLength(1)
    for (let i = 0; i < 6; i++)
      expect((await request('http://10.96.7.7/v1')).instance).toBe('web-1')
  })
})
