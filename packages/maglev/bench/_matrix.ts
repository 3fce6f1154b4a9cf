// The straightforward Maglev build that materialises the N×M permutation matrix, as Cilium's
// pkg/maglev does (one row of M entries per backend, walked with a per-backend cursor). Kept
// here as the baseline of the benchmark and as a reference for the tests; not exported.
import type { TableEntry } from '../src/internal/compute'
import { compareKeys, offsetAndSkip } from '../src/internal/compute'

/** Cilium's algorithm over a full permutation matrix (Uint32Array: M < 2^32; Cilium uses uint64). */
export function matrixTable(
  entries: readonly TableEntry[],
  m: number,
  murmurSeed: number,
): Uint32Array {
  const backends = [...entries].sort((a, b) => compareKeys(a.key, b.key))
  const l = backends.length
  const perm = new Uint32Array(l * m)
  for (let i = 0; i < l; i++) {
    const [offset, skip] = offsetAndSkip(backends[i]!.key, m, murmurSeed)
    const row = i * m
    perm[row] = offset
    for (let j = 1; j < m; j++) perm[row + j] = (perm[row + j - 1]! + skip) % m
  }
  let weightSum = 0
  const counter = new Float64Array(l)
  for (let i = 0; i < l; i++) weightSum += backends[i]!.weight
  for (let i = 0; i < l; i++) counter[i] = backends[i]!.weight / l
  const weighted = Math.floor(weightSum / l) > 1
  const next = new Int32Array(l)
  const entry = new Int32Array(m).fill(-1)
  for (let n = 0; n < m; n++) {
    let i = n % l
    for (;;) {
      if (weighted) {
        if ((n + 1) * backends[i]!.weight < Math.trunc(counter[i]!)) {
          i = (i + 1) % l
          continue
        }
        counter[i]! += weightSum
      }
      let c = perm[i * m + next[i]!]!
      while (entry[c]! >= 0) {
        next[i]!++
        c = perm[i * m + next[i]!]!
      }
      entry[c] = i
      next[i]!++
      break
    }
  }
  const table = new Uint32Array(m)
  for (let s = 0; s < m; s++) table[s] = backends[entry[s]!]!.id
  return table
}
