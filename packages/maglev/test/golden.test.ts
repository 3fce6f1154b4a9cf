// Golden vectors: tables that must come out exactly as Cilium's, and a table small enough to
// derive by hand.
import { describe, expect, it } from 'vitest'
import { matrixTable } from '../bench/_matrix'
import { analyze, buildLookupTable, decodeSeed, disruption } from '../src/index'
import { computeTable } from '../src/internal/compute'
import { fillTable } from '../src/internal/fill'

/** Run-length encoding `<id>(<count>),...`, the format of Cilium's TestReproducible. */
function rle(ids: ArrayLike<number>): string {
  const runs: string[] = []
  let current = ids[0]!
  let count = 1
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === current) count++
    else {
      runs.push(`${current}(${count})`)
      current = ids[i]!
      count = 1
    }
  }
  runs.push(`${current}(${count})`)
  return runs.join(',')
}

/** Cilium's mkAddr(i): the IPv4 address with value i, port i, TCP. */
function mkAddr(i: number) {
  return {
    address: `${i >>> 24}.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`,
    port: i % 65535,
  }
}

describe('Cilium golden tables', () => {
  // Expected table copied from cilium/cilium pkg/maglev/maglev_test.go, TestReproducible
  // (M = 251, DefaultHashSeed, 4 weighted backends built with mkAddr); the same string is
  // expected by both the map-based (pre-1.17) and the BackendInfo-based versions of that test.
  const expected =
    '2(5),3(1),2(3),1(1),2(2),0(1),2(1),3(1),2(1),3(1),2(1),1(1),2(7),1(1),2(14),3(1),2(1),' +
    '1(2),2(12),3(1),2(3),1(1),2(4),3(1),2(8),3(1),2(2),1(1),2(16),1(2),2(3),3(1),2(11),1(2),2(4),3(1),2(3),' +
    '1(1),2(4),3(1),2(1),0(1),1(1),2(8),1(1),2(7),1(1),2(4),3(1),2(1),3(1),2(9),1(2),2(5),1(1),2(7),3(1),2(1),' +
    '3(1),1(1),2(8),1(1),2(4),0(1),2(1),1(1),2(5),3(1),2(3),1(1),2(4),3(1),2(3),1(1),2(12),0(1),3(1),2(3),3(1),' +
    '2(4),3(1),2(2),1(1),2(7)'
  const backends = [
    { ...mkAddr(1), weight: 2, id: 0 },
    { ...mkAddr(3), weight: 13, id: 1 },
    { ...mkAddr(4), weight: 111, id: 2 },
    { ...mkAddr(5), weight: 10, id: 3 },
  ]

  it('TestReproducible: M=251, weights 2/13/111/10', () => {
    expect(rle(buildLookupTable(backends, { tableSize: 251 }))).toBe(expected)
  })

  it('TestReproducible: same table whatever the input order', () => {
    const reversed = [...backends].reverse()
    expect(rle(buildLookupTable(reversed, { tableSize: 251, seed: 'JLfvgnHc2kaSUFaI' }))).toBe(
      expected,
    )
  })

  it('TestReproducible: a different seed gives a different table', () => {
    expect(rle(buildLookupTable(backends, { tableSize: 251, seed: 'AAAAAAAAAAAAAAAA' }))).not.toBe(
      expected,
    )
  })

  it('TestBackendRemoval: removing the last of 3 backends at M=1021 moves < 1% of slots', () => {
    // cilium/cilium pkg/maglev/maglev_test.go: mkAddr(1..3), ids 1..3, weight 1.
    const three = [1, 2, 3].map((k) => ({ ...mkAddr(k), id: k }))
    const before = buildLookupTable(three, { tableSize: 1021 })
    const after = buildLookupTable(three.slice(0, 2), { tableSize: 1021 })
    let changed = 0
    for (let i = 0; i < before.length; i++) {
      if ((before[i] === 1 || before[i] === 2) && after[i] !== before[i]) changed++
      expect([1, 2]).toContain(after[i])
    }
    expect((changed / 1021) * 100).toBeLessThan(1)
    expect(disruption(before, after)).toBeLessThan(0.01)
  })

  it('TestWeightedBackendWithRemoval (BackendInfo version): slot counts 16/98/832/75 at M=1021', () => {
    // cilium/cilium pkg/maglev/maglev_test.go: mkAddr(1..4), weights 2, 13, 111, 10, ids 1..4.
    const weighted = [2, 13, 111, 10].map((weight, k) => ({ ...mkAddr(k + 1), weight, id: k + 1 }))
    const before = buildLookupTable(weighted, { tableSize: 1021 })
    const { slots } = analyze(before)
    expect([slots.get(1), slots.get(2), slots.get(3), slots.get(4)]).toEqual([16, 98, 832, 75])
    const after = buildLookupTable(weighted.slice(1), { tableSize: 1021 })
    let changed = 0
    for (let i = 0; i < before.length; i++) {
      if (before[i] !== 1 && after[i] !== before[i]) changed++
      expect([2, 3, 4]).toContain(after[i])
    }
    expect((changed / 1021) * 100).toBeLessThan(1)
  })

  it('TestWeightedBackendWithRemoval (map version): raw names one/three/two/tzwe give 16/98/832/75', () => {
    // The pre-1.17 test hashes the map keys themselves ("one", "three", "two", "tzwe").
    const { murmur } = decodeSeed()
    const entries = [
      { key: 'one', weight: 2, id: 0 },
      { key: 'three', weight: 13, id: 1 },
      { key: 'two', weight: 111, id: 2 },
      { key: 'tzwe', weight: 10, id: 3 },
    ]
    const { slots } = analyze(computeTable(entries, 1021, murmur))
    expect([0, 1, 2, 3].map((id) => slots.get(id))).toEqual([16, 98, 832, 75])
  })

  it('agrees with the N×M matrix implementation on the golden input', () => {
    const { murmur } = decodeSeed()
    const entries = backends.map((b) => ({
      key: `[${b.address}:${b.port}/TCP,State:active]`,
      id: b.id,
      weight: b.weight,
    }))
    expect(rle(matrixTable(entries, 251, murmur))).toBe(expected)
  })
})

