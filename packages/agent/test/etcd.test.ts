import { rmSync } from 'node:fs'
import { describeKernel, type EtcdServer, startEtcd } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { AgentError } from '../src/errors'
import { testConfig } from './helpers'

describeKernel('kvstore etcd', ['root', 'netns', 'etcd'], () => {
  const { config, cleanupDirs } = testConfig()
  let etcd: EtcdServer
  let daemon: AgentDaemon | undefined
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    await etcd?.stop()
    cleanupDirs()
  })

  it('allocates identities in etcd and gets the same ones back after a restart', async () => {
    const kv = { ...config, kvstore: { type: 'etcd' as const, endpoints: [etcd.endpoint] } }
    daemon = await startDaemon({ config: kv })
    const client = new AgentClient(config.socketPath)
    expect((await client.get<AgentStatus>('/v1/status')).components.identity?.detail).toMatch(
      /^etcd/,
    )
    const a = (
      await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name: 'a',
        labels: { app: 'x' },
      })
    ).endpoint
    const b = (
      await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name: 'b',
        labels: { app: 'y' },
      })
    ).endpoint
    expect(a.identity).toBeGreaterThanOrEqual(256)
    expect(b.identity).not.toBe(a.identity)
    await daemon.stop()
    daemon = await startDaemon({ config: kv })
    const after = await client.get<EndpointView[]>('/v1/endpoints')
    expect(after.map((e) => e.identity)).toEqual([a.identity, b.identity])
  })

  it('answers 503 UNAVAILABLE when etcd is down during an identity allocation', async () => {
    expect(daemon).toBeDefined()
    const client = new AgentClient(config.socketPath)
    await etcd.kill()
    try {
      const e = await client
        .post('/v1/endpoints', { name: 'c', labels: { app: 'new-during-outage' } })
        .catch((x: unknown) => x as AgentError)
      expect(e).toBeInstanceOf(AgentError)
      expect((e as AgentError).code).toBe('UNAVAILABLE')
      expect((e as AgentError).message).toMatch(
        /^identity store unavailable: .*retry once it is back/,
      )
      // Nothing half-made: the endpoint is not there.
      const names = (await client.get<EndpointView[]>('/v1/endpoints')).map((x) => x.name)
      expect(names).toEqual(['a', 'b'])
    } finally {
      await etcd.restart()
    }
  }, 60_000)

  it('refuses to start against an unreachable etcd, with a clear error', async () => {
    const other = testConfig()
    const e = await startDaemon({
      config: { ...other.config, kvstore: { type: 'etcd', endpoints: ['http://127.0.0.1:1'] } },
    }).catch((x: unknown) => x)
    other.cleanupDirs()
    rmSync(other.config.bpffsRoot, { recursive: true, force: true })
    expect(e).toBeInstanceOf(AgentError)
    expect((e as AgentError).message).toMatch(/kvstore etcd at http:\/\/127.0.0.1:1/)
  }, 60_000)
})
