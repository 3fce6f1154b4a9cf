import * as types from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as loader from '../src'
import { codecFromLayout } from '../src/btf'

describe('codecs', () => {
  it("are @membrane/types' codecs, re-exported (one implementation)", () => {
    const pairs: Array<[unknown, unknown]> = [
      [loader.u8, types.u8],
      [loader.u32, types.u32],
      [loader.u64, types.u64],
      [loader.be16, types.be16],
      [loader.ipv4, types.ipv4],
      [loader.ipv6, types.ipv6],
    ]
    for (const [a, b] of pairs) expect(a).toBe(b)
    expect(loader.struct).toBe(types.struct)
    expect(loader.lpmKey).toBe(types.lpmKey)
  })

  it('codecFromLayout follows BTF offsets, widths and signedness; refuses bitfields', () => {
    const int = (size: number, signed = false) => ({ kind: 'int' as const, size, signed })
    const c = codecFromLayout({
      name: 'k',
      kind: 'struct',
      size: 16,
      fields: [
        { name: 'a', offset: 0, type: int(1) },
        { name: 'b', offset: 2, type: int(2, true) },
        { name: 'c', offset: 4, type: int(4) },
        { name: 'd', offset: 8, type: int(8, true) },
      ],
    })
    expect(c.size).toBe(16)
    fc.assert(
      fc.property(
        fc.record({
          a: fc.integer({ min: 0, max: 255 }),
          b: fc.integer({ min: -0x8000, max: 0x7fff }),
          c: fc.integer({ min: 0, max: 0xffffffff }),
          d: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
        }),
        (v) => {
          const buf = c.encode(v)
          expect(buf.readInt16LE(2)).toBe(v.b)
          expect(buf.readBigInt64LE(8)).toBe(v.d)
          expect(c.decode(buf)).toEqual(v)
        },
      ),
    )
    const arr = codecFromLayout({ kind: 'array', size: 8, len: 2, elem: int(4) })
    expect(arr.decode(arr.encode([1, 2]))).toEqual([1, 2])
    expect(codecFromLayout({ kind: 'array', size: 6, len: 6, elem: int(1) }).size).toBe(6)
    expect(() =>
      codecFromLayout({
        name: 'flags',
        kind: 'struct',
        size: 4,
        fields: [{ name: 'x', offset: 0, bitOffset: 0, bitSize: 3, type: int(4) }],
      }),
    ).toThrow(/flags\.x: expected a whole-byte field/)
  })
})
