import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  analyze,
  applyDiff,
  buildLookupTable,
  diffTables,
  disruption,
  MaglevError,
} from '../src/index'

describe('diffTables', () => {
  it('lists exactly the changed slots, in order, and applying them yields the new table', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.nat({ max: 4 }), { minLength: 1, maxLength: 300 })
          .chain((a) =>
            fc.tuple(
              fc.constant(a),
              fc.array(fc.nat({ max: 4 }), { minLength: a.length, maxLength: a.length }),
            ),
          ),
        ([a, b]) => {
          const before = Uint32Array.from(a)
          const after = Uint32Array.from(b)
          const diff = diffTables(before, after)
          const changed = a.flatMap((v, i) => (v !== b[i] ? [i] : []))
          expect([...diff.slots]).toEqual(changed)
          expect([...diff.ids]).toEqual(changed.map((i) => b[i]))
          expect(applyDiff(before.slice(), diff)).toEqual(after)
        },
      ),
    )
  })

  it('with no previous table, writes every slot', () => {
    const after = Uint32Array.of(5, 6, 7)
    const diff = diffTables(undefined, after)
    expect([...diff.slots]).toEqual([0, 1, 2])
    expect([...diff.ids]).toEqual([5, 6, 7])
  })

  it('removing one backend of 10 rewrites about a tenth of the table, not all of it', () => {
    const backends = Array.from({ length: 10 }, (_, i) => ({
      id: i + 1,
      address: `10.0.0.${i + 1}`,
      port: 80,
    }))
    const before = buildLookupTable(backends, { tableSize: 16381 })
    const after = buildLookupTable(backends.slice(1), { tableSize: 16381 })
    const { slots } = diffTables(before, after)
    const owned = before.filter((id) => id === 1).length
    expect(slots.length).toBeGreaterThanOrEqual(owned)
    expect(slots.length).toBeLessThan(owned * 1.5)
  })

  it('refuses tables of different sizes', () => {
    expect(() => diffTables(new Uint32Array(251), new Uint32Array(509))).toThrow(MaglevError)
    expect(() => disruption(new Uint32Array(251), new Uint32Array(509))).toThrow(/251 and 509/)
  })
})

describe('analyze', () => {
  it('counts slots per backend and the imbalance', () => {
    const a = analyze(Uint32Array.of(1, 1, 1, 2, 2, 3))
    expect([...a.slots]).toEqual([
      [1, 3],
      [2, 2],
      [3, 1],
    ])
    expect(a.minSlots).toBe(1)
    expect(a.maxSlots).toBe(3)
    expect(a.imbalance).toBe(3)
  })

  it('with backends: ideal shares, absent backends at 0, worst deviation', () => {
    const a = analyze(Uint32Array.of(1, 1, 1, 2), [
      { id: 1, address: '10.0.0.1', port: 1, weight: 1 },
      { id: 2, address: '10.0.0.2', port: 1, weight: 1 },
      { id: 3, address: '10.0.0.3', port: 1, weight: 2 },
    ])
    expect(a.slots.get(3)).toBe(0)
    expect(a.expected?.get(3)).toBe(2)
    expect(a.imbalance).toBe(Number.POSITIVE_INFINITY)
    expect(a.maxDeviation).toBe(0.5) // backend 1: 3 slots vs 1 ideal, of 4
  })
})

describe('disruption', () => {
  it('is 0 for identical tables and counts only moves between survivors', () => {
    expect(disruption(Uint32Array.of(1, 2, 3), Uint32Array.of(1, 2, 3))).toBe(0)
    // 3 removed (its slot must move), 1 -> 2 moved once out of 3 survivor slots
    expect(disruption(Uint32Array.of(1, 1, 2, 3), Uint32Array.of(2, 1, 2, 1))).toBeCloseTo(1 / 3)
    // a slot handed to a new backend (4) is not a move between survivors
    expect(disruption(Uint32Array.of(1, 2), Uint32Array.of(4, 2))).toBe(0)
  })
})
