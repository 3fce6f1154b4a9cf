/**
 * Fixed-size binary codecs that mirror C structs: the one way Membrane reads and writes the
 * bytes of BPF map keys, values and ring-buffer records.
 *
 * Runtime: `decode` and `write` work on any `Uint8Array` with plain byte arithmetic, so this
 * module imports nothing from Node and decoding works in a browser. `encode` allocates its
 * result with the global `Buffer` (every caller of it — the loader's maps, datapath, bandwidth —
 * runs in Node, and the loader's map calls take Buffers); where there is no `Buffer` it returns a
 * plain `Uint8Array`.
 */

import { formatIpv4Bytes, formatIpv6Bytes, ipFamily, writeIp } from './ip'

/**
 * A fixed-size binary codec: `encode` yields exactly `size` bytes, `decode` reads them back.
 * Integers are little-endian (BPF on x86-64 and arm64), addresses and `be*` integers are in
 * network order, as the kernel keeps them.
 */
export interface Codec<T> {
  /** sizeof the C type. */
  readonly size: number
  /** Natural alignment in a C struct. */
  readonly align: number
  /** A new buffer of `size` bytes holding `value`. */
  encode(value: T): Buffer
  /** Writes into `buf` at `offset` (no allocation: the hot path of the loader's maps). */
  write(value: T, buf: Uint8Array, offset: number): void
  /** Reads a value from `buf` at `offset` (default 0). */
  decode(buf: Uint8Array, offset?: number): T
}

/** Codes of {@link CodecError}. */
export const CodecErrorCode = {
  /** A value does not fit its codec (out of range, wrong type, bad address text). */
  INVALID_VALUE: 'INVALID_VALUE',
  /** A buffer is shorter than the codec's size at the given offset. */
  SHORT_BUFFER: 'SHORT_BUFFER',
  /** A struct declaration is impossible (a field past the declared size). */
  BAD_LAYOUT: 'BAD_LAYOUT',
} as const

/** One of {@link CodecErrorCode}. */
export type CodecErrorCodeName = keyof typeof CodecErrorCode

/**
 * Thrown by codecs. The message names the field and what was expected, e.g.
 * `mb_ct_tuple4.dport: expected an integer in [0, 65535], got 70000`.
 */
export class CodecError extends Error {
  /** Stable code, one of {@link CodecErrorCode}. */
  readonly code: CodecErrorCodeName
  constructor(message: string, code: CodecErrorCodeName, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CodecError'
    this.code = code
  }
}

const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer

function describe(v: unknown): string {
  if (v instanceof Uint8Array)
    return `a ${v.length}-byte ${NodeBuffer?.isBuffer(v) ? 'Buffer' : 'Uint8Array'}`
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v)
  if (typeof v === 'bigint') return `${v}n`
  if (v === null) return 'null'
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object'
  return String(v)
}

function invalid(what: string, expected: string, got: unknown): CodecError {
  return new CodecError(`${what}: expected ${expected}, got ${describe(got)}`, 'INVALID_VALUE')
}

function alloc(size: number): Buffer {
  return (NodeBuffer ? NodeBuffer.alloc(size) : new Uint8Array(size)) as Buffer
}

function make<T>(
  size: number,
  align: number,
  write: (v: T, b: Uint8Array, o: number) => void,
  read: (b: Uint8Array, o: number) => T,
): Codec<T> {
  return {
    size,
    align,
    write,
    encode(value: T) {
      const b = alloc(size)
      write(value, b, 0)
      return b
    },
    decode(buf: Uint8Array, offset = 0) {
      if (!(buf instanceof Uint8Array) || buf.length - offset < size || offset < 0)
        throw new CodecError(
          `decode: expected at least ${size} bytes at offset ${offset}, got ${describe(buf)}`,
          'SHORT_BUFFER',
        )
      return read(buf, offset)
    },
  }
}

function intCheck(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max)
    throw invalid(name, `an integer in [${min}, ${max}]`, v)
}

