import type { StructCodec } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { STRUCT_CODECS } from '../src'

describe('datapath struct codecs', () => {
  for (const codec of STRUCT_CODECS as ReadonlyArray<StructCodec<unknown>>) {
    it(`${codec.cName}: encode(decode(b)) gives b back (padding and holes zero), decode is stable`, () => {
      // Random member bytes, padding and holes zero, are exactly the records the codec can write:
      // every member decodes to a value that encodes to the same bytes (IPv6 via canonical text).
      const bytes = fc.uint8Array({ minLength: codec.size, maxLength: codec.size }).map((a) => {
        const b = Buffer.alloc(codec.size)
        for (const f of codec.fields)
          if (!f.padding) b.set(a.subarray(f.offset, f.offset + f.codec.size), f.offset)
        return b
      })
      fc.assert(
        fc.property(bytes, (b) => {
          const value = codec.decode(b)
          expect(codec.encode(value)).toEqual(b)
          expect(codec.decode(codec.encode(value))).toEqual(value)
        }),
        { numRuns: codec.size > 1000 ? 10 : 100 },
      )
    })
  }

  it('names the struct and member of a value that does not fit', () => {
    const [tuple] = STRUCT_CODECS.filter((c) => c.cName === 'mb_ct_tuple4')
    const ok = { daddr: '10.0.0.1', saddr: '10.0.0.2', dport: 80, sport: 1, nexthdr: 6, flags: 0 }
    expect(() => tuple?.encode({ ...ok, dport: 70000 } as never)).toThrowError(
      /mb_ct_tuple4\.dport: expected an integer in \[0, 65535\], got 70000/,
    )
    expect(() => tuple?.encode({ ...ok, daddr: '10.0.0.256' } as never)).toThrowError(
      /mb_ct_tuple4\.daddr: expected a dotted-quad IPv4 address/,
    )
  })
})
