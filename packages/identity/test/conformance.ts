/**
 * The one conformance suite every identity allocator backend passes. A backend test file calls
 * `describeAllocatorBackend('memory', { create })`; the suite makes fresh allocators through
 * `create` (each one isolated from the others unless the backend says otherwise) and closes them.
 */
import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  type IdentityAllocator,
  IdentityError,
  type IdentityEvent,
  LOCAL_IDENTITY_FLAG,
  ReservedIdentity,
} from '../src/index'

export interface BackendOptions {
  clusterId?: number
  minId?: number
  maxId?: number
}

export interface AllocatorBackend {
  /** fast-check runs of the model test (each makes a fresh allocator). Default 100. */
  modelRuns?: number
  /** A fresh, isolated allocator. */
  create(options?: BackendOptions): Promise<IdentityAllocator>
  /**
   * Make identities nobody references disappear (the etcd backend runs its two-phase GC).
   * Omitted when release alone removes them.
   */
  collectGarbage?(allocator: IdentityAllocator): Promise<void>
}

const web = ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default']
const db = ['k8s:app=db', 'k8s:io.kubernetes.pod.namespace=default']

async function rejection(p: Promise<unknown>): Promise<IdentityError> {
  try {
    await p
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError)
    return error as IdentityError
  }
  throw new Error('expected the promise to reject')
}