// Byte-level accessors (what Buffer#readUInt32LE and friends do, without needing Buffer).
const rd16le = (b: Uint8Array, o: number) => (b[o] as number) | ((b[o + 1] as number) << 8)
const rd16be = (b: Uint8Array, o: number) => ((b[o] as number) << 8) | (b[o + 1] as number)
const rd32le = (b: Uint8Array, o: number) =>
  ((b[o] as number) |
    ((b[o + 1] as number) << 8) |
    ((b[o + 2] as number) << 16) |
    ((b[o + 3] as number) << 24)) >>>
  0
const rd32be = (b: Uint8Array, o: number) =>
  (((b[o] as number) << 24) |
    ((b[o + 1] as number) << 16) |
    ((b[o + 2] as number) << 8) |
    (b[o + 3] as number)) >>>
  0
function wr16le(b: Uint8Array, v: number, o: number): void {
  b[o] = v
  b[o + 1] = v >>> 8
}
function wr16be(b: Uint8Array, v: number, o: number): void {
  b[o] = v >>> 8
  b[o + 1] = v
}
function wr32le(b: Uint8Array, v: number, o: number): void {
  b[o] = v
  b[o + 1] = v >>> 8
  b[o + 2] = v >>> 16
  b[o + 3] = v >>> 24
}
function wr32be(b: Uint8Array, v: number, o: number): void {
  b[o] = v >>> 24
  b[o + 1] = v >>> 16
  b[o + 2] = v >>> 8
  b[o + 3] = v
}

function int(
  name: string,
  size: number,
  min: number,
  max: number,
  write: (b: Uint8Array, v: number, o: number) => void,
  read: (b: Uint8Array, o: number) => number,
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

/** Signed 8-bit (`__s8`). */
export const i8: Codec<number> = int(
  'i8',
  1,
  -0x80,
  0x7f,
  (b, v, o) => {
    b[o] = v
  },
  (b, o) => ((b[o] as number) << 24) >> 24,
)
/** Signed 16-bit little-endian (`__s16`). */
export const i16: Codec<number> = int('i16', 2, -0x8000, 0x7fff, wr16le, (b, o) => {
  return (rd16le(b, o) << 16) >> 16
})
/** Unsigned 8-bit (`__u8`). */
export const u8: Codec<number> = int(
  'u8',
  1,
  0,
  0xff,
  (b, v, o) => {
    b[o] = v
  },
  (b, o) => b[o] as number,
)
/** Unsigned 16-bit little-endian (`__u16`). */
export const u16: Codec<number> = int('u16', 2, 0, 0xffff, wr16le, rd16le)
/** Unsigned 16-bit big-endian (network order: ports in `__be16`). */
export const be16: Codec<number> = int('be16', 2, 0, 0xffff, wr16be, rd16be)
/** Unsigned 32-bit little-endian (`__u32`). */
export const u32: Codec<number> = int('u32', 4, 0, 0xffffffff, wr32le, rd32le)
/** Unsigned 32-bit big-endian (`__be32`). */
export const be32: Codec<number> = int('be32', 4, 0, 0xffffffff, wr32be, rd32be)
/** Signed 32-bit little-endian (`__s32`). */
export const i32: Codec<number> = int('i32', 4, -0x80000000, 0x7fffffff, wr32le, (b, o) => {
  return rd32le(b, o) | 0
})

const U64_MAX = 0xffffffffffffffffn
function wr64(b: Uint8Array, v: bigint, o: number): void {
  wr32le(b, Number(v & 0xffffffffn), o)
  wr32le(b, Number((v >> 32n) & 0xffffffffn), o + 4)
}
const rd64 = (b: Uint8Array, o: number) => {
  const hi = rd32le(b, o + 4)
  const lo = rd32le(b, o)
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo)
}

