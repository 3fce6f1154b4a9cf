import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { matrixTable } from '../bench/_matrix'
import {
  analyze,
  type Backend,
  backendHashString,
  buildLookupTable,
  decodeSeed,
  disruption,
  TABLE_SIZES,
} from '../src/index'

/** N distinct backends: distinct ids and distinct (address, port). */
function backendsArb(opts: { min: number; max: number; weight?: fc.Arbitrary<number> }) {
  return fc
    .uniqueArray(
      fc.record({
        a: fc.nat({ max: 0xffff }),
        port: fc.integer({ min: 1, max: 65535 }),
        v6: fc.boolean(),
        internal: fc.boolean(),
      }),
      {
        minLength: opts.min,
        maxLength: opts.max,
        selector: (r) => `${r.a}/${r.port}/${r.v6}/${r.internal}`,
      },
    )
    .chain((rows) =>
      fc
        .tuple(
          fc.shuffledSubarray(
            Array.from({ length: rows.length * 3 }, (_, i) => i * 7 + 1),
            { minLength: rows.length, maxLength: rows.length },
          ),
          fc.array(opts.weight ?? fc.constant(1), {
            minLength: rows.length,
            maxLength: rows.length,
          }),
        )
        .map(([ids, weights]) =>
          rows.map(
            (r, i): Backend => ({
              id: ids[i]!,
              address: r.v6 ? `2001:db8::${r.a.toString(16)}` : `10.1.${r.a >> 8}.${r.a & 255}`,
              port: r.port,
              protocol: 'TCP',
              scope: r.internal ? 'internal' : 'external',
              weight: weights[i]!,
            }),
          ),
        ),
    )
}

const smallSize = fc.constantFrom(251, 509, 1021)

