import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import { Etcd3 } from 'etcd3'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { EtcdAllocator, type EtcdAllocatorOptions } from '../src/etcd'
import { IdentityError } from '../src/index'
import { checkEtcdInvariants } from './fixtures/invariants'
import { spawnWorker, type Worker } from './fixtures/workers'

const check = requireKernel(['etcd'])
let etcd: EtcdServer
let counter = 0
const freshPrefix = () => `test/faults/${process.pid}-${++counter}`

describe.skipIf(!check.ok)(`etcd faults${check.ok ? '' : ` [skipped: ${check.reason}]`}`, () => {
  const open: EtcdAllocator[] = []
  const workers: Worker[] = []
  const make = async (node: string, prefix: string, extra: Partial<EtcdAllocatorOptions> = {}) => {
    const a = await EtcdAllocator.create({
      endpoints: etcd.endpoint,
      node,
      prefix,
      leaseTtlSeconds: 5,
      timeoutMs: 1500,
      ...extra,
    })
    open.push(a)
    return a
  }
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()))
    if (!etcd.running) await etcd.restart()
    await Promise.all(open.splice(0).map((a) => a.close()))
  })
  afterAll(async () => {
    await etcd?.stop()
  })

  it('keeps answering from the cache while etcd is down, fails new allocations retryably, and recovers', async () => {
    const prefix = freshPrefix()
    const a = await make('node-a', prefix)
    const b = await make('node-b', prefix)
    const web = await a.allocate(['k8s:app=web'])
    const db = await b.allocate(['k8s:app=db'])
    await vi.waitFor(() => expect(a.lookupById(db.id)).toBeDefined())
    const sets = Array.from({ length: 20 }, (_, i) => [`k8s:app=inflight${i}`])
    const inflight = Promise.allSettled(sets.map((s) => a.allocate(s)))
    await etcd.kill()

    // Known identities still resolve; labels this node holds still allocate.
    expect(a.lookupByLabels(['k8s:app=db'])?.id).toBe(db.id)
    expect(a.lookupById(web.id)?.labels.toStrings()).toEqual(['k8s:app=web'])
    expect(await a.allocate(['k8s:app=web'])).toMatchObject({ id: web.id, isNew: false })
    // Labels another node created resolve from the cache too (the reference is written later).
    expect(await b.allocate(['k8s:app=web'])).toMatchObject({ id: web.id, isNew: false })
    const error = await a.allocate(['k8s:app=new']).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(IdentityError)
    expect(error).toMatchObject({ code: 'BACKEND_UNAVAILABLE', retryable: true })
    expect((error as Error).message).toMatch(/k8s:app=new.*retry later/)

    await etcd.restart()
    const settled = await inflight
    // Whatever failed during the outage succeeds on retry; nothing is duplicated.
    const ids = new Map<string, number>()
    for (const [i, s] of sets.entries()) {
      const r = settled[i]
      const id = r?.status === 'fulfilled' ? r.value.id : (await a.allocate(s)).id
      ids.set(s[0] as string, id)
    }
    expect((await a.allocate(['k8s:app=new'])).isNew).toBe(true)
    for (const [label, id] of ids) expect((await b.allocate([label])).id).toBe(id)
    expect(new Set(ids.values()).size).toBe(sets.length)
    // The watch came back too.
    const late = await b.allocate(['k8s:app=after-restart'])
    await vi.waitFor(() => expect(a.lookupById(late.id)).toBeDefined(), { timeout: 10_000 })
    const state = await checkEtcdInvariants(etcd.endpoint, prefix)
    // b's reference to web, taken during the outage, reached etcd.
    await vi.waitFor(
      async () =>
        expect((await checkEtcdInvariants(etcd.endpoint, prefix)).references).toContain(
          `${prefix}/value/k8s:app=web;/node-b`,
        ),
      { timeout: 10_000, interval: 250 },
    )
    expect(state.masters.get('k8s:app=web;')).toBe(web.id)
  })

  it('releases while etcd is down, and removes the reference once it is back', async () => {
    const prefix = freshPrefix()
    const a = await make('node-a', prefix)
    await a.allocate(['k8s:app=gone'])
    await etcd.kill()
    expect(await a.release(['k8s:app=gone'])).toBe(true)
    expect(a.references(a.lookupByLabels(['k8s:app=gone'])?.id ?? 0)).toBe(0)
    await etcd.restart()
    const client = new Etcd3({ hosts: etcd.endpoint })
    try {
      await vi.waitFor(
        async () => expect(await client.getAll().prefix(`${prefix}/value/`).keys()).toEqual([]),
        {
          timeout: 15_000,
          interval: 250,
        },
      )
    } finally {
      client.close()
    }
  })

  it('closes cleanly while etcd is down', async () => {
    const a = await make('node-a', freshPrefix())
    await a.allocate(['k8s:app=x'])
    await etcd.kill()
    await a.close()
    await expect(a.allocate(['k8s:app=x'])).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it("removes a dead node's references when its lease expires", async () => {
    const prefix = freshPrefix()
    const a = await make('node-a', prefix)
    const dead = spawnWorker({
      endpoint: etcd.endpoint,
      prefix,
      node: 'node-dead',
      sets: [['k8s:app=orphan'], ['k8s:app=shared']],
      mode: 'hold',
      leaseTtlSeconds: 2,
    })
    workers.push(dead)
    await dead.ready
    dead.go()
    const { results } = await dead.done
    const shared = await a.allocate(['k8s:app=shared'])
    expect(shared.id).toBe(results[1]?.id)
    const client = new Etcd3({ hosts: etcd.endpoint })
    try {
      const refs = () => client.getAll().prefix(`${prefix}/value/`).keys()
      expect((await refs()).filter((k) => k.endsWith('/node-dead'))).toHaveLength(2)
      await dead.kill()
      await vi.waitFor(
        async () => expect((await refs()).filter((k) => k.endsWith('/node-dead'))).toHaveLength(0),
        {
          timeout: 15_000,
          interval: 250,
        },
      )
      await a.collectGarbage()
      const gc = await a.collectGarbage()
      expect(gc.deleted).toEqual([results[0]?.id])
      expect(a.lookupById(shared.id)).toBeDefined()
    } finally {
      client.close()
    }
  })

  it('puts its references back when its lease is lost', async () => {
    const prefix = freshPrefix()
    const errors: Error[] = []
    const a = await make('node-a', prefix, { leaseTtlSeconds: 2, onError: (e) => errors.push(e) })
    const { id } = await a.allocate(['k8s:app=web'])
    const client = new Etcd3({ hosts: etcd.endpoint })
    try {
      const key = `${prefix}/value/k8s:app=web;/node-a`
      const before = await client.get(key).exec()
      const lease = before.kvs[0]?.lease
      expect(lease).toBeDefined()
      await client.leaseClient.leaseRevoke({ ID: lease as string })
      await vi.waitFor(
        async () => {
          const now = await client.get(key).exec()
          expect(now.kvs[0]?.value.toString()).toBe(String(id))
          expect(now.kvs[0]?.lease).not.toBe(lease)
        },
        { timeout: 15_000, interval: 250 },
      )
      expect(errors.some((e) => /lease lost/.test(e.message))).toBe(true)
    } finally {
      client.close()
    }
  })
})
