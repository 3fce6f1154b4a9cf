import { formatIpv4Bytes, formatIpv6Bytes, ipFamily, writeIp } from '@membrane/types'
import { DatapathError, DatapathErrorCode, describeValue } from './errors'
import { readMac, writeMac } from './internal/mac'

/** Encodes values of `T` to the bytes of a C struct and back. */
export interface Codec<T> {
  /** sizeof the C struct. */
  readonly size: number
  /** Encode into a new Buffer (or into `target` at `offset`). */
  encode(value: T, target?: Buffer, offset?: number): Buffer
  /** Decode from `buf` at `offset`. */
  decode(buf: Buffer, offset?: number): T
}

/** The kinds of C fields the datapath's structs use. */
export type FieldKind =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 'be16'
  | 'be32'
  | 'ipv4'
  | 'ipv6'
  | 'mac'
  | 'u32array'
  | 'bytes'

/** One field: where it lives in the C struct and how it is represented in TS. */
export interface FieldSpec<K extends FieldKind = FieldKind> {
  readonly kind: K
  readonly offset: number
  readonly size: number
  /** Name of the C member; default: the TS name in snake_case. */
  readonly cName?: string
}

type ValueOf<K extends FieldKind> = K extends 'u64'
  ? bigint
  : K extends 'ipv4' | 'ipv6' | 'mac'
    ? string
    : K extends 'u32array'
      ? Uint32Array
      : K extends 'bytes'
        ? Buffer
        : number

/** The TS value a struct's field specs describe. */
export type StructValue<F extends Record<string, FieldSpec>> = {
  [P in keyof F]: F[P] extends FieldSpec<infer K> ? ValueOf<K> : never
}

/** A codec for one C struct, with the layout kept for checks against the compiled BTF. */
export interface StructCodec<F extends Record<string, FieldSpec>> extends Codec<StructValue<F>> {
  /** The C struct name (`struct mb_ct_tuple4`). */
  readonly cName: string
  readonly fields: F
  /** A value with every field zero/empty, to spread defaults from. */
  zero(): StructValue<F>
}

/** Field constructors: the offset is the C offsetof. */
export const field = {
  u8: (offset: number, cName?: string): FieldSpec<'u8'> => ({ kind: 'u8', offset, size: 1, cName }),
  u16: (offset: number, cName?: string): FieldSpec<'u16'> => ({
    kind: 'u16',
    offset,
    size: 2,
    cName,
  }),
  u32: (offset: number, cName?: string): FieldSpec<'u32'> => ({
    kind: 'u32',
    offset,
    size: 4,
    cName,
  }),
  u64: (offset: number, cName?: string): FieldSpec<'u64'> => ({
    kind: 'u64',
    offset,
    size: 8,
    cName,
  }),
  /** A `__be16` (ports): a host number in TS, network order in C. */
  be16: (offset: number, cName?: string): FieldSpec<'be16'> => ({
    kind: 'be16',
    offset,
    size: 2,
    cName,
  }),
  /** A `__be32` number in network order. */
  be32: (offset: number, cName?: string): FieldSpec<'be32'> => ({
    kind: 'be32',
    offset,
    size: 4,
    cName,
  }),
  /** A `__be32` IPv4 address: dotted quad in TS. */
  ipv4: (offset: number, cName?: string): FieldSpec<'ipv4'> => ({
    kind: 'ipv4',
    offset,
    size: 4,
    cName,
  }),
  /** `__u8[16]` IPv6 address. */
  ipv6: (offset: number, cName?: string): FieldSpec<'ipv6'> => ({
    kind: 'ipv6',
    offset,
    size: 16,
    cName,
  }),
  /** `__u8[6]` MAC address. */
  mac: (offset: number, cName?: string): FieldSpec<'mac'> => ({
    kind: 'mac',
    offset,
    size: 6,
    cName,
  }),
  /** `__u32[n]`. */
  u32array: (offset: number, length: number, cName?: string): FieldSpec<'u32array'> => ({
    kind: 'u32array',
    offset,
    size: length * 4,
    cName,
  }),
  /** Raw bytes (`__u8[n]`), a Buffer in TS. */
  bytes: (offset: number, size: number, cName?: string): FieldSpec<'bytes'> => ({
    kind: 'bytes',
    offset,
    size,
    cName,
  }),
}

/** snake_case of a camelCase TS field name (the default C member name). */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
}

/** The C member name of a field. */
export function cNameOf(name: string, spec: FieldSpec): string {
  return spec.cName ?? snakeCase(name)
}

const MAX: Record<string, number> = {
  u8: 0xff,
  u16: 0xffff,
  be16: 0xffff,
  u32: 0xffffffff,
  be32: 0xffffffff,
}

function invalid(path: string, expected: string, value: unknown): DatapathError {
  return new DatapathError(
    DatapathErrorCode.INVALID_VALUE,
    `expected ${expected}, got ${describeValue(value)}`,
    { path },
  )
}

function zeroOf(kind: FieldKind, size: number): unknown {
  switch (kind) {
    case 'u64':
      return 0n
    case 'ipv4':
      return '0.0.0.0'
    case 'ipv6':
      return '::'
    case 'mac':
      return '00:00:00:00:00:00'
    case 'u32array':
      return new Uint32Array(size / 4)
    case 'bytes':
      return Buffer.alloc(size)
    default:
      return 0
  }
}

/**
 * Define the codec of a C struct. Bytes not covered by a field (padding) are written as zero.
 *
 * @example
 * const tuple = struct('mb_ct_tuple4', 16, { daddr: field.ipv4(0), dport: field.be16(8) })
 * tuple.encode({ daddr: '10.0.0.1', dport: 80 })
 */
