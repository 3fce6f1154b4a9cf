import { AgentEventType, ObserverClient } from '@membrane/flows'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, observerSocketFor, startDaemon } from '../src/daemon'
import { testConfig } from './helpers'

const POLICY = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-ingress, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
    - fromEndpoints: [{ matchLabels: { app: client } }]
`

// Real changes through the agent's API reach GetAgentEvents on the observer socket.
describeKernel('agent events on the observer API', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon
  let client: AgentClient
  let observer: ObserverClient
  let web: EndpointView

  beforeAll(async () => {
    daemon = await startDaemon({ config })
    client = new AgentClient(config.socketPath)
    observer = new ObserverClient(`unix://${observerSocketFor(config.socketPath)}`)
    ;({ endpoint: web } = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'web-1',
      labels: { app: 'web' },
    }))
    await client.post('/v1/services', {
      name: 'web',
      vip: '10.96.9.9',
      port: 80,
      targetPort: 8080,
      selector: { app: 'web' },
    })
    await client.post('/v1/policies', { text: POLICY })
    await client.delete('/v1/endpoints/default/web-1')
  })

  afterAll(async () => {
    observer?.close()
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('streams agent start, endpoint, ipcache, service and policy changes in order', async () => {
    const events: { type: number; [k: string]: unknown }[] = []
    for await (const r of observer.getAgentEvents({ number: 1000 }))
      events.push(r.agentEvent as { type: number })
    const types = events.map((e) => e.type)
    expect(types).toContain(AgentEventType.AGENT_STARTED)
    const ip = `${web.ipv4}/32`
    const created = events.find((e) => e.type === AgentEventType.ENDPOINT_CREATED)
    expect(created?.endpointUpdate).toMatchObject({
      id: web.id,
      podName: 'web-1',
      namespace: 'default',
      labels: ['k8s:app=web'],
    })
    const upsert = events.find(
      (e) =>
        e.type === AgentEventType.IPCACHE_UPSERTED &&
        (e.ipcacheUpdate as { cidr: string }).cidr === ip,
    )
    expect(upsert?.ipcacheUpdate).toMatchObject({ cidr: ip, identity: web.identity })
    const svc = events.find((e) => e.type === AgentEventType.SERVICE_UPSERTED)
    expect(svc?.serviceUpsert).toMatchObject({
      name: 'web',
      namespace: 'default',
      frontendAddress: { ip: '10.96.9.9', port: 80 },
    })
    const pol = events.find((e) => e.type === AgentEventType.POLICY_UPDATED)
    const update = pol?.policyUpdate as { labels: string[]; ruleCount: string } | undefined
    expect(update?.labels).toContain('k8s:io.cilium.k8s.policy.name=web-ingress')
    expect(Number(update?.ruleCount)).toBe(1)
    const deleted = events.findIndex((e) => e.type === AgentEventType.ENDPOINT_DELETED)
    const ipDeleted = events.findIndex(
      (e) =>
        e.type === AgentEventType.IPCACHE_DELETED &&
        (e.ipcacheUpdate as { cidr: string }).cidr === ip,
    )
    expect(deleted).toBeGreaterThan(types.indexOf(AgentEventType.ENDPOINT_CREATED))
    expect(ipDeleted).toBeGreaterThan(-1)
  })
})