/** Unsigned 64-bit little-endian (`__u64`), as bigint. */
export const u64: Codec<bigint> = make(
  8,
  8,
  (v, b, o) => {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX)
      throw invalid('u64', 'a bigint in [0, 2^64)', v)
    wr64(b, v, o)
  },
  rd64,
)
/** Signed 64-bit little-endian (`__s64`), as bigint. */
export const i64: Codec<bigint> = make(
  8,
  8,
  (v, b, o) => {
    if (typeof v !== 'bigint' || v < -(1n << 63n) || v >= 1n << 63n)
      throw invalid('i64', 'a bigint in [-2^63, 2^63)', v)
    wr64(b, BigInt.asUintN(64, v), o)
  },
  (b, o) => BigInt.asIntN(64, rd64(b, o)),
)

/** Raw bytes of a fixed length (`__u8[size]`); decodes to a copy. */
export function bytes(size: number): Codec<Buffer> {
  return make(
    size,
    1,
    (v, b, o) => {
      if (!(v instanceof Uint8Array) || v.length !== size)
        throw invalid('bytes', `a ${size}-byte Buffer`, v)
      b.set(v, o)
    },
    (b, o) => {
      const out = alloc(size)
      out.set(b.subarray(o, o + size))
      return out
    },
  )
}

/**
 * Explicit C padding (`__u8 pad[3]`, `__u32 pad`, a `struct bpf_spin_lock`): written as zero,
 * never part of a struct's TS value. `align` is the C member type's alignment.
 */
export interface PadCodec extends Codec<undefined> {
  readonly padding: true
}

/** A padding member of `size` bytes whose C type aligns to `align` (default 1). */
export function pad(size: number, align = 1): PadCodec {
  return {
    ...make<undefined>(
      size,
      align,
      (_v, b, o) => {
        b.fill(0, o, o + size)
      },
      () => undefined,
    ),
    padding: true,
  }
}

/** The same codec with another C alignment (e.g. a union with a `__u64` member: 8). */
export function aligned<T>(codec: Codec<T>, align: number): Codec<T> {
  return { ...codec, align }
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

/**
 * An IPv6 address (text in, canonical text out as ./ip prints it), stored in network order (16
 * bytes, aligned like `struct in6_addr`). For `union mb_v6addr` use `aligned(ipv6, 8)`.
 */
export const ipv6: Codec<string> = make(
  16,
  4,
  (v, b, o) => {
    if (ipFamily(v) !== 6) throw invalid('ipv6', 'an IPv6 address', v)
    writeIp(v, b, o)
  },
  (b, o) => formatIpv6Bytes(b, o),
)

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** A MAC address (`__u8[6]`) as lowercase `aa:bb:cc:dd:ee:ff`. */
export const mac: Codec<string> = make(
  6,
  1,
  (v, b, o) => {
    const parts = typeof v === 'string' ? v.split(':') : []
    if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p)))
      throw invalid('mac', 'a MAC address aa:bb:cc:dd:ee:ff', v)
    for (let i = 0; i < 6; i++) b[o + i] = Number.parseInt(parts[i] as string, 16)
  },
  (b, o) => {
    let s = HEX[b[o] as number] as string
    for (let i = 1; i < 6; i++) s += `:${HEX[b[o + i] as number]}`
    return s
  },
)

/** A fixed-length array of one codec (`T c[length]`). */
export function array<T>(element: Codec<T>, length: number): Codec<T[]> {
  return make(
    element.size * length,
    element.align,
    (v, b, o) => {
      if (!Array.isArray(v) || v.length !== length)
        throw invalid('array', `an array of ${length} elements`, v)
      for (let i = 0; i < length; i++) element.write(v[i] as T, b, o + i * element.size)
    },
    (b, o) => Array.from({ length }, (_, i) => element.decode(b, o + i * element.size)),
  )
}

/** `__u32[length]` as a Uint32Array (large tables such as a Maglev lookup table). */
export function u32array(length: number): Codec<Uint32Array> {
  return make(
    4 * length,
    4,
    (v, b, o) => {
      if (!(v instanceof Uint32Array || Array.isArray(v)) || v.length !== length)
        throw invalid('u32array', `exactly ${length} uint32 values`, v)
      for (let i = 0; i < length; i++) wr32le(b, (v[i] as number) >>> 0, o + 4 * i)
    },
    (b, o) => {
      const out = new Uint32Array(length)
      for (let i = 0; i < length; i++) out[i] = rd32le(b, o + 4 * i)
      return out
    },
  )
}

