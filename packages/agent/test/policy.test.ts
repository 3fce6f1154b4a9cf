import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { AgentError } from '../src/errors'
import { testConfig } from './helpers'

const policies = join(import.meta.dirname, '..', '..', '..', 'examples', 'star-wars', 'policies')
const l4 = readFileSync(join(policies, 'sw_l3_l4_policy.yaml'), 'utf8')
const l7 = readFileSync(join(policies, 'sw_l3_l4_l7_policy.yaml'), 'utf8')

type Trace = { verdict: string; explanation: string[] }
type PolicyMap = {
  source: string
  entries: {
    direction: string
    identity: number
    port: string
    decision: string
    proxyPort: number
  }[]
}

describeKernel('policy import, trace and map state', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon
  let client: AgentClient
  const ep: Record<string, EndpointView> = {}
  const trace = (from: string, to: string, http?: { method: string; path: string }) =>
    client.post<Trace>('/v1/policy/trace', {
      from,
      to,
      port: 80,
      protocol: 'TCP',
      ...(http ? { http } : {}),
    })

  beforeAll(async () => {
    daemon = await startDaemon({ config })
    client = new AgentClient(config.socketPath)
    for (const [name, labels] of [
      ['deathstar', { org: 'empire', class: 'deathstar' }],
      ['tiefighter', { org: 'empire', class: 'tiefighter' }],
      ['xwing', { org: 'alliance', class: 'xwing' }],
    ] as const) {
      ep[name] = (
        await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })
      ).endpoint
    }
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('allows everything before any policy', async () => {
    expect((await trace('xwing', 'deathstar')).verdict).toBe('allowed')
  })

  it('L3/L4: only org=empire reaches the deathstar on 80/TCP', async () => {
    const out = await client.post<{ revision: number; policies: { key: string }[] }>(
      '/v1/policies',
      {
        text: l4,
      },
    )
    expect(out.policies.map((p) => p.key)).toEqual(['CiliumNetworkPolicy/default/rule1'])
    expect((await trace('tiefighter', 'deathstar')).verdict).toBe('allowed')
    const denied = await trace('xwing', 'deathstar')
    expect(denied.verdict).toBe('denied')
    expect(denied.explanation.join('\n')).toMatch(/default deny/)
    const map = await client.get<PolicyMap>('/v1/bpf/policy/default/deathstar')
    const ingress = map.entries.filter((e) => e.direction === 'ingress')
    expect(ingress.some((e) => e.identity === ep.tiefighter!.identity && e.port === '80')).toBe(
      true,
    )
    expect(ingress.some((e) => e.identity === ep.xwing!.identity)).toBe(false)
  })

  it('L7: the map entry redirects to the proxy and trace evaluates HTTP', async () => {
    await client.post('/v1/policies', { text: l7 })
    const land = await trace('tiefighter', 'deathstar', {
      method: 'POST',
      path: '/v1/request-landing',
    })
    expect(land.verdict).toBe('allowed')
    const exhaust = await trace('tiefighter', 'deathstar', {
      method: 'PUT',
      path: '/v1/exhaust-port',
    })
    expect(exhaust.verdict).toBe('denied')
    const map = await client.get<PolicyMap>('/v1/bpf/policy/default/deathstar')
    const e = map.entries.find(
      (x) => x.direction === 'ingress' && x.identity === ep.tiefighter!.identity,
    )
    const status = await client.get<{ components: Record<string, { detail: string }> }>(
      '/v1/status',
    )
    const port = /:(\d+)$/.exec(status.components.l7proxy?.detail ?? '')?.[1]
    expect(e?.proxyPort).toBeGreaterThan(0)
    if (port) expect(e?.proxyPort).toBe(Number(port))
  })

  it('a bad document rejects the whole import and changes nothing', async () => {
    const before = await client.get<unknown[]>('/v1/policies')
    const state = readFileSync(join(config.stateDir, 'state.json'), 'utf8')
    const good = l4.replace('name: rule1', 'name: rule2')
    const bad = `${good}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: broken\nspec:\n  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports:\n            - port: "99999"\n`
    const e = await client.post('/v1/policies', { text: bad }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(AgentError)
    expect((e as AgentError).code).toBe('INVALID_INPUT')
    expect((e as AgentError).message).toMatch(/document 1/)
    expect(await client.get<unknown[]>('/v1/policies')).toEqual(before)
    expect(readFileSync(join(config.stateDir, 'state.json'), 'utf8')).toBe(state)
    const notYaml = await client.post('/v1/policies', { text: 'a: [' }).catch((x: unknown) => x)
    expect((notYaml as AgentError).code).toBe('INVALID_INPUT')
    const unknownEp = await trace('ghost', 'deathstar').catch((x: unknown) => x)
    expect((unknownEp as AgentError).code).toBe('NOT_FOUND')
  })

  it('keeps policies across a restart; delete removes them', async () => {
    await daemon.stop()
    daemon = await startDaemon({ config })
    expect((await trace('xwing', 'deathstar')).verdict).toBe('denied')
    const del = await client.delete<{ deleted: { key: string }[] }>('/v1/policies?name=rule1')
    expect(del.deleted.map((d) => d.key)).toEqual(['CiliumNetworkPolicy/default/rule1'])
    expect((await trace('xwing', 'deathstar')).verdict).toBe('allowed')
    const again = await client.delete('/v1/policies?name=rule1').catch((x: unknown) => x)
    expect((again as AgentError).code).toBe('NOT_FOUND')
  })

  it('toServices selects the endpoints behind a service', async () => {
    await client.post('/v1/services', {
      name: 'deathstar',
      vip: '10.96.0.10',
      port: 80,
      selector: { class: 'deathstar' },
    })
    await client.post('/v1/policies', {
      text: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: to-deathstar, namespace: default }
spec:
  endpointSelector: { matchLabels: { class: tiefighter } }
  egress:
    - toServices:
        - k8sService: { serviceName: deathstar, namespace: default }
`,
    })
    expect((await trace('tiefighter', 'deathstar')).verdict).toBe('allowed')
    expect((await trace('tiefighter', 'xwing')).verdict).toBe('denied')
    await client.delete('/v1/services/default/deathstar')
    expect((await trace('tiefighter', 'deathstar')).verdict).toBe('denied')
  })
})
