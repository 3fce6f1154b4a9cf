// The Maglev fill, in O(N + M) memory. Cilium materialises each backend's permutation
// (offset + j·skip) mod M as a row of an N×M matrix and walks it with a per-backend cursor. The
// row is an arithmetic progression mod M, so the cursor can carry the position itself: keep
// pos[i] = (offset + next[i]·skip) mod M and advance it by one addition and a conditional
// subtraction. Same visiting order, same table, no matrix.

/** Marks an empty slot while filling; backend indices are < 2^32 - 1. */
const EMPTY = 0xffffffff

/**
 * Fill `out` (length M) with backend indices 0..N-1 in Cilium's order: turn n goes to backend
 * n mod N, weights (when Σw / N > 1, integer division) make a backend pass its turn while
 * (n+1)·w < ⌊counter⌋, its counter starting at w/N and growing by Σw each time it takes a slot.
 *
 * `offsets[i]` < M and 1 ≤ `skips[i]` < M with gcd(skip, M) = 1 (M prime) so each permutation
 * visits every slot. Any M ≥ 2 works here; the public API restricts M to Cilium's primes.
 */
export function fillTable(
  offsets: Uint32Array,
  skips: Uint32Array,
  weights: ArrayLike<number>,
  out: Uint32Array,
): void {
  const m = out.length
  const l = offsets.length
  out.fill(EMPTY)
  // pos is the next candidate slot of each backend (its permutation cursor).
  const pos = offsets.slice()
  let weightSum = 0
  for (let i = 0; i < l; i++) weightSum += weights[i]!
  const weighted = Math.floor(weightSum / l) > 1

  if (!weighted) {
    for (let n = 0, i = 0; n < m; n++) {
      const skip = skips[i]!
      let c = pos[i]!
      while (out[c] !== EMPTY) {
        c += skip
        if (c >= m) c -= m
      }
      out[c] = i
      c += skip
      if (c >= m) c -= m
      pos[i] = c
      if (++i === l) i = 0
    }
    return
  }

  // Counters are float64 on purpose: Cilium keeps them as float64 and truncates for the
  // comparison, and the table must match bit for bit.
  const counter = new Float64Array(l)
  for (let i = 0; i < l; i++) counter[i] = weights[i]! / l
  for (let n = 0; n < m; n++) {
    let i = n % l
    const turn = n + 1
    while (turn * weights[i]! < Math.floor(counter[i]!)) {
      if (++i === l) i = 0
    }
    counter[i]! += weightSum
    const skip = skips[i]!
    let c = pos[i]!
    while (out[c] !== EMPTY) {
      c += skip
      if (c >= m) c -= m
    }
    out[c] = i
    c += skip
    if (c >= m) c -= m
    pos[i] = c
  }
}
