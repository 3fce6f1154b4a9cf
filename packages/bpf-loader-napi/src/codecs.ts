import { formatIpv4Bytes, formatIpv6Bytes, ipFamily, writeIp } from '@membrane/types'
import { invalid } from './errors'

/**
 * A fixed-size binary codec: `encode` yields exactly `size` bytes, `decode` reads them back.
 * Codecs follow the C layout of BPF maps: little-endian integers (x86/arm64 BPF is LE),
 * network-order addresses and ports where the kernel keeps them that way.
 */
export interface Codec<T> {
  readonly size: number
  /** Natural alignment in a C struct. */
  readonly align: number
  encode(value: T): Buffer
  /** Writes into `buf` at `offset` (no allocation). */
  write(value: T, buf: Buffer, offset: number): void
  decode(buf: Buffer, offset?: number): T
}

function make<T>(
  size: number,
  align: number,
  write: (v: T, b: Buffer, o: number) => void,
  read: (b: Buffer, o: number) => T,
): Codec<T> {
  return {
    size,
    align,
    write,
    encode(value: T) {
      const b = Buffer.alloc(size)
      write(value, b, 0)
      return b
    },
    decode(buf: Buffer, offset = 0) {
      if (buf.length - offset < size)
        throw invalid('decode', `at least ${size} bytes at offset ${offset}`, buf)
      return read(buf, offset)
    },
  }
}

function intCheck(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max)
    throw invalid(name, `an integer in [${min}, ${max}]`, v)
}

function int(
  name: string,
  size: number,
  min: number,
  max: number,
  write: (b: Buffer, v: number, o: number) => void,
  read: (b: Buffer, o: number) => number,
): Codec<number> {
  return make(
    size,
    size,
    (v, b, o) => {
      intCheck(name, v, min, max)
      write(b, v, o)
    },
    read,
  )
}

/** Signed 8-bit. */
export const i8: Codec<number> = int(
  'i8',
  1,
  -0x80,
  0x7f,
  (b, v, o) => b.writeInt8(v, o),
  (b, o) => b.readInt8(o),
)
/** Signed 16-bit little-endian. */
export const i16: Codec<number> = int(
  'i16',
  2,
  -0x8000,
  0x7fff,
  (b, v, o) => b.writeInt16LE(v, o),
  (b, o) => b.readInt16LE(o),
)
/** Unsigned 8-bit. */
export const u8: Codec<number> = int(
  'u8',
  1,
  0,
  0xff,
  (b, v, o) => b.writeUInt8(v, o),
  (b, o) => b.readUInt8(o),
)
/** Unsigned 16-bit little-endian. */
export const u16: Codec<number> = int(
  'u16',
  2,
  0,
  0xffff,
  (b, v, o) => b.writeUInt16LE(v, o),
  (b, o) => b.readUInt16LE(o),
)
/** Unsigned 16-bit big-endian (network order: ports in `__be16`). */
export const be16: Codec<number> = int(
  'be16',
  2,
  0,
  0xffff,
  (b, v, o) => b.writeUInt16BE(v, o),
  (b, o) => b.readUInt16BE(o),
)
/** Unsigned 32-bit little-endian. */
export const u32: Codec<number> = int(
  'u32',
  4,
  0,
  0xffffffff,
  (b, v, o) => b.writeUInt32LE(v, o),
  (b, o) => b.readUInt32LE(o),
)
/** Unsigned 32-bit big-endian (`__be32`). */
export const be32: Codec<number> = int(
  'be32',
  4,
  0,
  0xffffffff,
  (b, v, o) => b.writeUInt32BE(v, o),
  (b, o) => b.readUInt32BE(o),
)
/** Signed 32-bit little-endian. */
export const i32: Codec<number> = int(
  'i32',
  4,
  -0x80000000,
  0x7fffffff,
  (b, v, o) => b.writeInt32LE(v, o),
  (b, o) => b.readInt32LE(o),
)
/** Unsigned 64-bit little-endian, as bigint. */
export const u64: Codec<bigint> = make(
  8,
  8,
  (v, b, o) => {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn)
      throw invalid('u64', 'a bigint in [0, 2^64)', v)
    b.writeBigUInt64LE(v, o)
  },
  (b, o) => b.readBigUInt64LE(o),
)
/** Signed 64-bit little-endian, as bigint. */
export const i64: Codec<bigint> = make(
  8,
  8,
  (v, b, o) => {
    if (typeof v !== 'bigint' || v < -(1n << 63n) || v >= 1n << 63n)
      throw invalid('i64', 'a bigint in [-2^63, 2^63)', v)
    b.writeBigInt64LE(v, o)
  },
  (b, o) => b.readBigInt64LE(o),
)

/** Raw bytes of a fixed length. */
export function bytes(size: number): Codec<Buffer> {
  return make(
    size,
    1,
    (v, b, o) => {
      if (!Buffer.isBuffer(v) || v.length !== size)
        throw invalid('bytes', `a ${size}-byte Buffer`, v)
      v.copy(b, o)
    },
    (b, o) => Buffer.from(b.subarray(o, o + size)),
  )
}

