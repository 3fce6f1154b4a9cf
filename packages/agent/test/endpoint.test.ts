import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { AgentError } from '../src/errors'
import { endpointNames } from '../src/internal/names'
import { testConfig } from './helpers'

async function linksWithPrefix(prefix: string): Promise<string[]> {
  const out = await run('ip', ['-o', 'link', 'show'])
  return out.stdout
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n.startsWith(prefix))
}

async function expectAgentError(p: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  )
  expect(e).toBeInstanceOf(AgentError)
  expect((e as AgentError).code).toBe(code)
  expect((e as AgentError).message).toMatch(text)
}

describeKernel('endpoints in network namespaces', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon
  let client: AgentClient

  beforeAll(async () => {
    daemon = await startDaemon({ config })
    client = new AgentClient(config.socketPath)
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('creates a namespace, veth, address and routes; endpoints reach each other', async () => {
    const a = await client.post<{ endpoint: EndpointView; created: boolean }>('/v1/endpoints', {
      name: 'tiefighter',
      labels: { org: 'empire', class: 'tiefighter' },
    })
    const b = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'xwing',
      labels: { org: 'alliance' },
    })
    expect(a.created).toBe(true)
    expect(a.endpoint.health).toBe('ready')
    expect(existsSync(`/run/netns/${a.endpoint.netns}`)).toBe(true)
    const ping = await run('ip', [
      'netns',
      'exec',
      a.endpoint.netns!,
      'ping',
      '-c1',
      '-W2',
      b.endpoint.ipv4,
    ])
    expect(ping.stdout).toContain('1 received')
    const route = await run('ip', ['-n', a.endpoint.netns!, 'route', 'show', 'default'])
    expect(route.stdout).toContain(`via ${daemon.agent.router}`)
  })

  it('is idempotent: the same create twice leaks nothing', async () => {
    const before = await linksWithPrefix(config.prefix)
    const again = await client.post<{ endpoint: EndpointView; created: boolean }>('/v1/endpoints', {
      name: 'tiefighter',
      labels: { class: 'tiefighter', org: 'empire' },
    })
    expect(again.created).toBe(false)
    expect(await linksWithPrefix(config.prefix)).toEqual(before)
    expect((await client.get<EndpointView[]>('/v1/endpoints')).length).toBe(2)
  })

  it('repairs a missing namespace when the same create runs again', async () => {
    const ep = await client.get<EndpointView>('/v1/endpoints/default/xwing')
    await run('ip', ['netns', 'del', ep.netns!])
    expect((await client.get<EndpointView>('/v1/endpoints/default/xwing')).health).toMatch(
      /missing/,
    )
    await client.post('/v1/endpoints', { name: 'xwing', labels: { org: 'alliance' } })
    const fixed = await client.get<EndpointView>('/v1/endpoints/default/xwing')
    expect(fixed.health).toBe('ready')
    expect(fixed.ipv4).toBe(ep.ipv4)
  })

  it('refuses bad input with a clear error and changes nothing', async () => {
    const stateFile = `${config.stateDir}/state.json`
    const state = readFileSync(stateFile, 'utf8')
    const links = await linksWithPrefix(config.prefix)
    await expectAgentError(
      client.post('/v1/endpoints', { name: 'tiefighter', labels: { org: 'alliance' } }),
      'CONFLICT',
      /already exists with a different spec/,
    )
    await expectAgentError(
      client.post('/v1/endpoints', { name: 'Bad_Name' }),
      'INVALID_INPUT',
      /name: "Bad_Name"/,
    )
    await expectAgentError(
      client.post('/v1/endpoints', { name: 'ok', labels: { 'a b': 'c' } }),
      'INVALID_INPUT',
      /labels.a b/,
    )
    await expectAgentError(
      client.post('/v1/endpoints', { name: 'ok', egressBandwidth: 'fast' }),
      'INVALID_INPUT',
      /egressBandwidth/,
    )
    await expectAgentError(
      client.post('/v1/endpoints', { name: 'ok', interface: 'nosuchif0' }),
      'NOT_FOUND',
      /interface nosuchif0 does not exist/,
    )
    await expectAgentError(client.get('/v1/endpoints/default/nope'), 'NOT_FOUND', /not found/)
    await expectAgentError(client.delete('/v1/endpoints/default/nope'), 'NOT_FOUND', /not found/)
    await expectAgentError(
      client.post('/v1/services', { name: 'svc', vip: '10.96.0.1', port: 80, backends: ['nope'] }),
      'NOT_FOUND',
      /endpoint nope not found/,
    )
    expect(readFileSync(stateFile, 'utf8')).toBe(state)
    expect(await linksWithPrefix(config.prefix)).toEqual(links)
  })

  it('delete removes the namespace, the veth and the address', async () => {
    const ep = await client.get<EndpointView>('/v1/endpoints/default/xwing')
    await client.delete('/v1/endpoints/default/xwing')
    expect(existsSync(`/run/netns/${ep.netns}`)).toBe(false)
    expect(existsSync(`/sys/class/net/${ep.hostIfname}`)).toBe(false)
    const again = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'xwing2',
    })
    expect(again.endpoint.ipv4).toBe(ep.ipv4)
  })
})