export function describeAllocatorBackend(name: string, backend: AllocatorBackend): void {
  describe(`allocator conformance: ${name}`, () => {
    const open: IdentityAllocator[] = []
    const create = async (options?: BackendOptions) => {
      const a = await backend.create(options)
      open.push(a)
      return a
    }
    const gc = async (a: IdentityAllocator) => {
      if (backend.collectGarbage) await backend.collectGarbage(a)
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((a) => a.close()))
    })

    it('knows every reserved identity with Cilium numbering', async () => {
      const a = await create()
      const list = a.list()
      const reserved = list.filter((r) => r.id < 256)
      expect(reserved).toEqual([
        { id: 1, labels: ['reserved:host'] },
        { id: 2, labels: ['reserved:world'] },
        { id: 3, labels: ['reserved:unmanaged'] },
        { id: 4, labels: ['reserved:health'] },
        { id: 5, labels: ['reserved:init'] },
        { id: 6, labels: ['reserved:remote-node'] },
        { id: 7, labels: ['reserved:kube-apiserver'] },
        { id: 8, labels: ['reserved:ingress'] },
        { id: 9, labels: ['reserved:world-ipv4'] },
        { id: 10, labels: ['reserved:world-ipv6'] },
      ])
      expect(a.lookupById(ReservedIdentity.HEALTH)?.labels.toStrings()).toEqual(['reserved:health'])
      expect(a.lookupByLabels(['reserved:world'])?.id).toBe(2)
    })

    it('maps reserved label sets to reserved ids without counting them', async () => {
      const a = await create()
      expect(await a.allocate(['reserved:host'])).toMatchObject({ id: 1, isNew: false })
      expect(await a.allocate(['reserved:host', 'k8s:node-role=worker'])).toMatchObject({ id: 1 })
      expect(await a.allocate(['reserved:kube-apiserver'])).toMatchObject({ id: 7 })
      expect(await a.release(1)).toBe(false)
      expect(a.lookupById(1)).toBeDefined()
      const e = await rejection(a.allocate(['reserved:world', 'k8s:app=x']))
      expect(e.code).toBe('INVALID_IDENTITY')
    })

    it('gives a new label set a cluster identity, and the same id again', async () => {
      const a = await create()
      const first = await a.allocate(web)
      expect(first.isNew).toBe(true)
      expect(first.id).toBeGreaterThanOrEqual(256)
      expect(first.id).toBeLessThanOrEqual(65535)
      expect(first.identity.labels.toStrings()).toEqual(web)
      const again = await a.allocate([...web].reverse())
      expect(again).toMatchObject({ id: first.id, isNew: false })
      const other = await a.allocate(db)
      expect(other.id).not.toBe(first.id)
      expect(other.isNew).toBe(true)
    })

    it('gives distinct label sets distinct ids', async () => {
      const a = await create()
      const sets = Array.from({ length: 40 }, (_, i) => [
        `k8s:app=svc${i}`,
        'k8s:io.kubernetes.pod.namespace=ns',
      ])
      const ids = await Promise.all(sets.map((s) => a.allocate(s).then((r) => r.id)))
      expect(new Set(ids).size).toBe(sets.length)
      for (const [i, s] of sets.entries()) expect(a.lookupByLabels(s)?.id).toBe(ids[i])
    })

    it('answers concurrent allocations of one label set with one id, created once', async () => {
      const a = await create()
      const results = await Promise.all(Array.from({ length: 16 }, () => a.allocate(db)))
      expect(new Set(results.map((r) => r.id)).size).toBe(1)
      expect(results.filter((r) => r.isNew)).toHaveLength(1)
    })

    it('looks identities up by id and by labels', async () => {
      const a = await create()
      const { id } = await a.allocate(web)
      await vi.waitFor(() => expect(a.lookupById(id)?.labels.toStrings()).toEqual(web))
      expect(a.lookupByLabels(web)?.id).toBe(id)
      expect(a.lookupByLabels(['k8s:app=nobody'])).toBeUndefined()
      expect(a.lookupById(65000)).toBeUndefined()
      expect(a.list()).toContainEqual({ id, labels: web })
    })

    it('counts references: the last release says so, and the identity then goes away', async () => {
      const a = await create()
      const { id } = await a.allocate(web)
      await a.allocate(web)
      expect(await a.release(web)).toBe(false)
      expect(a.lookupById(id)).toBeDefined()
      expect(await a.release(id)).toBe(true)
      expect(await a.release(id)).toBe(false)
      await gc(a)
      await vi.waitFor(() => expect(a.lookupById(id)).toBeUndefined())
      expect(a.lookupByLabels(web)).toBeUndefined()
      const again = await a.allocate(web)
      expect(again.isNew).toBe(true)
    })

    it('reports add and delete events, after replaying what is known', async () => {
      const a = await create()
      const events: IdentityEvent[] = []
      const stop = a.watch((e) => events.push(e))
      expect(events.filter((e) => e.identity.id < 256)).toHaveLength(10)
      expect(events.every((e) => e.type === 'add')).toBe(true)
      events.length = 0
      const { id } = await a.allocate(db)
      await vi.waitFor(() =>
        expect(events).toContainEqual({ type: 'add', identity: { id, labels: db } }),
      )
      await a.release(db)
      await gc(a)
      await vi.waitFor(() =>
        expect(events).toContainEqual({ type: 'delete', identity: { id, labels: db } }),
      )
      stop()
      const n = events.length
      await a.allocate(web)
      await new Promise((r) => setTimeout(r, 50))
      expect(events).toHaveLength(n)
    })

    it('can watch without replay', async () => {
      const a = await create()
      const events: IdentityEvent[] = []
      a.watch((e) => events.push(e), { replay: false })
      expect(events).toHaveLength(0)
    })

    it('gives CIDR prefixes node-local identities labelled with every containing prefix', async () => {
      const a = await create()
      const r = await a.allocateCIDR('10.1.2.3/32')
      expect(r.isNew).toBe(true)
      expect(r.id & LOCAL_IDENTITY_FLAG).toBe(LOCAL_IDENTITY_FLAG)
      expect(r.id).toBeGreaterThan(LOCAL_IDENTITY_FLAG)
      const labels = r.identity.labels
      expect(labels.has('cidr:10.0.0.0/8')).toBe(true)
      expect(labels.has('cidr:0.0.0.0/0')).toBe(true)
      expect(labels.has('cidr:10.1.2.3/32')).toBe(true)
      expect(labels.has('reserved:world')).toBe(true)
      expect(labels.has('cidr:11.0.0.0/8')).toBe(false)
      expect((await a.allocate(['cidr:10.1.2.3/32'])).id).toBe(r.id)
      expect(a.lookupById(r.id)?.labels.key()).toBe(labels.key())
      const v6 = await a.allocateCIDR('2001:db8::/48')
      expect(v6.id).not.toBe(r.id)
      expect(v6.identity.labels.has('cidr:2001-db8--/32')).toBe(true)
      expect(await a.release(r.id)).toBe(false)
      expect(await a.release(r.id)).toBe(true)
      expect(a.lookupById(r.id)).toBeUndefined()
      const e = await rejection(a.allocate(['cidr:10.0.0.0/8', 'cidr:192.168.0.0/16']))
      expect(e.code).toBe('INVALID_IDENTITY')
    })

    it('rejects bad labels with a clear error naming the label', async () => {
      const a = await create()
      const e1 = await rejection(a.allocate(['k8s:=web']))
      expect(e1.code).toBe('INVALID_LABEL')
      expect(e1.message).toContain('k8s:=web')
      expect((await rejection(a.allocate(['bogus:app=web']))).message).toContain('unknown source')
      expect((await rejection(a.allocate(['k8s:app=a b']))).code).toBe('INVALID_LABEL')
      expect((await rejection(a.allocate(['k8s:app=a', 'k8s:app=b']))).message).toContain(
        'two values',
      )
      expect((await rejection(a.allocate([]))).code).toBe('INVALID_IDENTITY')
    })

    it('puts the cluster id in bits 16..23', async () => {
      const a = await create({ clusterId: 3 })
      const { id } = await a.allocate(web)
      expect(id >>> 16).toBe(3)
      expect(id & 0xffff).toBeGreaterThanOrEqual(256)
    })

    it('fails with EXHAUSTED when the range is full', async () => {
      const a = await create({ minId: 256, maxId: 258 })
      const ids = []
      for (let i = 0; i < 3; i++) ids.push((await a.allocate([`k8s:app=x${i}`])).id)
      expect(ids.sort()).toEqual([256, 257, 258])
      const e = await rejection(a.allocate(['k8s:app=x3']))
      expect(e.code).toBe('EXHAUSTED')
      expect((await a.allocate(['k8s:app=x1'])).isNew).toBe(false)
    })

    it('fails with CLOSED after close', async () => {
      const a = await create()
      await a.close()
      expect((await rejection(a.allocate(web))).code).toBe('CLOSED')
    })

    it('behaves like a reference-counting model under random allocate/release (property)', async () => {
      const op = fc.record({
        release: fc.boolean(),
        set: fc.integer({ min: 0, max: 5 }),
        byId: fc.boolean(),
      })
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
          const a = await create()
          const events = new Map<number, string>()
          a.watch((e) => {
            if (e.type === 'add') events.set(e.identity.id, e.identity.labels.join(','))
            else events.delete(e.identity.id)
          })
          const count = new Map<number, number>()
          const idOf = new Map<number, number>()
          try {
            for (const o of ops) {
              const labels = o.set === 5 ? ['cidr:10.0.0.0/8'] : [`k8s:app=m${o.set}`]
              if (!o.release) {
                const r = await a.allocate(labels)
                const n = count.get(o.set) ?? 0
                if (n > 0) expect(r.id).toBe(idOf.get(o.set))
                if (!idOf.has(o.set)) expect(r.isNew).toBe(true)
                if (n > 0) expect(r.isNew).toBe(false)
                count.set(o.set, n + 1)
                idOf.set(o.set, r.id)
                // Label sets referenced at the same time never share an id.
                const live = [...count.entries()].filter(([, c]) => c > 0).map(([k]) => idOf.get(k))
                expect(new Set(live).size).toBe(live.length)
              } else {
                const n = count.get(o.set) ?? 0
                const id = idOf.get(o.set)
                const released = await a.release(o.byId && id !== undefined ? id : labels)
                expect(released).toBe(n === 1)
                if (n > 0) count.set(o.set, n - 1)
              }
            }
            for (const [k, c] of count) {
              if (c === 0) continue
              const id = idOf.get(k) as number
              expect(a.lookupById(id)?.id).toBe(id)
              await vi.waitFor(() => expect(events.has(id)).toBe(true))
            }
            await vi.waitFor(() =>
              expect([...events.keys()].sort()).toEqual(
                a
                  .list()
                  .map((r) => r.id)
                  .sort(),
              ),
            )
          } finally {
            await a.close()
          }
        }),
        { numRuns: backend.modelRuns ?? 100 },
      )
    })

    it('lists plain JSON records', async () => {
      const a = await create()
      await a.allocate(web)
      await a.allocateCIDR('192.168.0.0/16')
      await vi.waitFor(() => expect(a.list().length).toBe(12))
      const list = a.list()
      expect(JSON.parse(JSON.stringify(list))).toEqual(list)
      expect(list.map((r) => r.id)).toEqual([...list.map((r) => r.id)].sort((x, y) => x - y))
      for (const r of list)
        expect(r.labels).toEqual(
          [...r.labels].sort((x, y) => (x.split(':')[1]! < y.split(':')[1]! ? -1 : 1)),
        )
    })
  })
}
