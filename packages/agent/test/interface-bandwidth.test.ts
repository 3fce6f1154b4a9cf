import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import type { AgentError } from '../src/errors'
import { testConfig } from './helpers'

// An address private to this test process.
const LEGACY_IP = `172.${16 + (process.pid % 16)}.${(process.pid >> 4) % 256}.20`

describeKernel('existing interfaces and bandwidth limits', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  const ifA = `${config.prefix}xa`
  const ifB = `${config.prefix}xb`
  let daemon: AgentDaemon
  let client: AgentClient
  beforeAll(async () => {
    daemon = await startDaemon({ config })
    client = new AgentClient(config.socketPath)
    await run('ip', ['link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB])
    await run('ip', ['addr', 'add', `${LEGACY_IP}/32`, 'dev', ifA])
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    await run('ip', ['link', 'del', ifA]).catch(() => {})
    cleanupDirs()
  })

  it('attaches to an existing interface with its address, once', async () => {
    const down = await client
      .post('/v1/endpoints', { name: 'legacy', interface: ifA })
      .catch((e: unknown) => e)
    expect((down as AgentError).message).toMatch(/is down; bring it up first/)
    await run('ip', ['link', 'set', ifB, 'up'])
    await run('ip', ['link', 'set', ifA, 'up'])
    const { endpoint } = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'legacy',
      labels: { app: 'legacy' },
      interface: ifA,
    })
    expect(endpoint).toMatchObject({ mode: 'interface', hostIfname: ifA, ipv4: LEGACY_IP })
    const status = await client.get<AgentStatus>('/v1/status')
    if (status.components.datapath?.state === 'ok') expect(endpoint.enforcing).toBe(true)
    const clash = await client
      .post('/v1/endpoints', { name: 'other', interface: ifA })
      .catch((e: unknown) => e)
    expect((clash as AgentError).code).toBe('CONFLICT')
    expect((clash as AgentError).message).toMatch(/already belongs to endpoint default\/legacy/)
    await client.delete('/v1/endpoints/default/legacy')
    // The interface is the user's: it stays.
    expect((await run('ip', ['-o', 'link', 'show', 'dev', ifA])).stdout).toContain(ifA)
  })

  it('writes bandwidth limits into the datapath and says how they are enforced', async () => {
    const { endpoint } = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'slow',
      egressBandwidth: '10M',
      ingressBandwidth: '1Mi',
    })
    const status = await client.get<AgentStatus>('/v1/status')
    expect(status.components.datapath?.state, status.components.datapath?.detail).toBe('ok')
    expect(endpoint.bandwidth?.egress?.bytesPerSecond).toBe(1_250_000)
    expect(endpoint.bandwidth?.ingress?.bytesPerSecond).toBe(131_072)
    // This kernel has no sch_fq: the mode must say policing, never claim shaping.
    if (status.kernel.sch_fq === false) {
      expect(endpoint.bandwidth?.egress?.mode).toBe('police')
      expect(status.bandwidthMode).toMatch(/POLICED|token bucket/i)
    }
    for (const bad of ['0', '-5M', 'lots', '1e30']) {
      const e = await client
        .post('/v1/endpoints', { name: 'bad', egressBandwidth: bad })
        .catch((x: unknown) => x)
      expect((e as AgentError).code, bad).toBe('INVALID_INPUT')
      expect((e as AgentError).message).toMatch(/egressBandwidth/)
    }
    expect((await client.get<EndpointView[]>('/v1/endpoints')).map((e) => e.name)).toEqual(['slow'])
  })
})