describe('table properties', () => {
  it('every slot holds the id of one of the backends', () => {
    fc.assert(
      fc.property(
        backendsArb({ min: 1, max: 40, weight: fc.integer({ min: 1, max: 20 }) }),
        smallSize,
        (backends, tableSize) => {
          const table = buildLookupTable(backends, { tableSize })
          const ids = new Set(backends.map((b) => b.id))
          expect(table.length).toBe(tableSize)
          for (const id of table) expect(ids.has(id)).toBe(true)
        },
      ),
      { numRuns: 100 },
    )
  })

  it('equals the N×M matrix implementation (Cilium’s algorithm as written)', () => {
    const { murmur } = decodeSeed()
    fc.assert(
      fc.property(
        backendsArb({ min: 1, max: 30, weight: fc.integer({ min: 1, max: 300 }) }),
        smallSize,
        (backends, tableSize) => {
          const entries = backends.map((b) => ({
            key: backendHashString(b),
            id: b.id,
            weight: b.weight ?? 1,
          }))
          expect(buildLookupTable(backends, { tableSize })).toEqual(
            matrixTable(entries, tableSize, murmur),
          )
        },
      ),
      { numRuns: 150 },
    )
  })

  it('equal weights: slot counts differ by at most one', () => {
    fc.assert(
      fc.property(
        backendsArb({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom(...TABLE_SIZES.slice(0, 6)),
        (backends, weight, tableSize) => {
          const same = backends.map((b) => ({ ...b, weight }))
          const a = analyze(buildLookupTable(same, { tableSize }), same)
          expect(a.maxSlots - a.minSlots).toBeLessThanOrEqual(1)
        },
      ),
      { numRuns: 80 },
    )
  })

  // Maglev does not bound the disruption of one removal per case: survivors get their turns
  // earlier and can take each other's slots. Cilium's algorithm (which we must equal) moves
  // ~1-3% of the survivors' slots on average at M ≈ 100·N, more for tiny N. So the per-case
  // "< 1%" holds for Cilium's own fixtures (golden tests) but not for every backend set; what
  // holds for every set is checked here, and the average is checked over a fixed sample.
  it('removing one of N backends (M ≥ 100·N): its slots go to survivors, survivors mostly stay', () => {
    const moved: number[] = []
    fc.assert(
      fc.property(backendsArb({ min: 2, max: 40 }), fc.nat(), (backends, pick) => {
        const tableSize = TABLE_SIZES.find((m) => m >= 100 * backends.length)!
        const before = buildLookupTable(backends, { tableSize })
        const gone = backends[pick % backends.length]!
        const after = buildLookupTable(
          backends.filter((b) => b !== gone),
          { tableSize },
        )
        expect(after.includes(gone.id)).toBe(false)
        const d = disruption(before, after)
        expect(d).toBeLessThan(0.5)
        moved.push(d)
      }),
      { numRuns: 200, seed: 4 },
    )
    const mean = moved.reduce((s, d) => s + d, 0) / moved.length
    expect(mean).toBeLessThan(0.03)
  })

  it('removal disruption averages < 1% when M ≥ 1000·N', () => {
    const moved: number[] = []
    fc.assert(
      fc.property(backendsArb({ min: 2, max: 16 }), fc.nat(), (backends, pick) => {
        const before = buildLookupTable(backends, { tableSize: 16381 })
        const gone = backends[pick % backends.length]!
        const after = buildLookupTable(
          backends.filter((b) => b !== gone),
          { tableSize: 16381 },
        )
        moved.push(disruption(before, after))
      }),
      { numRuns: 100, seed: 11 },
    )
    expect(moved.reduce((s, d) => s + d, 0) / moved.length).toBeLessThan(0.01)
  })

  it('documents a Cilium case where one removal at M ≥ 100·N moves more than 1%', () => {
    // Found by fast-check; the N×M matrix version (Cilium's code path) gives the same table.
    const backends: Backend[] = [
      { id: 29, address: '10.1.0.0', port: 1881 },
      { id: 15, address: '10.1.0.0', port: 1 },
      { id: 1, address: '2001:db8::0', port: 1 },
    ]
    const before = buildLookupTable(backends, { tableSize: 509 })
    const after = buildLookupTable([backends[0]!, backends[2]!], { tableSize: 509 })
    expect(disruption(before, after)).toBeGreaterThan(0.01)
  })

  it('input order never changes the table', () => {
    fc.assert(
      fc.property(
        backendsArb({ min: 1, max: 30, weight: fc.integer({ min: 1, max: 50 }) }).chain((b) =>
          fc.tuple(
            fc.constant(b),
            fc.shuffledSubarray(b, { minLength: b.length, maxLength: b.length }),
          ),
        ),
        smallSize,
        ([backends, shuffled], tableSize) => {
          expect(buildLookupTable(shuffled, { tableSize })).toEqual(
            buildLookupTable(backends, { tableSize }),
          )
        },
      ),
      { numRuns: 100 },
    )
  })

  it('weights give shares within 1% of M·w/Σw when the scheme applies (Σw/N > 1)', () => {
    fc.assert(
      fc.property(
        backendsArb({ min: 2, max: 20, weight: fc.integer({ min: 1, max: 100 }) }),
        fc.constantFrom(16381, 32749, 65521),
        (backends, tableSize) => {
          const sum = backends.reduce((s, b) => s + b.weight!, 0)
          fc.pre(Math.floor(sum / backends.length) > 1)
          const a = analyze(buildLookupTable(backends, { tableSize }), backends)
          expect(a.maxDeviation).toBeLessThan(0.01)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('more backends than slots (N > M): like Cilium, the first M turns win one slot each', () => {
    const { murmur } = decodeSeed()
    for (const weighted of [false, true]) {
      const backends: Backend[] = Array.from({ length: 400 }, (_, i) => ({
        id: i + 1,
        address: `10.2.${i >> 8}.${i & 255}`,
        port: 80,
        weight: weighted ? 1 + (i % 7) : 1,
      }))
      const table = buildLookupTable(backends, { tableSize: 251 })
      const entries = backends.map((b) => ({
        key: backendHashString(b),
        id: b.id,
        weight: b.weight!,
      }))
      expect(table).toEqual(matrixTable(entries, 251, murmur))
      if (!weighted) expect(new Set(table).size).toBe(251)
    }
  })

  it('weights are ignored (equal shares) when Σw/N ≤ 1, as in Cilium', () => {
    // weights 1 and 2: Σw/N = 3/2 = 1 in integer division, so both get half the table
    const backends: Backend[] = [
      { id: 1, address: '10.0.0.1', port: 80, weight: 1 },
      { id: 2, address: '10.0.0.2', port: 80, weight: 2 },
    ]
    const a = analyze(buildLookupTable(backends, { tableSize: 1021 }))
    expect([a.slots.get(1), a.slots.get(2)].sort()).toEqual([510, 511])
  })
})
