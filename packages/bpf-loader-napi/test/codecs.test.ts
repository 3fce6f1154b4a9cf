import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { codecFromLayout } from '../src/btf'
import {
  array,
  be16,
  be32,
  bytes,
  i32,
  i64,
  ipv4,
  ipv6,
  lpmKey,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '../src/codecs'

describe('codecs', () => {
  it('integers round-trip and reject out-of-range values', () => {
    const cases = [
      [u8, fc.integer({ min: 0, max: 0xff })],
      [u16, fc.integer({ min: 0, max: 0xffff })],
      [be16, fc.integer({ min: 0, max: 0xffff })],
      [u32, fc.integer({ min: 0, max: 0xffffffff })],
      [be32, fc.integer({ min: 0, max: 0xffffffff })],
      [i32, fc.integer({ min: -0x80000000, max: 0x7fffffff })],
    ] as const
    for (const [codec, arb] of cases) {
      fc.assert(
        fc.property(arb, (v) => {
          const b = codec.encode(v)
          expect(b.length).toBe(codec.size)
          expect(codec.decode(b)).toBe(v)
        }),
      )
    }
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        expect(u64.decode(u64.encode(v))).toBe(v)
      }),
    )
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (v) => {
        expect(i64.decode(i64.encode(v))).toBe(v)
      }),
    )
    expect(() => u8.encode(256)).toThrow('u8: expected an integer in [0, 255], got 256')
    expect(() => u32.encode(-1)).toThrow(/u32/)
    expect(() => u32.encode(1.5)).toThrow(/u32/)
    expect(() => u64.encode(1 as unknown as bigint)).toThrow(/u64: expected a bigint/)
  })

  it('byte order: u32 is little-endian, be16/be32 and addresses are network order', () => {
    expect(u32.encode(0x01020304)).toEqual(Buffer.from([4, 3, 2, 1]))
    expect(be32.encode(0x01020304)).toEqual(Buffer.from([1, 2, 3, 4]))
    expect(be16.encode(80)).toEqual(Buffer.from([0, 80]))
    expect(ipv4.encode('10.1.2.3')).toEqual(Buffer.from([10, 1, 2, 3]))
    expect(ipv6.encode('2001:db8::1')).toEqual(
      Buffer.from('20010db8000000000000000000000001', 'hex'),
    )
  })

  it('ipv4 round-trips every address and rejects malformed text', () => {
    fc.assert(
      fc.property(fc.ipV4(), (a) => {
        expect(ipv4.decode(ipv4.encode(a))).toBe(a)
      }),
    )
    for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', 'a.b.c.d', '']) {
      expect(() => ipv4.encode(bad)).toThrow(/ipv4: expected a dotted-quad IPv4 address/)
    }
  })

  it('ipv6 round-trips bytes through canonical text (RFC 5952)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (raw) => {
        const b = Buffer.from(raw)
        const text = ipv6.decode(b)
        expect(ipv6.encode(text)).toEqual(b)
        expect(ipv6.decode(ipv6.encode(text))).toBe(text)
      }),
    )
    fc.assert(
      fc.property(fc.ipV6(), (a) => {
        expect(ipv6.decode(ipv6.encode(ipv6.decode(ipv6.encode(a))))).toBe(
          ipv6.decode(ipv6.encode(a)),
        )
      }),
    )
    expect(ipv6.decode(ipv6.encode('2001:0db8:0000:0000:0000:0000:0000:0001'))).toBe('2001:db8::1')
    // IPv4-mapped prints as Go's netip does (@membrane/types owns the text form).
    expect(ipv6.decode(ipv6.encode('::ffff:a00:1'))).toBe('::ffff:10.0.0.1')
    expect(ipv6.decode(Buffer.alloc(16))).toBe('::')
    for (const bad of ['1::2::3', 'gggg::', '1:2:3:4:5:6:7:8:9', '12345::', ':']) {
      expect(() => ipv6.encode(bad)).toThrow(/ipv6: expected an IPv6 address/)
    }
  })

  it('struct lays fields out with C natural alignment and zero padding', () => {
    const s = struct([
      ['a', u8],
      ['b', u32],
      ['c', u16],
      ['d', u64],
    ] as const)
    expect(s.size).toBe(24) // a@0 b@4 c@8 d@16
    expect(s.align).toBe(8)
    const b = s.encode({ a: 1, b: 2, c: 3, d: 4n })
    expect(b.readUInt8(0)).toBe(1)
    expect(b.readUInt32LE(4)).toBe(2)
    expect(b.readUInt16LE(8)).toBe(3)
    expect(b.readBigUInt64LE(16)).toBe(4n)
    expect(b.subarray(1, 4)).toEqual(Buffer.alloc(3))
    fc.assert(
      fc.property(
        fc.record({
          a: fc.integer({ min: 0, max: 255 }),
          b: fc.integer({ min: 0, max: 0xffffffff }),
          c: fc.integer({ min: 0, max: 0xffff }),
          d: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        }),
        (v) => {
          expect(s.decode(s.encode(v))).toEqual(v)
        },
      ),
    )
    expect(() => s.encode({ a: 1, b: 2, c: 3 } as never)).toThrow(
      /struct field d: expected a value/,
    )
    expect(() => s.encode({ a: 1, b: -2, c: 3, d: 0n })).toThrow(/struct field b/)
  })

  it('lpmKey: u32 prefix length then the data; prefix bounded by the data width', () => {
    const k = lpmKey(ipv4)
    expect(k.size).toBe(8)
    expect(k.encode({ prefixLen: 24, addr: '10.1.2.0' })).toEqual(
      Buffer.from([24, 0, 0, 0, 10, 1, 2, 0]),
    )
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 32 }), fc.ipV4(), (prefixLen, addr) => {
        expect(k.decode(k.encode({ prefixLen, addr }))).toEqual({ prefixLen, addr })
      }),
    )
    const k6 = lpmKey(ipv6)
    expect(k6.size).toBe(20)
    expect(() => k.encode({ prefixLen: 33, addr: '1.1.1.1' })).toThrow(/prefixLen/)
  })

  it('bytes and array round-trip', () => {
    const b6 = bytes(6)
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (a) => {
        expect(b6.decode(b6.encode(Buffer.from(a)))).toEqual(Buffer.from(a))
      }),
    )
    const arr = array(u16, 4)
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }),
        (v) => {
          expect(arr.decode(arr.encode(v))).toEqual(v)
        },
      ),
    )
    expect(() => arr.encode([1, 2])).toThrow(/array of 4 elements/)
    expect(() => b6.encode(Buffer.alloc(5))).toThrow(/6-byte Buffer, got a 5-byte Buffer/)
    expect(() => u32.decode(Buffer.alloc(3))).toThrow(/at least 4 bytes/)
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
