// Memory backend, labels and ipcache figures. `npm run bench -- identity/memory`
import { reportFigure } from '@membrane/test-utils'
import { IPCache, Labels, MemoryAllocator, makePrefix, parseLabel } from '../src/index'

const now = () => Number(process.hrtime.bigint()) / 1e9
const rate = (n: number, t0: number) => n / (now() - t0)

const N = 50_000
const sets = Array.from({ length: N }, (_, i) => [
  `k8s:app=svc${i}`,
  'k8s:io.kubernetes.pod.namespace=default',
])

function bestOf<T>(runs: number, fn: () => T): number {
  let best = 0
  for (let r = 0; r < runs; r++) best = Math.max(best, fn() as number)
  return best
}

// New allocations from label strings (parse + canonical key + id), then lookups.
const newRate = bestOf(3, () => {
  const a = new MemoryAllocator()
  const t0 = now()
  for (const s of sets) a.allocateSync(s)
  return rate(N, t0)
})
reportFigure({ name: 'memory.allocate.new', value: Math.round(newRate), unit: 'ops/s', labels: 2 })

const a = new MemoryAllocator()
const ids = sets.map((s) => a.allocateSync(s).id)
const labelSets = sets.map((s) => Labels.from(s))

const refRate = bestOf(3, () => {
  const t0 = now()
  for (const l of labelSets) a.allocateSync(l)
  return rate(N, t0)
})
reportFigure({
  name: 'memory.allocate.existing',
  value: Math.round(refRate),
  unit: 'ops/s',
  note: 'Labels input, refcount++',
})

let sink = 0
const byId = bestOf(3, () => {
  const t0 = now()
  for (let r = 0; r < 20; r++) for (const id of ids) sink += a.lookupById(id)?.id ?? 0
  return rate(20 * N, t0)
})
reportFigure({ name: 'memory.lookupById', value: Math.round(byId), unit: 'ops/s' })

const byLabels = bestOf(3, () => {
  const t0 = now()
  for (let r = 0; r < 5; r++) for (const l of labelSets) sink += a.lookupByLabels(l)?.id ?? 0
  return rate(5 * N, t0)
})
reportFigure({
  name: 'memory.lookupByLabels',
  value: Math.round(byLabels),
  unit: 'ops/s',
  note: 'Labels input',
})

const parse = bestOf(3, () => {
  const t0 = now()
  for (let i = 0; i < N; i++) sink += parseLabel(`k8s:app=svc${i}`).key.length
  return rate(N, t0)
})
reportFigure({ name: 'labels.parse', value: Math.round(parse), unit: 'ops/s' })

// ipcache: 10k /32 endpoints, 1k /24s, 100 /16s, a default route; random v4 lookups.
const ipc = new IPCache()
for (let i = 0; i < 10_000; i++)
  ipc.upsert(makePrefix(4, BigInt(0x0a000000 + i * 7), 32), { identity: 256 + (i % 1000) })
for (let i = 0; i < 1000; i++)
  ipc.upsert(makePrefix(4, BigInt(0x0b000000 + i * 256), 24), { identity: 300 })
for (let i = 0; i < 100; i++)
  ipc.upsert(makePrefix(4, BigInt(0x0c000000 + i * 65536), 16), { identity: 301 })
ipc.upsert('0.0.0.0/0', { identity: 2 })
const probes = Array.from({ length: 100_000 }, (_, i) => {
  const base = [0x0a000000, 0x0b000000, 0x0c000000, 0x0d000000][i % 4] as number
  return (base + ((i * 2654435761) % 0x100000)) >>> 0
})
const lpm = bestOf(3, () => {
  const t0 = now()
  for (const p of probes) sink += ipc.lookupV4(p)?.entry.identity ?? 0
  return rate(probes.length, t0)
})
reportFigure({
  name: 'ipcache.lookupV4',
  value: Math.round(lpm),
  unit: 'ops/s',
  prefixes: ipc.size,
})
const probeText = probes
  .slice(0, 20_000)
  .map((p) => `${p >>> 24}.${(p >>> 16) & 255}.${(p >>> 8) & 255}.${p & 255}`)
const lpmText = bestOf(3, () => {
  const t0 = now()
  for (const p of probeText) sink += ipc.lookup(p)?.entry.identity ?? 0
  return rate(probeText.length, t0)
})
reportFigure({
  name: 'ipcache.lookup(string)',
  value: Math.round(lpmText),
  unit: 'ops/s',
  prefixes: ipc.size,
})
if (sink === 42) process.stderr.write('')
