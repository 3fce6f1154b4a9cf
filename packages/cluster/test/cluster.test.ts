import { createEtcdClient } from '@membrane/identity/etcd'
import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import type { Etcd3 } from 'etcd3'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  ClusterDocuments,
  type NodeEvent,
  NodeRegistry,
  type NodeRegistryOptions,
} from '../src/index'
import { type ControlPlane, controlPlane } from './fixtures/control-plane'

const check = requireKernel(['etcd'])
let etcd: EtcdServer
let client: Etcd3
let counter = 0
const freshPrefix = () => `test/cluster/${process.pid}-${++counter}`

/** Keys under a prefix, as etcd holds them. */
async function keys(prefix: string): Promise<string[]> {
  return (await client.getAll().prefix(`${prefix}/`).keys()).sort()
}

describe.skipIf(!check.ok)(
  `cluster on etcd${check.ok ? '' : ` [skipped: ${check.reason}]`}`,
  () => {
    const planes: ControlPlane[] = []
    const registries: NodeRegistry[] = []
    const node = async (prefix: string, name: string, ip: string) => {
      const p = await controlPlane(etcd.endpoint, prefix, name, ip)
      planes.push(p)
      return p
    }
    const join = async (prefix: string, o: Partial<NodeRegistryOptions> & { name: string }) => {
      const r = await NodeRegistry.join({
        client,
        nodeIP: '192.168.50.1',
        bootId: `${o.name}-1`,
        clusterPoolCidr: '10.100.0.0/16',
        prefix,
        leaseTtlSeconds: 2,
        timeoutMs: 3000,
        ...o,
      })
      registries.push(r)
      return r
    }
    beforeAll(async () => {
      etcd = await startEtcd()
      client = createEtcdClient({ endpoints: etcd.endpoint })
    })
    afterEach(async () => {
      await Promise.all(registries.splice(0).map((r) => r.close()))
      await Promise.all(planes.splice(0).map((p) => p.close()))
    })
    afterAll(async () => {
      client?.close()
      await etcd?.stop()
    })

    it('three nodes register, learn each other and share the ipcache with tunnel endpoints', async () => {
      const prefix = freshPrefix()
      const a = await node(prefix, 'node-a', '192.168.50.1')
      const b = await node(prefix, 'node-b', '192.168.50.2')
      const c = await node(prefix, 'node-c', '192.168.50.3')
      const cidrs = [a, b, c].map((p) => p.registry.self.podCidr)
      expect(new Set(cidrs).size).toBe(3)
      for (const p of [a, b, c]) {
        await vi.waitFor(() =>
          expect(p.registry.nodes().map((n) => [n.name, n.nodeIP, n.podCidr])).toEqual([
            ['node-a', '192.168.50.1', cidrs[0]],
            ['node-b', '192.168.50.2', cidrs[1]],
            ['node-c', '192.168.50.3', cidrs[2]],
          ]),
        )
      }
      expect(a.registry.self).toMatchObject({
        bootId: 'node-a-boot',
        routingMode: 'tunnel',
        health: 'ready',
      })

      // An endpoint on A: one etcd key, in B's and C's ipcache with A's node IP as tunnel endpoint.
      const before = (await keys(`${prefix}/ip`)).length
      await a.sync.upsert('10.100.0.5', { identity: 4242 })
      expect((await keys(`${prefix}/ip`)).length).toBe(before + 1)
      for (const p of [b, c]) {
        await vi.waitFor(() =>
          expect(p.ipcache.get('10.100.0.5')).toEqual({
            identity: 4242,
            tunnelEndpoint: '192.168.50.1',
            source: 'kvstore',
          }),
        )
      }
      // A's own ipcache holds its endpoint without a tunnel (it is local).
      expect(a.ipcache.get('10.100.0.5')).toEqual({ identity: 4242, source: 'local' })
      await a.sync.delete('10.100.0.5')
      await vi.waitFor(() => expect(c.ipcache.get('10.100.0.5')).toBeUndefined())
    })

    it('a node whose lease expires disappears with its ipcache entries and re-registers cleanly', async () => {
      const prefix = freshPrefix()
      const a = await node(prefix, 'node-a', '192.168.50.1')
      const b = await node(prefix, 'node-b', '192.168.50.2')
      const events: NodeEvent[] = []
      a.registry.subscribe((e) => events.push(e), { replay: false })
      await b.sync.upsert('10.100.1.7', { identity: 5000 })
      await vi.waitFor(() => expect(a.ipcache.get('10.100.1.7')?.identity).toBe(5000))
      const cidrB = b.registry.self.podCidr

      // B dies: no revoke, no keepalive. Within the TTL (2 s) plus etcd's expiry check, A forgets it.
      planes.splice(planes.indexOf(b), 1)
      const died = Date.now()
      await b.close({ crash: true })
      await vi.waitFor(
        () => {
          expect(a.registry.get('node-b')).toBeUndefined()
          expect(a.ipcache.get('10.100.1.7')).toBeUndefined()
        },
        { timeout: 8000, interval: 50 },
      )
      expect(Date.now() - died).toBeLessThan(2000 + 2500)
      expect(events.map((e) => `${e.type}:${e.node.name}`)).toContain('leave:node-b')

      // B comes back (same name, new boot id): accepted, same pod CIDR, no second claim.
      const b2 = await controlPlane(etcd.endpoint, prefix, 'node-b', '192.168.50.2', {
        bootId: 'node-b-boot-2',
      })
      planes.push(b2)
      expect(b2.registry.self.podCidr).toBe(cidrB)
      await vi.waitFor(() => expect(a.registry.get('node-b')?.bootId).toBe('node-b-boot-2'))
      expect((await keys(`${prefix}/cluster/podcidrs`)).length).toBe(2)
    })

    it('refuses a node name held by a live node and a pod CIDR claimed by another node', async () => {
      const prefix = freshPrefix()
      const a = await join(prefix, { name: 'node-a' })
      await expect(join(prefix, { name: 'node-a', bootId: 'other-boot' })).rejects.toMatchObject({
        code: 'NODE_NAME_IN_USE',
        message: expect.stringMatching(
          /node name node-a is in use by a live node .*boot id node-a-1/,
        ),
      })
      await expect(join(prefix, { name: 'node-b', podCidr: a.self.podCidr })).rejects.toMatchObject(
        {
          code: 'POD_CIDR_TAKEN',
          message: `pod CIDR ${a.self.podCidr} is claimed by node node-a`,
        },
      )
      // Nothing was left behind by the refused joins.
      expect(await keys(`${prefix}/nodes`)).toEqual([`${prefix}/nodes/node-a`])
      expect((await keys(`${prefix}/podcidrs`)).length).toBe(1)
      // The same node again (same boot id, an agent restart) is welcome and keeps its CIDR.
      await a.close({ revoke: false })
      const again = await join(prefix, { name: 'node-a' })
      expect(again.self.podCidr).toBe(a.self.podCidr)
      // Bad input is refused before etcd is asked.
      await expect(join(prefix, { name: 'bad/name' })).rejects.toMatchObject({
        code: 'INVALID_OPTION',
        message: expect.stringMatching(/^node name "bad\/name"/),
      })
      await expect(join(prefix, { name: 'n', nodeIP: 'nope' })).rejects.toThrow(/nodeIP "nope"/)
    })

    it('a policy set imported on A reaches B whole, at one revision, and concurrent writers both land', async () => {
      const prefix = freshPrefix()
      const a = await node(prefix, 'node-a', '192.168.50.1')
      const b = await node(prefix, 'node-b', '192.168.50.2')
      const docs = ['web', 'db', 'cache'].map((n) => ({
        key: `CiliumNetworkPolicy/default/${n}`,
        document: { kind: 'CiliumNetworkPolicy', metadata: { name: n } },
      }))
      const rev = await a.policies.update({ put: docs })
      expect(rev).toBe(1)
      await b.policies.waitApplied(rev)
      // B never saw a part of the set: every revision it received is complete.
      for (const set of b.received) expect([0, 3]).toContain(set.documents.size)
      expect([...b.policies.current.documents.keys()]).toEqual(docs.map((d) => d.key))
      // The same change again writes nothing.
      expect(await a.policies.update({ put: docs })).toBe(1)
      // Concurrent changes from both nodes: compare-and-swap, neither is lost.
      const [r1, r2] = await Promise.all([
        a.policies.update({ delete: [docs[0]?.key as string] }),
        b.policies.update({ put: [{ key: 'CiliumNetworkPolicy/default/extra', document: {} }] }),
      ])
      expect(new Set([r1, r2])).toEqual(new Set([2, 3]))
      for (const p of [a, b]) {
        await p.policies.waitApplied(3)
        expect([...p.policies.current.documents.keys()].sort()).toEqual(
          [docs[1], docs[2]]
            .map((d) => d?.key)
            .concat('CiliumNetworkPolicy/default/extra')
            .sort(),
        )
      }
      // A node that starts later gets the current set at open.
      const c = await node(prefix, 'node-c', '192.168.50.3')
      expect(c.received.map((s) => s.revision)).toEqual([3])
      await expect(a.policies.update({ put: [{ key: '', document: 1 }] })).rejects.toMatchObject({
        code: 'INVALID_OPTION',
      })
    })

    it('while etcd is down every node keeps its state; when it returns nothing is duplicated', async () => {
      const prefix = freshPrefix()
      const a = await node(prefix, 'node-a', '192.168.50.1')
      const b = await node(prefix, 'node-b', '192.168.50.2')
      await a.sync.upsert('10.100.0.10', { identity: 6001 })
      await b.sync.upsert('10.100.1.10', { identity: 6002 })
      await a.policies.update({ put: [{ key: 'p1', document: { v: 1 } }] })
      await vi.waitFor(() => expect(b.ipcache.get('10.100.0.10')?.identity).toBe(6001))
      await b.policies.waitApplied(1)

      await etcd.kill()
      try {
        // Longer than the lease TTL: leases will have to be granted again.
        await new Promise((r) => setTimeout(r, 3000))
        expect(b.ipcache.get('10.100.0.10')).toMatchObject({
          identity: 6001,
          tunnelEndpoint: '192.168.50.1',
        })
        expect(a.registry.nodes().map((n) => n.name)).toEqual(['node-a', 'node-b'])
        expect(b.policies.current.revision).toBe(1)
        await expect(
          a.policies.update({ put: [{ key: 'p2', document: {} }] }),
        ).rejects.toMatchObject({
          code: 'BACKEND_UNAVAILABLE',
          retryable: true,
        })
        // Changes made while etcd is away apply locally and reach etcd later.
        await a.sync.upsert('10.100.0.11', { identity: 6003 }).catch(() => {})
        await b.sync.delete('10.100.1.10').catch(() => {})
        expect(b.ipcache.get('10.100.1.10')).toBeUndefined()
      } finally {
        await etcd.restart()
      }
      await vi.waitFor(
        async () => {
          expect(b.ipcache.get('10.100.0.11')?.identity).toBe(6003)
          expect(a.ipcache.get('10.100.1.10')).toBeUndefined()
          expect(a.registry.nodes().map((n) => n.name)).toEqual(['node-a', 'node-b'])
          expect(b.registry.nodes().map((n) => n.name)).toEqual(['node-a', 'node-b'])
          expect(await keys(`${prefix}/ip`)).toEqual(
            ['10.100.0.10/32', '10.100.0.11/32'].map((k) => `${prefix}/ip/default/${k}`),
          )
        },
        { timeout: 20_000, interval: 250 },
      )
      expect(await keys(`${prefix}/cluster/nodes`)).toHaveLength(2)
      expect(await keys(`${prefix}/cluster/podcidrs`)).toHaveLength(2)
      expect(a.registry.self.podCidr).not.toBe(b.registry.self.podCidr)
      expect(await a.policies.update({ put: [{ key: 'p2', document: {} }] })).toBe(2)
    }, 40_000)

    it('pod CIDRs never overlap under random joins, leaves and returns (property, real etcd)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              op: fc.constantFrom('join', 'join', 'leave', 'release'),
              node: fc.integer({ min: 0, max: 5 }),
              concurrent: fc.boolean(),
            }),
            { minLength: 1, maxLength: 14 },
          ),
          async (steps) => {
            const prefix = freshPrefix()
            // 4 pod CIDRs for up to 6 names: exhaustion is part of the game.
            const live = new Map<number, NodeRegistry>()
            const claimed = new Map<number, string>()
            const joinNode = async (n: number) => {
              if (live.has(n)) return
              try {
                const r = await NodeRegistry.join({
                  client,
                  name: `n${n}`,
                  nodeIP: `192.168.60.${n + 1}`,
                  bootId: `b${n}`,
                  clusterPoolCidr: '10.9.0.0/28',
                  clusterPoolMaskSize: 30,
                  prefix,
                  leaseTtlSeconds: 5,
                  timeoutMs: 3000,
                })
                live.set(n, r)
                // A returning node gets its previous pod CIDR.
                const before = claimed.get(n)
                if (before !== undefined) expect(r.self.podCidr).toBe(before)
                claimed.set(n, r.self.podCidr)
              } catch (error) {
                expect(error).toMatchObject({ code: 'POD_CIDR_EXHAUSTED' })
                expect(claimed.has(n)).toBe(false)
                expect(claimed.size).toBe(4)
              }
            }
            try {
              for (let i = 0; i < steps.length; i++) {
                const s = steps[i] as (typeof steps)[number]
                if (s.op === 'join') {
                  const next = steps[i + 1]
                  if (s.concurrent && next?.op === 'join' && next.node !== s.node) {
                    await Promise.all([joinNode(s.node), joinNode(next.node)])
                    i++
                  } else await joinNode(s.node)
                } else {
                  const r = live.get(s.node)
                  if (!r) continue
                  live.delete(s.node)
                  await r.close({ releasePodCidr: s.op === 'release' })
                  if (s.op === 'release') claimed.delete(s.node)
                }
                const cidrs = [...live.values()].map((r) => r.self.podCidr)
                expect(new Set(cidrs).size).toBe(cidrs.length)
                const stored = await client.getAll().prefix(`${prefix}/podcidrs/`).strings()
                const owners = Object.values(stored)
                expect(new Set(owners).size).toBe(owners.length)
                expect(owners.sort()).toEqual([...claimed.keys()].map((n) => `n${n}`).sort())
              }
            } finally {
              await Promise.all([...live.values()].map((r) => r.close()))
            }
          },
        ),
        { numRuns: 12 },
      )
    }, 60_000)

    it('documents refuse a set larger than one etcd value', async () => {
      const docs = await ClusterDocuments.open({
        client,
        kind: 'policies',
        prefix: freshPrefix(),
        onChange: () => {},
      })
      try {
        await expect(
          docs.update({ put: [{ key: 'big', document: 'x'.repeat(1_100_000) }] }),
        ).rejects.toMatchObject({
          code: 'INVALID_OPTION',
          message: expect.stringMatching(/over the/),
        })
        expect(docs.current.revision).toBe(0)
      } finally {
        await docs.close()
      }
    })
  },
)