/** An LPM trie key: `{ prefixLen, addr }` laid out as `struct { __u32 prefixlen; data }`. */
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
 */
export function lpmKey<T>(data: Codec<T>): Codec<LpmKey<T>> {
  return make(
    4 + data.size,
    4,
    (v, b, o) => {
      if (typeof v !== 'object' || v === null) throw invalid('lpm key', '{ prefixLen, addr }', v)
      intCheck('lpm key prefixLen', v.prefixLen, 0, data.size * 8)
      wr32le(b, v.prefixLen, o)
      data.write(v.addr, b, o + 4)
    },
    (b, o) => ({ prefixLen: rd32le(b, o), addr: data.decode(b, o + 4) }),
  )
}

// ---------------------------------------------------------------------------------------------
// Structs

/** A struct member whose C name differs from the TS name's snake_case (see {@link named}). */
export interface NamedField<T> {
  readonly cName: string
  readonly codec: Codec<T>
}

/** Give a field a C member name other than its TS name in snake_case. */
export function named<T>(cName: string, codec: Codec<T>): NamedField<T> {
  return { cName, codec }
}

/** One member of a struct codec, with everything the BTF check compares. */
export interface StructField {
  /** The property name in the TS value. */
  readonly name: string
  /** The C member name. */
  readonly cName: string
  /** offsetof in the C struct. */
  readonly offset: number
  readonly codec: Codec<unknown>
  /** Explicit padding: zero on write, absent from the TS value. */
  readonly padding: boolean
}

/** A struct codec that knows its C name and its members (the BTF check walks these). */
export interface StructCodec<V> extends Codec<V> {
  /** The C struct tag (`mb_ct_tuple4` for `struct mb_ct_tuple4`); '' for an anonymous struct. */
  readonly cName: string
  /** Members in declaration order. */
  readonly fields: readonly StructField[]
  /** offsetof a member by its TS name. */
  offsetOf(name: keyof V & string): number
}

/** A C struct field list for {@link struct}'s tuple form: name and codec, in order. */
export type StructFields = ReadonlyArray<readonly [string, Codec<unknown>]>
type TupleValue<F extends StructFields> = {
  [E in F[number] as E[0]]: E[1] extends Codec<infer T> ? T : never
}

/** Members of a named struct: a codec, a {@link named} codec or a {@link pad}. */
export type StructMembers = Record<string, Codec<unknown> | NamedField<unknown>>
/** The TS value of a named struct's members (padding left out). */
export type StructValue<M extends StructMembers> = {
  -readonly [K in keyof M as M[K] extends PadCodec ? never : K]: M[K] extends NamedField<infer T>
    ? T
    : M[K] extends Codec<infer T>
      ? T
      : never
}

/** snake_case of a camelCase TS name (the default C member name). */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
}

const registry: StructCodec<unknown>[] = []

/**
 * Every named struct codec created so far, in creation order. The BTF check of the repository
 * iterates this list, so a struct declared anywhere is checked against the compiled objects.
 */
export function namedStructs(): readonly StructCodec<unknown>[] {
  return registry
}

interface Placed {
  name: string
  cName: string
  codec: Codec<unknown>
  padding: boolean
}

function layout(members: Placed[]): { fields: StructField[]; size: number; align: number } {
  let offset = 0
  let align = 1
  const fields: StructField[] = []
  for (const m of members) {
    offset = Math.ceil(offset / m.codec.align) * m.codec.align
    fields.push({ ...m, offset })
    offset += m.codec.size
    align = Math.max(align, m.codec.align)
  }
  return { fields, size: Math.ceil(offset / align) * align, align }
}

