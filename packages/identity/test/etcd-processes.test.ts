import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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
  },
)
