// etcd backend figures against a local etcd-server (started here on loopback).
// `npm run bench -- identity/etcd`
import { reportFigure, startEtcd } from '@membrane/test-utils'
import { EtcdAllocator } from '../src/etcd'
import { Labels } from '../src/index'
import { checkEtcdInvariants } from '../test/fixtures/invariants'
import { spawnWorker, type Worker } from '../test/fixtures/workers'

const now = () => Number(process.hrtime.bigint()) / 1e9
const etcd = await startEtcd()
const workers: Worker[] = []
try {
  const set = (tag: string, i: number) => [
    `k8s:app=${tag}${i}`,
    'k8s:io.kubernetes.pod.namespace=bench',
  ]

  // One process, sequential: one new allocation at a time (lock, CAS create, unlock).
  {
    const a = await EtcdAllocator.create({
      endpoints: etcd.endpoint,
      node: 'bench-seq',
      prefix: 'bench/seq',
    })
    const n = 300
    const t0 = now()
    for (let i = 0; i < n; i++) await a.allocate(set('seq', i))
    reportFigure({
      name: 'etcd.allocate.new.sequential',
      value: Math.round(n / (now() - t0)),
      unit: 'allocs/s',
      concurrency: 1,
    })
    await a.close()
  }

  // One process, 64 allocations in flight.
  const a = await EtcdAllocator.create({
    endpoints: etcd.endpoint,
    node: 'bench-one',
    prefix: 'bench/one',
  })
  const n = 3000
  const sets = Array.from({ length: n }, (_, i) => set('one', i))
  let next = 0
  const t0 = now()
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < n) await a.allocate(sets[next++] as string[])
    }),
  )
  reportFigure({
    name: 'etcd.allocate.new',
    value: Math.round(n / (now() - t0)),
    unit: 'allocs/s',
    concurrency: 64,
    processes: 1,
  })

  // Cached lookups (the watch cache): by id and by labels.
  const ids = a.list().map((r) => r.id)
  const labelSets = sets.map((s) => Labels.from(s))
  let sink = 0
  let t1 = now()
  for (let r = 0; r < 200; r++) for (const id of ids) sink += a.lookupById(id)?.id ?? 0
  reportFigure({
    name: 'etcd.lookupById.cached',
    value: Math.round((200 * ids.length) / (now() - t1)),
    unit: 'ops/s',
  })
  t1 = now()
  for (let r = 0; r < 50; r++) for (const l of labelSets) sink += a.lookupByLabels(l)?.id ?? 0
  reportFigure({
    name: 'etcd.lookupByLabels.cached',
    value: Math.round((50 * n) / (now() - t1)),
    unit: 'ops/s',
  })
  t1 = now()
  for (let r = 0; r < 20; r++) for (const l of labelSets) sink += (await a.allocate(l)).id
  reportFigure({
    name: 'etcd.allocate.referenced',
    value: Math.round((20 * n) / (now() - t1)),
    unit: 'ops/s',
    note: 'labels this node already holds',
  })
  await a.close()

  // Two racing processes allocating the same 1500 new label sets (in opposite orders).
  const race = Array.from({ length: 1500 }, (_, i) => set('race', i))
  for (const [w, order] of [race, [...race].reverse()].entries()) {
    workers.push(
      spawnWorker({
        endpoint: etcd.endpoint,
        prefix: 'bench/race',
        node: `racer-${w}`,
        sets: order,
        mode: 'exit',
        concurrency: 32,
      }),
    )
  }
  await Promise.all(workers.map((w) => w.ready))
  const t2 = now()
  for (const w of workers) w.go()
  const out = await Promise.all(workers.map((w) => w.done))
  const wall = now() - t2
  const byKey = new Map<string, Set<number>>()
  for (const o of out)
    for (const r of o.results) byKey.set(r.key, (byKey.get(r.key) ?? new Set()).add(r.id))
  const duplicates = [...byKey.values()].filter((s) => s.size > 1).length
  const state = await checkEtcdInvariants(etcd.endpoint, 'bench/race')
  const created = out.flatMap((o) => o.results).filter((r) => r.isNew).length
  reportFigure({
    name: 'etcd.allocate.new.racing',
    value: Math.round(race.length / wall),
    unit: 'allocs/s',
    processes: 2,
    concurrency: 32,
    note: 'distinct new identities per second, both processes allocating every set',
  })
  reportFigure({
    name: 'etcd.race.duplicates',
    value: duplicates + (state.masters.size - race.length) + (created - race.length),
    unit: 'count',
  })
  if (sink === 42) process.stderr.write('')
} finally {
  await Promise.all(workers.map((w) => w.kill()))
  await etcd.stop()
}