/** An IPv4 address as dotted quad, stored in network order (4 bytes, like `__be32`). */
export const ipv4: Codec<string> = make(
  4,
  4,
  (v, b, o) => {
    if (ipFamily(v) !== 4) throw invalid('ipv4', 'a dotted-quad IPv4 address', v)
    writeIp(v, b, o)
  },
  (b, o) => formatIpv4Bytes(b, o),
)

/** An IPv6 address (text in, canonical RFC 5952 text out), stored in network order (16 bytes). */
export const ipv6: Codec<string> = make(
  16,
  4,
  (v, b, o) => {
    if (ipFamily(v) !== 6) throw invalid('ipv6', 'an IPv6 address', v)
    writeIp(v, b, o)
  },
  (b, o) => formatIpv6Bytes(b, o),
)

/** A C struct field list: name and codec, in declaration order. */
export type StructFields = ReadonlyArray<readonly [string, Codec<unknown>]>
type StructValue<F extends StructFields> = {
  [E in F[number] as E[0]]: E[1] extends Codec<infer T> ? T : never
}

/**
 * A C struct with natural alignment (each field at a multiple of its alignment, the total
 * padded to the largest), like clang lays out BPF map structs. Padding bytes are zero.
 *
 * @example
 * const counters = struct([['packets', u64], ['bytes', u64]] as const)
 */
export function struct<const F extends StructFields>(fields: F): Codec<StructValue<F>> {
  let offset = 0
  let align = 1
  const layout: Array<{ name: string; codec: Codec<unknown>; offset: number }> = []
  for (const [name, codec] of fields) {
    offset = Math.ceil(offset / codec.align) * codec.align
    layout.push({ name, codec, offset })
    offset += codec.size
    align = Math.max(align, codec.align)
  }
  const size = Math.ceil(offset / align) * align
  return structAt(layout, size, align) as Codec<StructValue<F>>
}

/**
 * A struct codec with explicit field offsets (as BTF gives them) and total size. Bytes not
 * covered by a field are zero on encode.
 */
export function structAt(
  layout: ReadonlyArray<{ name: string; codec: Codec<unknown>; offset: number }>,
  size: number,
  align = 1,
): Codec<Record<string, unknown>> {
  for (const f of layout) {
    if (f.offset < 0 || f.offset + f.codec.size > size)
      throw invalid(`struct field ${f.name}`, `to fit in ${size} bytes`, f.offset)
  }
  return make(
    size,
    align,
    (v, b, o) => {
      if (typeof v !== 'object' || v === null) throw invalid('struct', 'an object', v)
      b.fill(0, o, o + size)
      for (const f of layout) {
        const fv = (v as Record<string, unknown>)[f.name]
        if (fv === undefined) throw invalid(`struct field ${f.name}`, 'a value', fv)
        try {
          f.codec.write(fv, b, o + f.offset)
        } catch (error) {
          throw invalid(
            `struct field ${f.name}`,
            (error as Error).message.replace(/^.*expected /, ''),
            fv,
          )
        }
      }
    },
    (b, o) => {
      const out: Record<string, unknown> = {}
      for (const f of layout) out[f.name] = f.codec.decode(b, o + f.offset)
      return out
    },
  )
}

/** An LPM trie key: `{ prefixLen, addr }` laid out as `struct { __u32 prefixlen; data[] }`. */
export interface LpmKey<T> {
  prefixLen: number
  addr: T
}

/**
 * The key of an lpm_trie map: a host-order u32 prefix length followed by the data (usually an
 * address in network order).
 *
 * @example
 * const key = lpmKey(ipv4) // 8 bytes: prefixlen + IPv4
 * trie.typed(key, u32).update({ prefixLen: 24, addr: '10.0.0.0' }, 7)
 */
export function lpmKey<T>(data: Codec<T>): Codec<LpmKey<T>> {
  return make(
    4 + data.size,
    4,
    (v, b, o) => {
      if (typeof v !== 'object' || v === null) throw invalid('lpm key', '{ prefixLen, addr }', v)
      intCheck('lpm key prefixLen', v.prefixLen, 0, data.size * 8)
      b.writeUInt32LE(v.prefixLen, o)
      data.write(v.addr, b, o + 4)
    },
    (b, o) => ({ prefixLen: b.readUInt32LE(o), addr: data.decode(b, o + 4) }),
  )
}

/** A fixed-length array of one codec. */
export function array<T>(element: Codec<T>, length: number): Codec<T[]> {
  return make(
    element.size * length,
    element.align,
    (v, b, o) => {
      if (!Array.isArray(v) || v.length !== length)
        throw invalid('array', `an array of ${length} elements`, v)
      v.forEach((x, i) => {
        element.write(x, b, o + i * element.size)
      })
    },
    (b, o) => Array.from({ length }, (_, i) => element.decode(b, o + i * element.size)),
  )
}
