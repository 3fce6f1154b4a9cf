import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DatapathError, field, STRUCT_CODECS, struct } from '../src'
import type { FieldSpec } from '../src/codec'

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'))
const mac = fc
  .uint8Array({ minLength: 6, maxLength: 6 })
  .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'))
const ipv6 = fc.ipV6().map((a) => a)

function arbitraryFor(spec: FieldSpec): fc.Arbitrary<unknown> {
  switch (spec.kind) {
    case 'u8':
      return fc.nat(0xff)
    case 'u16':
    case 'be16':
      return fc.nat(0xffff)
    case 'u32':
    case 'be32':
      return fc.nat(0xffffffff)
    case 'u64':
      return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
    case 'ipv4':
      return ipv4
    case 'ipv6':
      return ipv6
    case 'mac':
      return mac
    case 'u32array':
      return fc
        .uint32Array({ minLength: spec.size / 4, maxLength: spec.size / 4 })
        .map((a) => new Uint32Array(a))
    case 'bytes':
      return fc
        .uint8Array({ minLength: spec.size, maxLength: spec.size })
        .map((a) => Buffer.from(a))
  }
}

function canonical(spec: FieldSpec, v: unknown): unknown {
  if (spec.kind !== 'ipv6') return v
  // Compare IPv6 by bytes: the decoder prints the canonical form.
  return v
}

describe('struct codecs', () => {
  for (const codec of STRUCT_CODECS) {
    it(`${codec.cName}: decode(encode(v)) equals v, and encode(decode(b)) equals b for covered bytes`, () => {
      const record = fc.record(
        Object.fromEntries(
          Object.entries(codec.fields).map(([k, s]) => [k, arbitraryFor(s)]),
        ) as Record<string, fc.Arbitrary<unknown>>,
      )
      fc.assert(
        fc.property(record, (value) => {
          const buf = codec.encode(value as never)
          expect(buf.length).toBe(codec.size)
          const back = codec.decode(buf) as Record<string, unknown>
          for (const [k, spec] of Object.entries(codec.fields)) {
            if (spec.kind === 'ipv6') {
              // Re-encoding the canonical text gives the same bytes.
              expect(codec.encode({ ...(value as object), [k]: back[k] } as never)).toEqual(buf)
            } else expect(back[k]).toEqual(canonical(spec, (value as Record<string, unknown>)[k]))
          }
          expect(codec.encode(back as never)).toEqual(buf)
        }),
        { numRuns: codec.size > 1000 ? 10 : 100 },
      )
    })
  }

  it('writes integers in the byte order of the C type', () => {
    const c = struct('t', 8, { a: field.u16(0), b: field.be16(2), c: field.u32(4) })
    expect(c.encode({ a: 0x1234, b: 0x1234, c: 1 }).toString('hex')).toBe('3412123401000000')
  })

  it('rejects values that do not fit, naming struct and field', () => {
    const c = struct('mb_x', 4, { port: field.be16(0), proto: field.u8(2) })
    expect(() => c.encode({ port: 70000, proto: 6 })).toThrowError(DatapathError)
    expect(() => c.encode({ port: 70000, proto: 6 })).toThrowError(
      /mb_x\.port: expected an integer 0\.\.65535, got 70000/,
    )
    expect(() => c.encode({ port: 1, proto: -1 })).toThrowError(/mb_x\.proto/)
    const ip = struct('mb_y', 4, { addr: field.ipv4(0) })
    expect(() => ip.encode({ addr: '10.0.0.256' })).toThrowError(
      /mb_y\.addr: expected an IPv4 address/,
    )
  })

  it('rejects short buffers on decode', () => {
    const c = struct('mb_z', 8, { a: field.u64(0) })
    expect(() => c.decode(Buffer.alloc(4))).toThrowError(/mb_z: expected 8 bytes, got 4/)
  })

  it('zero-fills padding', () => {
    const c = struct('p', 8, { a: field.u8(0), b: field.u32(4) })
    const target = Buffer.alloc(8, 0xff)
    c.encode({ a: 1, b: 2 }, target)
    expect(target.toString('hex')).toBe('0100000002000000')
  })
})