describe('hand-derived tables (M = 7, the Maglev paper example)', () => {
  // Permutations with (offset, skip): B0 (3, 4) -> 3 0 4 1 5 2 6; B1 (0, 2) -> 0 2 4 6 1 3 5;
  // B2 (3, 1) -> 3 4 5 6 0 1 2.
  // Turns: B0 takes 3; B1 takes 0; B2 finds 3 taken, takes 4; B0 finds 0 taken, takes... its list
  // after 3 is 0 (taken), 4 (taken), 1 -> 1; B1 takes 2; B2 takes 5; B0: 5 taken, 2 taken, 6 -> 6.
  // Table: slot 0 B1, 1 B0, 2 B1, 3 B0, 4 B2, 5 B2, 6 B0.
  it('three backends', () => {
    const out = new Uint32Array(7)
    fillTable(Uint32Array.of(3, 0, 3), Uint32Array.of(4, 2, 1), [1, 1, 1], out)
    expect([...out]).toEqual([1, 0, 1, 0, 2, 2, 0])
  })

  // Without B1: B0 3; B2 4; B0 0; B2 5; B0 (4 taken) 1; B2 6; B0 (5 taken, 2) 2.
  // Table: 0 B0, 1 B0, 2 B0, 3 B0, 4 B2, 5 B2, 6 B2 — B0 and B2 keep every slot they had.
  it('after removing B1, survivors keep their slots', () => {
    const out = new Uint32Array(7)
    fillTable(Uint32Array.of(3, 3), Uint32Array.of(4, 1), [1, 1], out)
    expect([...out]).toEqual([0, 0, 0, 0, 1, 1, 1])
  })

  // Weighted (Σw/N = 4/2 = 2 > 1): B0 w=3, B1 w=1, counters start 1.5 and 0.5, grow by 4.
  // n=0: B0 (1·3 < ⌊1.5⌋=1? no) takes its offset 0, counter 5.5.
  // n=1: B1 (2·1 < 0? no) takes its offset 0 -> taken, +1 -> 1; counter 4.5.
  // n=2: B0 (3·3=9 < 5? no) 0+2=2; counter 9.5.  n=3: B1 (4 < 4? no) 2 taken -> 3; counter 8.5.
  // n=4: B0 (15 < 9? no) 4; counter 13.5.  n=5: B1 (6 < 8? yes) skip -> B0 (18 < 13? no) 6.
  // n=6: B0 (21 < 17? no) 6+2=8 mod 7=1 taken, 3 taken, 5 -> 5.
  // Table: 0 B0, 1 B1, 2 B0, 3 B1, 4 B0, 5 B0, 6 B0.
  it('weights follow the counter scheme', () => {
    const out = new Uint32Array(7)
    fillTable(Uint32Array.of(0, 0), Uint32Array.of(2, 1), [3, 1], out)
    expect([...out]).toEqual([0, 1, 0, 1, 0, 0, 0])
  })

  it('a single backend owns every slot', () => {
    const table = buildLookupTable([{ id: 42, address: '192.0.2.1', port: 443 }], {
      tableSize: 251,
    })
    expect(table.every((id) => id === 42)).toBe(true)
  })
})