/**
 * A C struct laid out as clang lays out BPF structs: each member at the next multiple of its
 * alignment, the size padded to the largest alignment. Padding bytes are written as zero.
 *
 * Two forms:
 * - `struct('mb_ct_tuple4', { daddr: ipv4, ..., pad: pad(2) })`: a named struct, its TS names
 *   in camelCase and C names their snake_case (or {@link named}); explicit C padding members are
 *   {@link pad}s. Named structs register for the BTF check ({@link namedStructs}).
 * - `struct([['packets', u64], ['bytes', u64]] as const)`: anonymous, C names = TS names.
 *
 * @example
 * const tuple = struct('mb_ct_tuple4', {
 *   daddr: ipv4, saddr: ipv4, dport: be16, sport: be16, nexthdr: u8, flags: u8, pad: pad(2),
 * })
 * tuple.offsetOf('dport') // 8
 */
export function struct<const M extends StructMembers>(
  cName: string,
  members: M,
): StructCodec<StructValue<M>>
export function struct<const F extends StructFields>(fields: F): StructCodec<TupleValue<F>>
export function struct(
  a: string | StructFields,
  b?: StructMembers,
): StructCodec<Record<string, unknown>> {
  if (typeof a !== 'string') {
    const l = layout(a.map(([name, codec]) => ({ name, cName: name, codec, padding: false })))
    return structOf('', l.fields, l.size, l.align)
  }
  const placed: Placed[] = Object.entries(b ?? {}).map(([name, m]) => {
    const codec = 'codec' in m ? m.codec : m
    return {
      name,
      cName: 'codec' in m ? m.cName : snakeCase(name),
      codec,
      padding: (codec as Partial<PadCodec>).padding === true,
    }
  })
  const l = layout(placed)
  const codec = structOf(a, l.fields, l.size, l.align)
  registry.push(codec)
  return codec
}

/**
 * A struct codec with explicit field offsets (as BTF gives them) and total size. Bytes not
 * covered by a field are zero on encode.
 */
export function structAt(
  fields: ReadonlyArray<{ name: string; codec: Codec<unknown>; offset: number }>,
  size: number,
  align = 1,
): StructCodec<Record<string, unknown>> {
  return structOf(
    '',
    fields.map((f) => ({ ...f, cName: f.name, padding: false })),
    size,
    align,
  )
}

function structOf(
  cName: string,
  fields: StructField[],
  size: number,
  align: number,
): StructCodec<Record<string, unknown>> {
  const where = (name: string) => (cName ? `${cName}.${name}` : `struct field ${name}`)
  for (const f of fields) {
    if (f.offset < 0 || f.offset + f.codec.size > size)
      throw new CodecError(
        `${where(f.name)}: expected to fit in ${size} bytes, got offset ${f.offset}`,
        'BAD_LAYOUT',
      )
  }
  const values = fields.filter((f) => !f.padding)
  const offsets = new Map(fields.map((f) => [f.name, f.offset]))
  const codec = make<Record<string, unknown>>(
    size,
    align,
    (v, b, o) => {
      if (typeof v !== 'object' || v === null) throw invalid(cName || 'struct', 'an object', v)
      b.fill(0, o, o + size)
      for (const f of values) {
        const fv = v[f.name]
        if (fv === undefined) throw invalid(where(f.name), 'a value', fv)
        try {
          f.codec.write(fv, b, o + f.offset)
        } catch (error) {
          if (!(error instanceof CodecError)) throw error
          throw new CodecError(
            `${where(f.name)}: ${error.message.replace(/^[^:]*: /, '')}`,
            error.code,
            { cause: error },
          )
        }
      }
    },
    (b, o) => {
      const out: Record<string, unknown> = {}
      for (const f of values) out[f.name] = f.codec.decode(b, o + f.offset)
      return out
    },
  )
  return {
    ...codec,
    cName,
    fields,
    offsetOf(name: string) {
      const at = offsets.get(name)
      if (at === undefined) throw invalid(`${cName || 'struct'} offsetOf`, 'a member name', name)
      return at
    },
  }
}
