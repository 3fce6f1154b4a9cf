import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  aligned,
  array,
  be16,
  be32,
  bytes,
  type Codec,
  CodecError,
  CodecErrorCode,
  i8,
  i16,
  i32,
  i64,
  ipv4,
  ipv6,
  lpmKey,
  mac,
  named,
  namedStructs,
  pad,
  type StructCodec,
  snakeCase,
  struct,
  u8,
  u16,
  u32,
  u32array,
  u64,
} from '../src/codec'

describe('scalar, address and struct codecs', () => {
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
    // IPv4-mapped prints as Go's netip does (the one text form, ./ip).
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
})

const MEMBERS = [
  ['u8', u8],
  ['i8', i8],
  ['u16', u16],
  ['i16', i16],
  ['be16', be16],
  ['u32', u32],
  ['be32', be32],
  ['i32', i32],
  ['u64', u64],
  ['i64', i64],
  ['ipv4', ipv4],
  ['ipv6', ipv6],
  ['v6addr', aligned(ipv6, 8)],
  ['mac', mac],
  ['bytes3', bytes(3)],
  ['u32x3', u32array(3)],
  ['u16x2', array(u16, 2)],
  ['pad1', pad(1)],
  ['pad4', pad(4, 4)],
] as const

/** A random C struct: a list of members drawn from every kind of codec. */
const anyStruct = fc
  .array(fc.constantFrom(...MEMBERS), { minLength: 1, maxLength: 12 })
  .map((ms) =>
    struct(
      'test_struct',
      Object.fromEntries(ms.map(([kind, codec], i) => [`m${i}${kind}`, codec])) as Record<
        string,
        Codec<unknown>
      >,
    ),
  )

/** Bytes such a struct can hold: random member bytes, zero padding and holes. */
function recordOf(s: StructCodec<unknown>) {
  return fc.uint8Array({ minLength: s.size, maxLength: s.size }).map((a) => {
    const b = new Uint8Array(s.size)
    for (const f of s.fields)
      if (!f.padding) b.set(a.subarray(f.offset, f.offset + f.codec.size), f.offset)
    return b
  })
}

describe('struct layout and the zero-allocation paths (properties)', () => {
  it('offsets follow the C rules: aligned, in order, no gap as wide as the alignment', () => {
    fc.assert(
      fc.property(anyStruct, (s) => {
        let end = 0
        let maxAlign = 1
        for (const f of s.fields) {
          expect(f.offset % f.codec.align).toBe(0)
          expect(f.offset).toBeGreaterThanOrEqual(end)
          expect(f.offset - end).toBeLessThan(f.codec.align)
          end = f.offset + f.codec.size
          maxAlign = Math.max(maxAlign, f.codec.align)
        }
        expect(s.align).toBe(maxAlign)
        expect(s.size % maxAlign).toBe(0)
        expect(s.size).toBeGreaterThanOrEqual(end)
        expect(s.size - end).toBeLessThan(maxAlign)
      }),
    )
  })

  it('decode(encode(v)) is v, encode(decode(b)) is b, and write equals encode', () => {
    fc.assert(
      fc.property(
        anyStruct.chain((s) =>
          fc.tuple(fc.constant(s), recordOf(s), fc.nat(16), fc.uint8Array({ minLength: 1 })),
        ),
        ([s, b, at, junk]) => {
          const value = s.decode(b)
          const encoded = s.encode(value)
          expect(new Uint8Array(encoded)).toEqual(b)
          expect(s.decode(encoded)).toEqual(value)
          // write: the same bytes at any offset of a dirty buffer, nothing outside touched.
          const dirty = new Uint8Array(at + s.size + 8).map((_, i) => junk[i % junk.length] ?? 1)
          const before = dirty.slice()
          s.write(value, dirty, at)
          expect(dirty.subarray(at, at + s.size)).toEqual(b)
          expect(dirty.subarray(0, at)).toEqual(before.subarray(0, at))
          expect(dirty.subarray(at + s.size)).toEqual(before.subarray(at + s.size))
          expect(s.decode(dirty, at)).toEqual(value)
        },
      ),
    )
  })

  it('integers read and write like Node Buffer methods (byte order, sign)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (a) => {
        const b = Buffer.from(a)
        expect(i8.decode(a)).toBe(b.readInt8(0))
        expect(i16.decode(a)).toBe(b.readInt16LE(0))
        expect(u16.decode(a)).toBe(b.readUInt16LE(0))
        expect(be16.decode(a)).toBe(b.readUInt16BE(0))
        expect(i32.decode(a)).toBe(b.readInt32LE(0))
        expect(be32.decode(a)).toBe(b.readUInt32BE(0))
        expect(u64.decode(a)).toBe(b.readBigUInt64LE(0))
        expect(i64.decode(a)).toBe(b.readBigInt64LE(0))
      }),
    )
  })

  it('a named struct keeps C names: snake_case, named() and pads, and registers itself', () => {
    const s = struct('mb_test_named', {
      bytesPerSecond: named('bytes_per_sec', u64),
      endpointId: u16,
      pad: pad(6, 2),
    })
    expect(s.fields.map((f) => [f.cName, f.offset, f.codec.size])).toEqual([
      ['bytes_per_sec', 0, 8],
      ['endpoint_id', 8, 2],
      ['pad', 10, 6],
    ])
    expect(s.offsetOf('endpointId')).toBe(8)
    expect(s.decode(s.encode({ bytesPerSecond: 5n, endpointId: 7 }))).toEqual({
      bytesPerSecond: 5n,
      endpointId: 7,
    })
    expect(namedStructs()).toContain(s)
    expect(snakeCase('revNatIndex')).toBe('rev_nat_index')
  })

  it('errors are CodecErrors with a stable code naming the struct member', () => {
    const s = struct('mb_test_err', { port: be16, proto: u8 })
    const err = (() => {
      try {
        s.encode({ port: 70000, proto: 6 })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(CodecError)
    expect(err).toMatchObject({
      code: 'INVALID_VALUE',
      message: 'mb_test_err.port: expected an integer in [0, 65535], got 70000',
    })
    expect(() => s.decode(new Uint8Array(2))).toThrow(
      expect.objectContaining({ code: CodecErrorCode.SHORT_BUFFER }),
    )
  })

  it('decodes plain Uint8Arrays (no Buffer needed) and mac text', () => {
    expect(mac.decode(Uint8Array.from([0xaa, 0xbb, 0xcc, 0, 1, 0xff]))).toBe('aa:bb:cc:00:01:ff')
    expect(() => mac.encode('aa:bb')).toThrow(/mac: expected a MAC address/)
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (a) => {
        expect(new Uint8Array(mac.encode(mac.decode(a)))).toEqual(a)
      }),
    )
  })
})
