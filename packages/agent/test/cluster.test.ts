import { describeKernel, type EtcdServer, startEtcd } from '@membrane/test-utils'
import { formatIpv4, parseIpv4 } from '@membrane/types'
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import { Agent } from '../src/agent'
import type { AgentConfig } from '../src/config'
import { testConfig } from './helpers'

const DENY_WEB = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-ingress }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
    - fromEndpoints: [{ matchLabels: { app: client } }]
      toPorts: [{ ports: [{ port: "80", protocol: TCP }] }]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: db-ingress }
spec:
  endpointSelector: { matchLabels: { app: db } }
  ingress:
    - fromEndpoints: [{ matchLabels: { app: web } }]
`

describeKernel('agents in a cluster on one etcd', ['root', 'netns', 'etcd'], () => {
  let etcd: EtcdServer
  const agents: Agent[] = []
  const dirs: (() => void)[] = []
  // A pool per test process, away from the per-test /24s (10.160/11), the demo and the bench.
  const pool = `10.${232 + (process.pid % 8)}.0.0/16`
  const node = async (name: string, nodeIP: string): Promise<Agent> => {
    const { config, cleanupDirs } = testConfig()
    dirs.push(cleanupDirs)
    const cfg: AgentConfig = {
      ...config,
      nodeName: `${name}-${process.pid}`,
      nodeIP,
      clusterPoolCidr: pool,
      clusterPoolMaskSize: 26,
      kvstore: { type: 'etcd', endpoints: [etcd.endpoint] },
    }
    const agent = new Agent({ config: cfg })
    await agent.start()
    agents.push(agent)
    return agent
  }
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    for (const a of agents) await a.stop({ purge: true }).catch(() => {})
    for (const d of dirs) d()
    await etcd?.stop()
  })

  it('shares nodes, endpoints, policies and services between agents', async () => {
    const a = await node('node-a', '192.0.2.1')
    const b = await node('node-b', '192.0.2.2')
    // Pod CIDRs from the pool, one per node; the endpoint pool is the pod CIDR.
    const [na, nb] = [a, b].map((x) => x.listNodes().find((n) => n.name === x.config.nodeName))
    expect(na?.podCidr).not.toBe(nb?.podCidr)
    for (const [agent, n] of [
      [a, na],
      [b, nb],
    ] as const) {
      const network = parseIpv4(String(n?.podCidr).split('/')[0] as string) as number
      expect(agent.router).toBe(formatIpv4(network + 1))
    }
    await vi.waitFor(() =>
      expect(b.listNodes().map((n) => n.nodeIP)).toEqual(['192.0.2.1', '192.0.2.2']),
    )
    expect(a.status().components.cluster?.detail).toMatch(
      /^node node-a-\d+ \(192\.0\.2\.1, pod CIDR 10\.\d+\.0\.0\/26, tunnel\), 2 nodes/,
    )

    // An endpoint on A is in B's ipcache with A's node IP as tunnel endpoint, same identity.
    const { endpoint: web } = await a.createEndpoint({ name: 'web', labels: { app: 'web' } })
    await vi.waitFor(() =>
      expect(b.ipcacheEntries().find((e) => e.cidr === `${web.ipv4}/32`)).toEqual({
        cidr: `${web.ipv4}/32`,
        identity: web.identity,
        source: 'kvstore',
        tunnelEndpoint: '192.0.2.1',
      }),
    )
    expect(
      a.ipcacheEntries().find((e) => e.cidr === `${web.ipv4}/32`)?.tunnelEndpoint,
    ).toBeUndefined()

    // A policy set imported on A is applied on B, whole.
    const imported = await a.importPolicy(DENY_WEB)
    expect(imported.clusterRevision).toBe(1)
    expect(imported.policies.map((p) => p.name).sort()).toEqual(['db-ingress', 'web-ingress'])
    await vi.waitFor(() =>
      expect(
        b
          .listPolicies()
          .map((p) => p.name)
          .sort(),
      ).toEqual(['db-ingress', 'web-ingress']),
    )
    expect(b.status().components.policy?.detail).toMatch(/, 2 rules$/)
    // A bad set is refused on A before etcd: B keeps both policies, no new cluster revision.
    await expect(
      a.importPolicy(`${DENY_WEB}---\nkind: CiliumNetworkPolicy\nspec: 3\n`),
    ).rejects.toThrow()
    expect(a.status().components.cluster?.detail).toMatch(/policy revision 1,/)

    // A service created on B is on A; deleting a policy on B removes it on A.
    await b.createService({ name: 'web', vip: '10.96.77.1', port: 80, selector: { app: 'web' } })
    await vi.waitFor(() => expect(a.listServices().map((s) => s.key)).toEqual(['default/web']))
    expect(a.listServices()[0]?.backends.map((x) => x.address)).toEqual([web.ipv4])
    await b.deletePolicy({ name: 'db-ingress' })
    await vi.waitFor(() => expect(a.listPolicies().map((p) => p.name)).toEqual(['web-ingress']))

    // A second agent with B's name but its own state (another boot id) is refused.
    const { config, cleanupDirs } = testConfig()
    dirs.push(cleanupDirs)
    const twin = new Agent({
      config: {
        ...b.config,
        stateDir: config.stateDir,
        socketPath: config.socketPath,
        bpffsRoot: config.bpffsRoot,
        prefix: config.prefix,
      },
    })
    await expect(twin.start()).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(
        /joining the cluster as node-b-\d+: node name node-b-\d+ is in use by a live node/,
      ),
    })

    // Deleting the endpoint on A withdraws it from B.
    await a.deleteEndpoint('web')
    await vi.waitFor(() =>
      expect(b.ipcacheEntries().some((e) => e.cidr === `${web.ipv4}/32`)).toBe(false),
    )
  }, 300_000)
})
