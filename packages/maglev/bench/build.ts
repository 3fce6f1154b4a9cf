// Maglev table build: our O(N+M) fill against the N×M permutation-matrix build that Cilium's
// pkg/maglev does, side by side in one run, at M ∈ {16381, 65521, 131071} × N ∈ {100, 1000}.
// Reports the median time and the memory allocated beyond the output table (measured as the
// growth of V8 heap + ArrayBuffer memory across one build, after a full GC, no GC in between).
import { median, percentile, reportFigure } from '@membrane/test-utils'
import { type Backend, backendHashString, buildLookupTable, decodeSeed } from '../src/index'
import { matrixTable } from './_matrix'

const gc = (globalThis as { gc?: () => void }).gc
if (!gc)
  process.stderr.write('bench: run with --expose-gc for memory figures (npm run bench does)\n')

const SIZES = [16381, 65521, 131071] as const
const COUNTS = [100, 1000] as const
const TARGET_MS: Record<string, number> = { '16381/1000': 5, '131071/1000': 60 }
const { murmur } = decodeSeed()

function backendsOf(n: number): Backend[] {
  return Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 8080,
    protocol: 'TCP',
  }))
}

function used(): number {
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

/** Bytes allocated by one call beyond what it returns. */
function extraMemory(fn: () => Uint32Array): number {
  gc?.()
  gc?.()
  const before = used()
  const table = fn()
  const grown = used() - before - table.byteLength
  return Math.max(0, grown)
}

function time(fn: () => unknown, samples: number): number[] {
  const out: number[] = []
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now()
    fn()
    out.push(performance.now() - t0)
  }
  return out
}

for (const m of SIZES) {
  for (const n of COUNTS) {
    const backends = backendsOf(n)
    const entries = backends.map((b) => ({ key: backendHashString(b), id: b.id, weight: 1 }))
    const ours = () => buildLookupTable(backends, { tableSize: m })
    const matrix = () => matrixTable(entries, m, murmur)

    // Correctness first: the two must agree, or the timing means nothing.
    const a = ours()
    const b = matrix()
    if (a.length !== b.length || a.some((v, i) => v !== b[i]))
      throw new Error(`tables differ at M=${m} N=${n}`)

    const big = n * m > 20_000_000
    const oursSamples = time(ours, 3) && time(ours, big ? 15 : 30)
    gc?.()
    const matrixSamples = time(matrix, 1) && time(matrix, big ? 5 : 15)
    gc?.()
    const oursMem = extraMemory(ours)
    const matrixMem = extraMemory(matrix)
    const oursMs = median(oursSamples)
    const matrixMs = median(matrixSamples)
    const key = `${m}/${n}`
    reportFigure({
      name: 'maglev_build_time',
      value: Number(oursMs.toFixed(3)),
      unit: 'ms',
      impl: 'o(n+m)',
      tableSize: m,
      backends: n,
      p95: Number(percentile(oursSamples, 95).toFixed(3)),
      samples: oursSamples.length,
      ...(TARGET_MS[key] ? { target: TARGET_MS[key] } : {}),
    })
    reportFigure({
      name: 'maglev_build_time',
      value: Number(matrixMs.toFixed(3)),
      unit: 'ms',
      impl: 'matrix',
      tableSize: m,
      backends: n,
      p95: Number(percentile(matrixSamples, 95).toFixed(3)),
      samples: matrixSamples.length,
    })
    reportFigure({
      name: 'maglev_build_speedup',
      value: Number((matrixMs / oursMs).toFixed(2)),
      unit: 'x',
      tableSize: m,
      backends: n,
    })
    reportFigure({
      name: 'maglev_build_extra_memory',
      value: Number((oursMem / 1024).toFixed(1)),
      unit: 'KiB',
      impl: 'o(n+m)',
      tableSize: m,
      backends: n,
      tableKiB: (m * 4) / 1024,
      target: 2048,
    })
    reportFigure({
      name: 'maglev_build_extra_memory',
      value: Number((matrixMem / 1024).toFixed(1)),
      unit: 'KiB',
      impl: 'matrix',
      tableSize: m,
      backends: n,
      tableKiB: (m * 4) / 1024,
      matrixElement: 'uint32 (Cilium uses uint64: twice this)',
    })
  }
}

// Weighted backends (weights 1..100, so Cilium's weight scheme is active): the turn-skipping
// loop adds work per slot; ours only, at N = 1000, plus the matrix build at the smallest M.
for (const m of SIZES) {
  const n = 1000
  const backends = backendsOf(n).map((b, i) => ({ ...b, weight: 1 + (i % 100) }))
  const ours = () => buildLookupTable(backends, { tableSize: m })
  ours()
  const samples = time(ours, 15)
  reportFigure({
    name: 'maglev_build_time_weighted',
    value: Number(median(samples).toFixed(3)),
    unit: 'ms',
    impl: 'o(n+m)',
    tableSize: m,
    backends: n,
    p95: Number(percentile(samples, 95).toFixed(3)),
    samples: samples.length,
  })
  if (m === 16381) {
    const entries = backends.map((b) => ({ key: backendHashString(b), id: b.id, weight: b.weight }))
    const matrixSamples = time(() => matrixTable(entries, m, murmur), 10)
    reportFigure({
      name: 'maglev_build_time_weighted',
      value: Number(median(matrixSamples).toFixed(3)),
      unit: 'ms',
      impl: 'matrix',
      tableSize: m,
      backends: n,
      p95: Number(percentile(matrixSamples, 95).toFixed(3)),
      samples: matrixSamples.length,
    })
  }
}