export function struct<F extends Record<string, FieldSpec>>(
  cName: string,
  size: number,
  fields: F,
): StructCodec<F> {
  const entries = Object.entries(fields) as [string, FieldSpec][]
  for (const [name, spec] of entries) {
    if (spec.offset + spec.size > size)
      throw new Error(`struct ${cName}: field ${name} ends past sizeof ${size}`)
  }
  const encodeField = (buf: Buffer, base: number, name: string, spec: FieldSpec, v: unknown) => {
    const path = `${cName}.${name}`
    const at = base + spec.offset
    switch (spec.kind) {
      case 'u8':
      case 'u16':
      case 'u32':
      case 'be16':
      case 'be32': {
        const max = MAX[spec.kind] as number
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
          throw invalid(path, `an integer 0..${max}`, v)
        if (spec.kind === 'u8') buf.writeUInt8(v, at)
        else if (spec.kind === 'u16') buf.writeUInt16LE(v, at)
        else if (spec.kind === 'u32') buf.writeUInt32LE(v, at)
        else if (spec.kind === 'be16') buf.writeUInt16BE(v, at)
        else buf.writeUInt32BE(v, at)
        return
      }
      case 'u64': {
        const big = typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : v
        if (typeof big !== 'bigint' || big < 0n || big > 0xffffffffffffffffn)
          throw invalid(path, 'an unsigned 64-bit bigint', v)
        buf.writeBigUInt64LE(big, at)
        return
      }
      case 'ipv4':
        if (ipFamily(v as string) !== 4) throw invalid(path, 'an IPv4 address (a.b.c.d)', v)
        writeIp(v as string, buf, at)
        return
      case 'ipv6':
        if (ipFamily(v as string) !== 6) throw invalid(path, 'an IPv6 address', v)
        writeIp(v as string, buf, at)
        return
      case 'mac':
        writeMac(buf, at, v, path)
        return
      case 'u32array': {
        const n = spec.size / 4
        if (!(v instanceof Uint32Array) && !Array.isArray(v)) throw invalid(path, `${n} uint32`, v)
        const arr = v as ArrayLike<number>
        if (arr.length !== n) throw invalid(path, `exactly ${n} uint32 values`, v)
        for (let i = 0; i < n; i++) buf.writeUInt32LE((arr[i] as number) >>> 0, at + i * 4)
        return
      }
      case 'bytes': {
        if (!Buffer.isBuffer(v) || v.length !== spec.size)
          throw invalid(path, `a Buffer of ${spec.size} bytes`, v)
        v.copy(buf, at)
        return
      }
    }
  }
  const decodeField = (buf: Buffer, base: number, spec: FieldSpec): unknown => {
    const at = base + spec.offset
    switch (spec.kind) {
      case 'u8':
        return buf.readUInt8(at)
      case 'u16':
        return buf.readUInt16LE(at)
      case 'u32':
        return buf.readUInt32LE(at)
      case 'be16':
        return buf.readUInt16BE(at)
      case 'be32':
        return buf.readUInt32BE(at)
      case 'u64':
        return buf.readBigUInt64LE(at)
      case 'ipv4':
        return formatIpv4Bytes(buf, at)
      case 'ipv6':
        return formatIpv6Bytes(buf, at)
      case 'mac':
        return readMac(buf, at)
      case 'u32array': {
        const out = new Uint32Array(spec.size / 4)
        for (let i = 0; i < out.length; i++) out[i] = buf.readUInt32LE(at + i * 4)
        return out
      }
      case 'bytes':
        return Buffer.from(buf.subarray(at, at + spec.size))
    }
  }
  return {
    cName,
    size,
    fields,
    zero() {
      const out: Record<string, unknown> = {}
      for (const [name, spec] of entries) out[name] = zeroOf(spec.kind, spec.size)
      return out as StructValue<F>
    },
    encode(value, target, offset = 0) {
      if (typeof value !== 'object' || value === null)
        throw invalid(cName, `a ${cName} object`, value)
      const buf = target ?? Buffer.alloc(size)
      if (target) buf.fill(0, offset, offset + size)
      const rec = value as Record<string, unknown>
      for (const [name, spec] of entries) {
        const v = rec[name]
        encodeField(buf, offset, name, spec, v === undefined ? zeroOf(spec.kind, spec.size) : v)
      }
      return buf
    },
    decode(buf, offset = 0) {
      if (!Buffer.isBuffer(buf) || buf.length - offset < size)
        throw new DatapathError(
          DatapathErrorCode.INVALID_BUFFER,
          `expected ${size} bytes, got ${Buffer.isBuffer(buf) ? buf.length - offset : describeValue(buf)}`,
          { path: cName },
        )
      const out: Record<string, unknown> = {}
      for (const [name, spec] of entries) out[name] = decodeField(buf, offset, spec)
      return out as StructValue<F>
    },
  }
}

/** A codec for a plain `__u32` key or value (little-endian). */
export const u32Codec: Codec<number> = {
  size: 4,
  encode(value, target, offset = 0) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff)
      throw invalid('u32', 'an integer 0..4294967295', value)
    const buf = target ?? Buffer.alloc(4)
    buf.writeUInt32LE(value, offset)
    return buf
  },
  decode(buf, offset = 0) {
    return buf.readUInt32LE(offset)
  },
}

/** A codec for a `__be32` IPv4 address key (mb_lxc4). */
export const ipv4Codec: Codec<string> = {
  size: 4,
  encode(value, target, offset = 0) {
    const buf = target ?? Buffer.alloc(4)
    if (ipFamily(value) !== 4) throw invalid('ipv4', 'an IPv4 address (a.b.c.d)', value)
    writeIp(value, buf, offset)
    return buf
  },
  decode(buf, offset = 0) {
    return formatIpv4Bytes(buf, offset)
  },
}