describeKernel('endpoint names are injective', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon | undefined
  let client: AgentClient
  const addressesIn = async (netns: string) =>
    (await run('ip', ['-n', netns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout
  const pingFrom = async (netns: string, ip: string) =>
    (await run('ip', ['netns', 'exec', netns, 'ping', '-c1', '-W2', ip])).stdout

  beforeAll(() => {
    client = new AgentClient(config.socketPath)
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('a/b-c and a-b/c get their own namespace and veth; deleting one leaves the other', async () => {
    daemon = await startDaemon({ config })
    const one = await client.post<{ endpoint: EndpointView; created: boolean }>('/v1/endpoints', {
      namespace: 'a',
      name: 'b-c',
    })
    const two = await client.post<{ endpoint: EndpointView; created: boolean }>('/v1/endpoints', {
      namespace: 'a-b',
      name: 'c',
    })
    expect(one.created && two.created).toBe(true)
    expect(two.endpoint.netns).not.toBe(one.endpoint.netns)
    expect(two.endpoint.hostIfname).not.toBe(one.endpoint.hostIfname)
    // Each workload's eth0 carries its own address only.
    const a1 = await addressesIn(one.endpoint.netns!)
    const a2 = await addressesIn(two.endpoint.netns!)
    expect(a1).toContain(`${one.endpoint.ipv4}/32`)
    expect(a1).not.toContain(`${two.endpoint.ipv4}/`)
    expect(a2).toContain(`${two.endpoint.ipv4}/32`)
    expect(a2).not.toContain(`${one.endpoint.ipv4}/`)
    expect(await pingFrom(two.endpoint.netns!, one.endpoint.ipv4)).toContain('1 received')

    await client.delete('/v1/endpoints/a-b/c')
    expect(existsSync(`/run/netns/${two.endpoint.netns}`)).toBe(false)
    const left = await client.get<EndpointView>('/v1/endpoints/a/b-c')
    expect(left.health).toBe('ready')
    expect(await addressesIn(one.endpoint.netns!)).toContain(`${one.endpoint.ipv4}/32`)
    expect(await pingFrom(one.endpoint.netns!, daemon.agent.router)).toContain('1 received')
    await client.delete('/v1/endpoints/a/b-c')
    await daemon.stop({ purge: true })
    daemon = undefined
  })

  it('finds an endpoint an older agent recorded under the old namespace name', async () => {
    // The state an agent before the injective names left: `<prefix>-<namespace>-<name>`.
    const legacy = `${config.prefix}-default-legacy`
    const names = endpointNames(config.prefix, 'default', 'legacy')
    const pool = config.ipamPool.split('/')[0]!.split('.')
    const ip = `${pool[0]}.${pool[1]}.${pool[2]}.9`
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 })
    writeFileSync(
      `${config.stateDir}/state.json`,
      JSON.stringify({
        version: 1,
        endpoints: [
          {
            id: 7,
            name: 'legacy',
            namespace: 'default',
            labels: {},
            mode: 'netns',
            ipv4: ip,
            hostIfname: names.hostIfname,
            netns: legacy,
            createdAt: new Date().toISOString(),
          },
        ],
        policies: [],
        services: [],
      }),
    )
    daemon = await startDaemon({ config })
    const ep = await client.get<EndpointView>('/v1/endpoints/default/legacy')
    expect(ep.netns).toBe(legacy)
    expect(ep.health).toBe('ready')
    expect(await addressesIn(legacy)).toContain(`${ip}/32`)
    expect(existsSync(`/run/netns/${names.netns}`)).toBe(false)
    await client.delete('/v1/endpoints/default/legacy')
    expect(existsSync(`/run/netns/${legacy}`)).toBe(false)
  })
})
