import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdAllocator } from '../src/etcd'
import { checkEtcdInvariants } from './fixtures/invariants'
import { spawnWorker, type Worker } from './fixtures/workers'

const check = requireKernel(['etcd'])
let etcd: EtcdServer
const workers: Worker[] = []

describe.skipIf(!check.ok)(
  `etcd, several processes${check.ok ? '' : ` [skipped: ${check.reason}]`}`,
  () => {
    beforeAll(async () => {
      etcd = await startEtcd()
    })
    afterAll(async () => {
      await Promise.all(workers.splice(0).map((w) => w.kill()))
      await etcd?.stop()
    })

    it('gives identical labels identical ids and never one id to two label sets', {
      timeout: 90_000,
    }, async () => {
      const prefix = `test/procs/${process.pid}`
      // Three processes, each 60 label sets, two thirds of them shared with another process.
      const set = (i: number) => [`k8s:app=svc${i}`, 'k8s:io.kubernetes.pod.namespace=default']
      const plan = [0, 1, 2].map((w) => Array.from({ length: 60 }, (_, i) => set(w * 20 + i)))
      for (const [w, sets] of plan.entries()) {
        workers.push(
          spawnWorker({ endpoint: etcd.endpoint, prefix, node: `proc-${w}`, sets, mode: 'exit' }),
        )
      }
      await Promise.all(workers.map((w) => w.ready))
      for (const w of workers) w.go()
      const outputs = await Promise.all(workers.map((w) => w.done))
      const byKey = new Map<string, Set<number>>()
      const byId = new Map<number, Set<string>>()
      let created = 0
      for (const { results } of outputs) {
        for (const r of results) {
          byKey.set(r.key, (byKey.get(r.key) ?? new Set()).add(r.id))
          byId.set(r.id, (byId.get(r.id) ?? new Set()).add(r.key))
          if (r.isNew) created++
        }
      }
      expect(byKey.size).toBe(100)
      for (const [k, ids] of byKey) expect(ids.size, `labels ${k}`).toBe(1)
      for (const [id, keys] of byId) expect(keys.size, `id ${id}`).toBe(1)
      expect(created).toBe(100)
      const state = await checkEtcdInvariants(etcd.endpoint, prefix)
      expect(state.masters.size).toBe(100)
      for (const [k, ids] of byKey) expect(state.masters.get(k)).toBe([...ids][0])
    })

    it('stays consistent when etcd is killed and restarted while processes allocate', {
      timeout: 90_000,
    }, async () => {
      const prefix = `test/procs-kill/${process.pid}`
      const set = (i: number) => [`k8s:app=k${i}`]
      const plan = [0, 1].map((w) => Array.from({ length: 200 }, (_, i) => set(w * 100 + i)))
      const racers = plan.map((sets, w) =>
        spawnWorker({
          endpoint: etcd.endpoint,
          prefix,
          node: `killer-${w}`,
          sets,
          mode: 'exit',
          concurrency: 8,
        }),
      )
      workers.push(...racers)
      await Promise.all(racers.map((w) => w.ready))
      for (const w of racers) w.go()
      let finished = 0
      for (const w of racers) w.done.then(() => finished++)
      await new Promise((r) => setTimeout(r, 150))
      await etcd.kill()
      // The outage really is mid-run: nobody was done when etcd died.
      expect(finished).toBe(0)
      await new Promise((r) => setTimeout(r, 1500))
      await etcd.restart()
      const outputs = await Promise.all(racers.map((w) => w.done))
      const byKey = new Map<string, Set<number>>()
      for (const { results } of outputs)
        for (const r of results) byKey.set(r.key, (byKey.get(r.key) ?? new Set()).add(r.id))
      expect(byKey.size).toBe(300)
      for (const [k, ids] of byKey) expect(ids.size, `labels ${k}`).toBe(1)
      const state = await checkEtcdInvariants(etcd.endpoint, prefix)
      expect(state.masters.size).toBe(300)
      for (const [k, ids] of byKey) expect(state.masters.get(k)).toBe([...ids][0])
    })

    it('never collects what a node references while nodes churn and GC runs', {
      timeout: 120_000,
    }, async () => {
      const prefix = `test/procs-churn/${process.pid}`
      const sets = Array.from({ length: 40 }, (_, i) => [`k8s:app=c${i}`])
      const churners = [1, 2, 3, 4].map((seed) =>
        spawnWorker({
          endpoint: etcd.endpoint,
          prefix,
          node: `churn-${seed}`,
          sets,
          mode: 'churn',
          ops: 1200,
          seed,
        }),
      )
      workers.push(...churners)
      await Promise.all(churners.map((w) => w.ready))
      const gc = await EtcdAllocator.create({ endpoints: etcd.endpoint, node: 'collector', prefix })
      try {
        let stop = false
        let deletedTotal = 0
        const loop = (async () => {
          while (!stop) {
            deletedTotal += (await gc.collectGarbage()).deleted.length
            await new Promise((r) => setImmediate(r))
          }
        })()
        for (const w of churners) w.go()
        const outputs = await Promise.all(churners.map((w) => w.done))
        stop = true
        await loop
        // Two more full rounds: nothing still referenced may go.
        deletedTotal += (await gc.collectGarbage()).deleted.length
        deletedTotal += (await gc.collectGarbage()).deleted.length
        const state = await checkEtcdInvariants(etcd.endpoint, prefix)
        for (const [w, { results }] of outputs.entries()) {
          for (const r of results) {
            expect(state.masters.get(r.key), `${r.key} held by churn-${w + 1}`).toBe(r.id)
            expect(state.references).toContain(`${prefix}/value/${r.key}/churn-${w + 1}`)
          }
        }
        expect(deletedTotal).toBeGreaterThan(0)
      } finally {
        await gc.close()
      }
    })
  },
)
