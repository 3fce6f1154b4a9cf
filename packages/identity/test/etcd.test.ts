import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import { Etcd3 } from 'etcd3'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { EtcdAllocator, type EtcdAllocatorOptions } from '../src/etcd'
import type { IdentityEvent } from '../src/index'
import { describeAllocatorBackend } from './conformance'
import { checkEtcdInvariants } from './fixtures/invariants'

const check = requireKernel(['etcd'])
let etcd: EtcdServer
let counter = 0
const freshPrefix = () => `test/etcd/${process.pid}-${++counter}`

describe.skipIf(!check.ok)(`etcd backend${check.ok ? '' : ` [skipped: ${check.reason}]`}`, () => {
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.stop()
  })

  describeAllocatorBackend('etcd', {
    create: (options) =>
      EtcdAllocator.create({
        endpoints: etcd.endpoint,
        node: 'node-a',
        prefix: freshPrefix(),
        leaseTtlSeconds: 5,
        ...options,
      }),
    modelRuns: 15,
    collectGarbage: async (a) => {
      await (a as EtcdAllocator).collectGarbage()
      await (a as EtcdAllocator).collectGarbage()
    },
  })

  describe('several nodes on one etcd', () => {
    const open: EtcdAllocator[] = []
    const make = async (
      node: string,
      prefix: string,
      extra: Partial<EtcdAllocatorOptions> = {},
    ) => {
      const a = await EtcdAllocator.create({
        endpoints: etcd.endpoint,
        node,
        prefix,
        leaseTtlSeconds: 5,
        ...extra,
      })
      open.push(a)
      return a
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((a) => a.close()))
    })

    it('agree on ids, and see each other through the watch', async () => {
      const prefix = freshPrefix()
      const a = await make('node-a', prefix)
      const b = await make('node-b', prefix)
      const seen: IdentityEvent[] = []
      b.watch((e) => seen.push(e), { replay: false })
      const ra = await a.allocate(['k8s:app=web'])
      await vi.waitFor(() =>
        expect(b.lookupById(ra.id)?.labels.toStrings()).toEqual(['k8s:app=web']),
      )
      expect(seen).toEqual([{ type: 'add', identity: { id: ra.id, labels: ['k8s:app=web'] } }])
      const rb = await b.allocate(['k8s:app=web'])
      expect(rb).toMatchObject({ id: ra.id, isNew: false })
      const rc = await b.allocate(['k8s:app=db'])
      await vi.waitFor(() => expect(a.lookupByLabels(['k8s:app=db'])?.id).toBe(rc.id))
      const state = await checkEtcdInvariants(etcd.endpoint, prefix)
      expect(state.references.sort()).toEqual([
        `${prefix}/value/k8s:app=db;/node-b`,
        `${prefix}/value/k8s:app=web;/node-a`,
        `${prefix}/value/k8s:app=web;/node-b`,
      ])
    })

    it('give one id to the same labels allocated concurrently from two clients', async () => {
      const prefix = freshPrefix()
      const a = await make('node-a', prefix)
      const b = await make('node-b', prefix)
      const sets = Array.from({ length: 30 }, (_, i) => [
        `k8s:app=s${i % 15}`,
        `k8s:tier=t${i % 3}`,
      ])
      const [ra, rb] = await Promise.all([
        Promise.all(sets.map((s) => a.allocate(s))),
        Promise.all([...sets].reverse().map((s) => b.allocate(s))),
      ])
      const byKey = new Map<string, Set<number>>()
      for (const r of [...ra, ...rb]) {
        const k = r.identity.labels.key()
        byKey.set(k, (byKey.get(k) ?? new Set()).add(r.id))
      }
      for (const [k, ids] of byKey) expect(ids.size, k).toBe(1)
      const ids = [...byKey.values()].map((s) => [...s][0])
      expect(new Set(ids).size).toBe(byKey.size)
      // Each label set was created exactly once across both nodes.
      expect([...ra, ...rb].filter((r) => r.isNew)).toHaveLength(byKey.size)
      const state = await checkEtcdInvariants(etcd.endpoint, prefix)
      expect(state.masters.size).toBe(byKey.size)
    })

    it('gives an agent its ids back after a restart', async () => {
      const prefix = freshPrefix()
      const a = await make('node-a', prefix)
      const sets = [['k8s:app=one'], ['k8s:app=two'], ['k8s:app=three']]
      const before = await Promise.all(sets.map((s) => a.allocate(s)))
      await a.close()
      const again = await make('node-a', prefix)
      for (const [i, s] of sets.entries()) {
        expect(again.lookupByLabels(s)?.id).toBe(before[i]?.id)
        expect(await again.allocate(s)).toMatchObject({ id: before[i]?.id, isNew: false })
      }
    })

    it('collects garbage in two phases and never an identity someone references', async () => {
      const prefix = freshPrefix()
      const a = await make('node-a', prefix)
      const b = await make('node-b', prefix)
      const kept = await a.allocate(['k8s:app=kept'])
      await b.allocate(['k8s:app=kept'])
      const gone = await a.allocate(['k8s:app=gone'])
      const back = await a.allocate(['k8s:app=back'])
      await a.release(['k8s:app=kept'])
      await a.release(['k8s:app=gone'])
      await a.release(['k8s:app=back'])
      expect(await a.collectGarbage()).toEqual({ marked: 2, deleted: [] })
      // Referenced again between the two phases: it must survive.
      expect((await b.allocate(['k8s:app=back'])).id).toBe(back.id)
      const second = await a.collectGarbage()
      expect(second.deleted).toEqual([gone.id])
      await vi.waitFor(() => expect(b.lookupById(gone.id)).toBeUndefined())
      expect(a.lookupById(kept.id)).toBeDefined()
      expect(a.lookupById(back.id)).toBeDefined()
      const state = await checkEtcdInvariants(etcd.endpoint, prefix)
      expect([...state.masters.values()].sort()).toEqual([kept.id, back.id].sort())
    })

    it('collects garbage by itself with gcIntervalMs', async () => {
      const prefix = freshPrefix()
      const a = await make('node-a', prefix, { gcIntervalMs: 100 })
      const { id } = await a.allocate(['k8s:app=short-lived'])
      await a.release(id)
      await vi.waitFor(() => expect(a.lookupById(id)).toBeUndefined(), {
        timeout: 5000,
        interval: 50,
      })
      expect((await checkEtcdInvariants(etcd.endpoint, prefix)).masters.size).toBe(0)
    })

    it('waits for a lock another node holds, and fails with a retryable error when it takes too long', async () => {
      const prefix = freshPrefix()
      const a = await make('node-a', prefix, { timeoutMs: 600 })
      const client = new Etcd3({ hosts: etcd.endpoint })
      try {
        const lease = client.lease(30)
        await lease.put(`${prefix}/locks/k8s:app=locked;`).value('node-z@1')
        const error = await a.allocate(['k8s:app=locked']).catch((e: unknown) => e)
        expect(error).toMatchObject({ code: 'BACKEND_UNAVAILABLE', retryable: true })
        expect((error as Error).message).toContain('is held by node-z@1')
        const pending = a.allocate(['k8s:app=locked'])
        await new Promise((r) => setTimeout(r, 100))
        await lease.revoke()
        expect((await pending).isNew).toBe(true)
        // Labels the cache knows are not answered from it while etcd answers and a lock is held.
        const b = await make('node-b', prefix, { timeoutMs: 600, cachedFallbackMs: 100 })
        const known = await b.allocate(['k8s:app=known'])
        await vi.waitFor(() => expect(a.lookupById(known.id)).toBeDefined())
        const lease2 = client.lease(30)
        await lease2.put(`${prefix}/locks/k8s:app=known;`).value('node-z@2')
        const locked = await a.allocate(['k8s:app=known']).catch((e: unknown) => e)
        expect(locked).toMatchObject({ code: 'BACKEND_UNAVAILABLE' })
        expect((locked as Error).message).toContain('is held by node-z@2')
        await lease2.revoke()
      } finally {
        client.close()
      }
    })

    it('rejects bad options naming them', async () => {
      await expect(
        EtcdAllocator.create({ endpoints: etcd.endpoint, node: 'bad node' }),
      ).rejects.toThrow(/node name "bad node"/)
      await expect(
        EtcdAllocator.create({ endpoints: etcd.endpoint, node: 'n', prefix: '/x/' }),
      ).rejects.toThrow(/identity key prefix "\/x\/"/)
      await expect(
        EtcdAllocator.create({ endpoints: 'localhost:2379', node: 'n' }),
      ).rejects.toThrow(/expected a URL/)
      await expect(
        EtcdAllocator.create({ endpoints: etcd.endpoint, node: 'n', clusterId: 300 }),
      ).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    })
  })
})
