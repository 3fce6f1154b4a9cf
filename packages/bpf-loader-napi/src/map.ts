import { Buffer } from 'node:buffer'
import { unlinkSync } from 'node:fs'
import type { Codec } from '@membrane/types'
import { loadAddon, type NativeAddon } from './_addon'
import { checkPinPath } from './_paths'
import { codecFromLayout, type TypeLayout } from './btf'
import {
  MAP_TYPES,
  type MapType,
  mapTypeName,
  PERCPU_MAP_TYPES,
  UPDATE_FLAGS,
  type UpdateFlag,
} from './constants'
import { BpfError, BpfErrorCode, closed, fromNative, invalid, native, nativeAsync } from './errors'

/** What the kernel says about a map. */
export interface MapInfo {
  name: string
  type: MapType
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
  /** Kernel map id (stable across processes while the map lives). */
  id: number
}

/** Packed result of a batch lookup: `count` keys and values laid end to end. */
export interface PackedEntries {
  count: number
  keys: Buffer
  values: Buffer
  /** Bytes per value in `values` (valueSize, or the per-CPU stride times the CPU count). */
  valueStride: number
}

/** @internal how a BpfMap was obtained (who owns the fd). */
export interface MapOrigin {
  fd: number
  /** True when this BpfMap closes the fd; false when a BpfObject owns it. */
  owned: boolean
  name?: string
  pinPath?: string
  /** Keeps the owning object alive (and its fds open) while this map is reachable. */
  owner?: object
}

const MAP_CTOR = Symbol('BpfMap.ctor')
// The element slot's header (maps.cc): [0] command in, outcome out; [1] fd; [2] flags.
const SLOT_HEADER = 16
const CMD_LOOKUP = 1 // BPF_MAP_LOOKUP_ELEM
const CMD_UPDATE = 2 // BPF_MAP_UPDATE_ELEM
const CMD_DELETE = 3 // BPF_MAP_DELETE_ELEM
const CMD_LOOKUP_AND_DELETE = 21 // BPF_MAP_LOOKUP_AND_DELETE_ELEM
// Placeholders until the first element call binds the slot (a closed map writes its fd = -1 here).
const EMPTY_HDR = new Int32Array(4)
const EMPTY_BYTES = new Uint8Array(0)
// Large batch updates: 'auto' splits them over idle CPUs only (see maps.cc).
let batchParallel: 0 | 1 | 2 = 0

/**
 * @internal tests: force the parallel batch-update path on or off regardless of load
 * ('auto' restores the default).
 */
export function setBatchParallel(mode: 'auto' | 'never' | 'always'): void {
  batchParallel = mode === 'never' ? 1 : mode === 'always' ? 2 : 0
}
let ncpus: number | undefined

/** The number of possible CPUs (the per-CPU value count). */
export function possibleCpus(): number {
  ncpus ??= native(() => loadAddon().numPossibleCpus())
  return ncpus
}

/**
 * A BPF map, by file descriptor. Keys and values are Buffers of exactly `keySize` /
 * `valueSize` bytes; {@link BpfMap.typed} puts codecs on top.
 *
 * Maps of a {@link BpfObject} are owned by it (closing the object closes them); maps from
 * {@link createMap} and {@link openPinnedMap} own their descriptor.
 */
export class BpfMap {
  readonly #addon: NativeAddon
  #fd: number
  readonly #owned: boolean
  readonly #info: MapInfo
  #pinPath: string | undefined
  #closed = false
  readonly #keySize: number
  readonly #stride: number
  // Strong reference to the owning BpfObject: without it, dropping the object while keeping
  // one of its maps would let GC close the fd under this handle (and a reused fd number would
  // point at something else).
  readonly #owner: object | undefined
  // The element slot (see #bind): one ArrayBuffer with a header, the key and the value, and the
  // native function bound to it. Created on the first element call.
  #slotOp: (() => undefined) | undefined
  #slotHdr: Int32Array = EMPTY_HDR
  #slotKey: Uint8Array = EMPTY_BYTES
  #slotValue: Uint8Array = EMPTY_BYTES

  /** @internal use createMap, openPinnedMap or BpfObject.map */
  constructor(token: symbol, origin: MapOrigin) {
    if (token !== MAP_CTOR)
      throw new TypeError('BpfMap is created by createMap, openPinnedMap or BpfObject.map')
    this.#addon = loadAddon()
    this.#fd = origin.fd
    this.#owned = origin.owned
    this.#pinPath = origin.pinPath
    this.#owner = origin.owner
    const raw = native(() => this.#addon.mapInfo(origin.fd))
    this.#info = Object.freeze({
      name: origin.name ?? raw.name,
      type: mapTypeName(raw.type),
      keySize: raw.keySize,
      valueSize: raw.valueSize,
      maxEntries: raw.maxEntries,
      flags: raw.flags,
      id: raw.id,
    })
    this.#keySize = raw.keySize
    this.#stride = PERCPU_MAP_TYPES.has(this.#info.type)
      ? align8(raw.valueSize) * possibleCpus()
      : raw.valueSize
  }

  /** @internal */
  static fromFd(origin: MapOrigin): BpfMap {
    return new BpfMap(MAP_CTOR, origin)
  }

  /** Name, type, sizes, flags and kernel id. */
  get info(): MapInfo {
    return this.#info
  }

  /** The map's name (as in the object, or as the kernel keeps it: 15 characters). */
  get name(): string {
    return this.#info.name
  }

  /** The file descriptor (valid until close). */
  get fd(): number {
    this.#check()
    return this.#fd
  }

  /** Where the map is pinned, if this handle pinned it or it was opened from a pin. */
  get pinPath(): string | undefined {
    return this.#pinPath
  }

  /** True after {@link BpfMap.close} (or the owning object's close). */
  get closed(): boolean {
    return this.#closed
  }

  /** Bytes per value slot as the kernel returns it: valueSize, or 8-aligned × CPUs for per-CPU maps. */
  get valueStride(): number {
    return this.#stride
  }

  #check(): void {
    if (this.#closed) throw closed(`map '${this.#info.name}'`)
  }

  #key(key: Buffer, what = 'key'): Buffer {
    if (!isBufferOf(key, this.#keySize)) {
      throw invalid(`map '${this.#info.name}' ${what}`, `a ${this.#keySize}-byte Buffer`, key)
    }
    return key
  }

  #value(value: Buffer, size = this.#info.valueSize, what = 'value'): Buffer {
    if (!isBufferOf(value, size)) {
      throw invalid(`map '${this.#info.name}' ${what}`, `a ${size}-byte Buffer`, value)
    }
    return value
  }

  /**
   * The error of an element call the addon refused (it returns null when a buffer's real length
   * is not the map's size): names the argument at fault.
   */
  #badArgs(op: string, key: Buffer | null, value: Buffer | null, valueSize: number): BpfError {
    if (key !== null && !isBufferOf(key, this.#keySize))
      return invalid(`map '${this.#info.name}' key`, `a ${this.#keySize}-byte Buffer`, key)
    if (value !== null && !isBufferOf(value, valueSize))
      return invalid(`map '${this.#info.name}' value`, `a ${valueSize}-byte Buffer`, value)
    return invalid(`map '${this.#info.name}' ${op}`, "Buffers of the map's sizes")
  }

  /**
   * The slot the element hot paths run on: `key` goes into it, the kernel reads and writes only
   * its bytes (sized once, here), and the native call takes no arguments. Per call that leaves
   * one N-API callback and the syscall: no argument conversions or buffer introspection in C++,
   * no result object, and the kernel touches one user page instead of two.
   */
  #bind(): () => undefined {
    const ks = this.#keySize
    const valueAt = SLOT_HEADER + align8(ks)
    const slot = new ArrayBuffer(valueAt + this.#stride)
    this.#slotHdr = new Int32Array(slot, 0, SLOT_HEADER / 4)
    this.#slotKey = new Uint8Array(slot, SLOT_HEADER, ks)
    this.#slotValue = new Uint8Array(slot, valueAt, this.#stride)
    this.#slotHdr[1] = this.#fd
    const op = native(() => this.#addon.mapBindSlot(slot, ks, this.#stride))
    this.#slotOp = op
    return op
  }

  /**
   * One element call on the slot (key already validated): true when done, false when the
   * kernel said ENOENT (only for the commands where that means "not found").
   */
  #elem(cmd: number, key: Buffer | null, flags: number, op: string): boolean {
    const fn = this.#slotOp ?? this.#bind()
    if (key !== null) copyBytes(this.#slotKey, key, this.#keySize)
    const hdr = this.#slotHdr
    hdr[0] = cmd
    hdr[2] = flags
    try {
      fn()
    } catch (error) {
      throw fromNative(error, `map '${this.#info.name}' ${op}`)
    }
    return hdr[0] === 0
  }

  /** A new Buffer holding the value the last element call left in the slot. */
  #slotCopy(): Buffer {
    const stride = this.#stride
    const out = Buffer.allocUnsafe(stride)
    copyBytes(out, this.#slotValue, stride)
    return out
  }

  /**
   * The value stored under `key`, or undefined. For per-CPU maps this is every CPU's slot laid
   * end to end (see {@link BpfMap.lookupPerCpu}).
   */
  // The element hot paths (lookup, lookupInto, update, delete) check the arguments with the
  // byte length V8 keeps (a shadowed `length` property cannot lie to it), then make one
  // argument-free native call on the map's slot (#bind); errors and their context strings are
  // only built on the failure path.
  lookup(key: Buffer): Buffer | undefined {
    if (this.#closed) this.#check()
    if (!isBufferOf(key, this.#keySize)) this.#key(key)
    return this.#elem(CMD_LOOKUP, key, 0, 'lookup') ? this.#slotCopy() : undefined
  }

  /**
   * Like lookup, into a caller-provided buffer of {@link BpfMap.valueStride} bytes (no
   * allocation); returns whether it was found (`out` is left as it was when not).
   */
  lookupInto(key: Buffer, out: Buffer): boolean {
    if (this.#closed) this.#check()
    const stride = this.#stride
    if (!isBufferOf(key, this.#keySize) || !isBufferOf(out, stride))
      throw this.#badArgs('lookup', key, out, stride)
    if (!this.#elem(CMD_LOOKUP, key, 0, 'lookup')) return false
    copyBytes(out, this.#slotValue, stride)
    return true
  }

  /** Per-CPU maps: the value of every possible CPU, one Buffer each. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    this.#check()
    if (!PERCPU_MAP_TYPES.has(this.#info.type)) {
      throw invalid(`map '${this.#info.name}' lookupPerCpu`, 'a per-CPU map', this.#info.type)
    }
    const raw = this.lookup(key)
    return raw === undefined ? undefined : splitPerCpu(raw, this.#info.valueSize)
  }

  /** Per-CPU maps: write one value per possible CPU (`values.length` must equal the CPU count). */
  updatePerCpu(key: Buffer, values: Buffer[], flags: UpdateFlag = 'any'): void {
    this.#check()
    const n = possibleCpus()
    if (!Array.isArray(values) || values.length !== n) {
      throw invalid(`map '${this.#info.name}' per-CPU values`, `an array of ${n} Buffers`, values)
    }
    for (const v of values) this.#value(v)
    this.#key(key)
    const f = flagOf(flags)
    if (this.#slotOp === undefined) this.#bind()
    // the padding between per-CPU values goes to the kernel too: zero, not a previous call's
    const raw = this.#slotValue
    const stride = align8(this.#info.valueSize)
    raw.fill(0)
    for (let i = 0; i < values.length; i++) raw.set(values[i] as Uint8Array, i * stride)
    this.#elem(CMD_UPDATE, key, f, 'update')
  }

  /**
   * Create or replace (`any`, the default), create only (`noexist`: EEXIST when present) or
   * replace only (`exist`: ENOENT when absent).
   */
  update(key: Buffer, value: Buffer, flags: UpdateFlag = 'any'): void {
    if (this.#closed) this.#check()
    const stride = this.#stride
    if (!isBufferOf(key, this.#keySize) || !isBufferOf(value, stride))
      throw this.#badArgs('update', key, value, stride)
    const f = flags === 'any' ? 0 : flagOf(flags)
    if (this.#slotOp === undefined) this.#bind()
    copyBytes(this.#slotValue, value, stride)
    this.#elem(CMD_UPDATE, key, f, 'update')
  }

  /** Removes `key`; false when it was not there. */
  delete(key: Buffer): boolean {
    if (this.#closed) this.#check()
    if (!isBufferOf(key, this.#keySize)) this.#key(key)
    return this.#elem(CMD_DELETE, key, 0, 'delete')
  }

  /** Looks `key` up and removes it in one call (hash/LRU maps, Linux 5.14+); undefined when absent. */
  lookupAndDelete(key: Buffer): Buffer | undefined {
    if (this.#closed) this.#check()
    if (!isBufferOf(key, this.#keySize)) this.#key(key)
    return this.#elem(CMD_LOOKUP_AND_DELETE, key, 0, 'lookupAndDelete')
      ? this.#slotCopy()
      : undefined
  }

  /** Queue/stack maps: append `value` (`'exist'` overwrites the oldest when full: BPF_EXIST). */
  push(value: Buffer, flags: UpdateFlag = 'any'): void {
    this.#queueOnly('push')
    this.#value(value)
    const f = flagOf(flags)
    if (this.#slotOp === undefined) this.#bind()
    copyBytes(this.#slotValue, value, this.#stride)
    this.#elem(CMD_UPDATE, null, f, 'push')
  }

  /** Queue/stack maps: remove and return the next value (FIFO for queue, LIFO for stack). */
  pop(): Buffer | undefined {
    this.#queueOnly('pop')
    return this.#elem(CMD_LOOKUP_AND_DELETE, null, 0, 'pop') ? this.#slotCopy() : undefined
  }

  /** Queue/stack maps: the next value without removing it. */
  peek(): Buffer | undefined {
    this.#queueOnly('peek')
    return this.#elem(CMD_LOOKUP, null, 0, 'peek') ? this.#slotCopy() : undefined
  }

  #queueOnly(op: string): void {
    if (this.#closed) this.#check()
    if (this.#info.type !== 'queue' && this.#info.type !== 'stack')
      throw invalid(`map '${this.#info.name}' ${op}`, 'a queue or stack map', this.#info.type)
  }

  /** Every key, by BPF_MAP_GET_NEXT_KEY (a snapshot taken while iterating). */
  keys(): Buffer[] {
    this.#check()
    const out: Buffer[] = []
    let prev: Buffer | null = null
    for (;;) {
      const next = Buffer.allocUnsafe(this.#info.keySize)
      const fd = this.#fd
      const p: Buffer | null = prev
      if (!native(() => this.#addon.mapNextKey(fd, p, next))) break
      out.push(next)
      prev = next
      if (out.length > this.#info.maxEntries * 2 + 16) break // arrays never end early otherwise
    }
    return out
  }

  /** Every [key, value] pair (keys() then lookup(); entries deleted meanwhile are skipped). */
  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = []
    for (const k of this.keys()) {
      const v = this.lookup(k)
      if (v !== undefined) out.push([k, v])
    }
    return out
  }

  /**
   * Reads the whole map with BPF_MAP_LOOKUP_BATCH (hash, array, LRU, per-CPU maps) in a worker
   * thread. `andDelete` empties the map as it reads (not for arrays).
   */
  async batchLookupPacked(options: { andDelete?: boolean } = {}): Promise<PackedEntries> {
    this.#check()
    const stride = this.#stride
    const r = await nativeAsync(
      () =>
        this.#addon.mapLookupBatch(
          this.#fd,
          this.#info.keySize,
          stride,
          this.#info.maxEntries,
          options.andDelete === true,
        ),
      `map '${this.#info.name}' batch lookup`,
    )
    return { ...r, valueStride: stride }
  }

  /** Batch lookup returning [key, value] pairs (views into two packed Buffers). */
  async batchLookup(options: { andDelete?: boolean } = {}): Promise<Array<[Buffer, Buffer]>> {
    const p = await this.batchLookupPacked(options)
    const ks = this.#info.keySize
    const out: Array<[Buffer, Buffer]> = new Array(p.count)
    for (let i = 0; i < p.count; i++) {
      out[i] = [
        p.keys.subarray(i * ks, (i + 1) * ks),
        p.values.subarray(i * p.valueStride, (i + 1) * p.valueStride),
      ]
    }
    return out
  }

  /**
   * Writes many entries with BPF_MAP_UPDATE_BATCH in a worker thread. Takes [key, value] pairs or
   * packed `{ keys, values }` Buffers. Returns the number written.
   */
  async batchUpdate(
    entries: ReadonlyArray<readonly [Buffer, Buffer]> | { keys: Buffer; values: Buffer },
    flags: UpdateFlag = 'any',
  ): Promise<number> {
    this.#check()
    const ks = this.#info.keySize
    const vs = this.#stride
    let keys: Buffer
    let values: Buffer
    let count: number
    if (Array.isArray(entries)) {
      const list = entries as ReadonlyArray<readonly [Buffer, Buffer]>
      count = list.length
      keys = Buffer.allocUnsafe(count * ks)
      values = Buffer.allocUnsafe(count * vs)
      for (let i = 0; i < count; i++) {
        const pair = list[i]!
        const k = pair[0]
        const v = pair[1]
        // the messages (and their strings) only on failure
        if (!isBufferOf(k, ks)) this.#key(k, `key [${i}]`)
        if (!isBufferOf(v, vs)) this.#value(v, vs, `value [${i}]`)
        // TypedArray#set is JIT-compiled; Buffer#copy crosses into C++ for every pair
        keys.set(k, i * ks)
        values.set(v, i * vs)
      }
    } else {
      const packed = entries as { keys: Buffer; values: Buffer }
      keys = packed.keys
      values = packed.values
      if (!Buffer.isBuffer(keys) || byteLengthOf(keys) % ks !== 0)
        throw invalid(`map '${this.#info.name}' packed keys`, `a multiple of ${ks} bytes`, keys)
      count = byteLengthOf(keys) / ks
      if (!Buffer.isBuffer(values) || byteLengthOf(values) !== count * vs)
        throw invalid(`map '${this.#info.name}' packed values`, `${count * vs} bytes`, values)
    }
    if (count === 0) return 0
    return nativeAsync(
      () =>
        this.#addon.mapUpdateBatch(
          this.#fd,
          keys,
          values,
          count,
          flagOf(flags),
          ks,
          vs,
          batchParallel,
        ),
      `map '${this.#info.name}' batch update`,
    )
  }

  /** Deletes many keys with BPF_MAP_DELETE_BATCH. Takes Buffers or one packed Buffer. */
  async batchDelete(keys: readonly Buffer[] | Buffer): Promise<number> {
    this.#check()
    const ks = this.#info.keySize
    let packed: Buffer
    if (Buffer.isBuffer(keys)) {
      if (byteLengthOf(keys) % ks !== 0)
        throw invalid(`map '${this.#info.name}' packed keys`, `a multiple of ${ks} bytes`, keys)
      packed = keys
    } else {
      keys.forEach((k, i) => {
        if (!isBufferOf(k, ks)) this.#key(k, `key [${i}]`)
      })
      packed = Buffer.concat(keys as Buffer[])
    }
    const count = byteLengthOf(packed) / ks
    if (count === 0) return 0
    return nativeAsync(
      () => this.#addon.mapDeleteBatch(this.#fd, packed, count, ks),
      `map '${this.#info.name}' batch delete`,
    )
  }

  /** Map-in-map (array_of_maps, hash_of_maps): store `inner` under `key`. */
  setInner(key: Buffer, inner: BpfMap): void {
    this.#check()
    if (this.#info.type !== 'array_of_maps' && this.#info.type !== 'hash_of_maps') {
      throw invalid(
        `map '${this.#info.name}' setInner`,
        'an array_of_maps or hash_of_maps',
        this.#info.type,
      )
    }
    this.#key(key)
    this.#setFd(key, inner.fd, 'setInner')
  }

  /** prog_array (tail calls): store `program` under `key`. */
  setProgram(key: Buffer, program: { readonly fd: number }): void {
    this.#check()
    if (this.#info.type !== 'prog_array')
      throw invalid(`map '${this.#info.name}' setProgram`, 'a prog_array map', this.#info.type)
    this.#key(key)
    this.#setFd(key, program.fd, 'setProgram')
  }

  // Map-in-map and prog_array values are a 4-byte fd (the kernel creates them with valueSize 4).
  #setFd(key: Buffer, fd: number, op: string): void {
    if (this.#slotOp === undefined) this.#bind()
    new DataView(this.#slotValue.buffer, this.#slotValue.byteOffset, 4).setUint32(0, fd, true)
    this.#elem(CMD_UPDATE, key, 0, op)
  }

  /** Map-in-map: the kernel id of the inner map stored under `key`. */
  innerId(key: Buffer): number | undefined {
    const v = this.lookup(key)
    return v === undefined ? undefined : v.readUInt32LE(0)
  }

  /** Pins the map at `path` on bpffs. */
  pin(path: string): void {
    this.#check()
    checkPinPath(path)
    native(() => this.#addon.objPin(this.#fd, path))
    this.#pinPath = path
  }

  /** Removes the pin this map was pinned at (or opened from). The map lives while fds remain. */
  unpin(): void {
    if (!this.#pinPath)
      throw new BpfError(`map '${this.#info.name}' is not pinned`, { code: BpfErrorCode.BAD_STATE })
    try {
      unlinkSync(this.#pinPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    this.#pinPath = undefined
  }

  /** Makes the map read-only for user space (BPF_MAP_FREEZE); programs may still write. */
  freeze(): void {
    this.#check()
    native(() => this.#addon.mapFreeze(this.#fd))
  }

  /**
   * Key and value layouts from the map's BTF as the kernel holds it (works for pinned maps of
   * another process too); null when the map was created without BTF.
   */
  layout(): { key: TypeLayout | null; value: TypeLayout | null } | null {
    this.#check()
    return native(() => this.#addon.mapLayout(this.#fd), `map '${this.#info.name}' layout`) as {
      key: TypeLayout | null
      value: TypeLayout | null
    } | null
  }

  /** A typed view with both codecs derived from the map's BTF (see {@link codecFromLayout}). */
  typedFromBtf(): TypedMap<unknown, unknown> {
    const l = this.layout()
    if (!l?.key || !l.value)
      throw new BpfError(`map '${this.#info.name}' has no BTF key/value types`, {
        code: BpfErrorCode.BAD_STATE,
      })
    return this.typed(
      codecFromLayout(l.key, `${this.#info.name} key`),
      codecFromLayout(l.value, `${this.#info.name} value`),
    )
  }

  /** A typed view: keys and values go through the codecs. */
  typed<K, V>(keyCodec: Codec<K>, valueCodec: Codec<V>): TypedMap<K, V> {
    if (keyCodec.size !== this.#info.keySize)
      throw invalid(
        `map '${this.#info.name}' key codec`,
        `size ${this.#info.keySize}`,
        keyCodec.size,
      )
    if (valueCodec.size !== this.#info.valueSize)
      throw invalid(
        `map '${this.#info.name}' value codec`,
        `size ${this.#info.valueSize}`,
        valueCodec.size,
      )
    return new TypedMap(this, keyCodec, valueCodec)
  }

  /** Releases the descriptor (a no-op for the fd of an object's map: the object owns it). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#owned) this.#addon.close(this.#fd)
    this.#fd = -1
    this.#slotHdr[1] = -1
  }

  /** @internal called by the owning BpfObject's close */
  markClosed(): void {
    this.#closed = true
    this.#fd = -1
    this.#slotHdr[1] = -1
  }

  /** @internal the owning object, if any */
  get owner(): object | undefined {
    return this.#owner
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/** A map viewed through codecs: the same operations on decoded keys and values. */
export class TypedMap<K, V> {
  constructor(
    /** The underlying Buffer map. */
    readonly map: BpfMap,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
  ) {}

  /** The decoded value under `key`, or undefined. */
  lookup(key: K): V | undefined {
    const v = this.map.lookup(this.keyCodec.encode(key))
    return v === undefined ? undefined : this.valueCodec.decode(v)
  }

  /** Per-CPU maps: every CPU's decoded value. */
  lookupPerCpu(key: K): V[] | undefined {
    return this.map.lookupPerCpu(this.keyCodec.encode(key))?.map((b) => this.valueCodec.decode(b))
  }

  /** Encodes and writes; see {@link BpfMap.update} for the flags. */
  update(key: K, value: V, flags: UpdateFlag = 'any'): void {
    this.map.update(this.keyCodec.encode(key), this.valueCodec.encode(value), flags)
  }

  /** Removes `key`; false when absent. */
  delete(key: K): boolean {
    return this.map.delete(this.keyCodec.encode(key))
  }

  /** Every key, decoded. */
  keys(): K[] {
    return this.map.keys().map((k) => this.keyCodec.decode(k))
  }

  /** Every [key, value], decoded. */
  entries(): Array<[K, V]> {
    return this.map.entries().map(([k, v]) => [this.keyCodec.decode(k), this.valueCodec.decode(v)])
  }

  /** Batch read of the whole map, decoded. */
  async batchLookup(options: { andDelete?: boolean } = {}): Promise<Array<[K, V]>> {
    const list = await this.map.batchLookup(options)
    return list.map(([k, v]) => [this.keyCodec.decode(k), this.valueCodec.decode(v)])
  }

  /** Batch write of decoded pairs. */
  async batchUpdate(
    entries: ReadonlyArray<readonly [K, V]>,
    flags: UpdateFlag = 'any',
  ): Promise<number> {
    return this.map.batchUpdate(
      entries.map(([k, v]) => [this.keyCodec.encode(k), this.valueCodec.encode(v)] as const),
      flags,
    )
  }

  /** Batch delete by decoded keys. */
  async batchDelete(keys: readonly K[]): Promise<number> {
    return this.map.batchDelete(keys.map((k) => this.keyCodec.encode(k)))
  }

  close(): void {
    this.map.close()
  }

  [Symbol.dispose](): void {
    this.map.close()
  }
}

/** Options of {@link createMap}. */
export interface CreateMapOptions {
  type: MapType
  keySize: number
  valueSize: number
  maxEntries: number
  /** Up to 15 characters [A-Za-z0-9_.]. */
  name?: string
  /** BPF_F_* flags (see MAP_FLAGS); lpm_trie needs NO_PREALLOC, which is added for you. */
  flags?: number
  /** For array_of_maps/hash_of_maps: a map with the inner maps' shape. */
  innerMap?: BpfMap
}

/**
 * Creates a map without an object (BPF_MAP_CREATE).
 *
 * @example
 * using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1024, name: 'demo' })
 */
export function createMap(options: CreateMapOptions): BpfMap {
  const type = MAP_TYPES[options.type]
  if (type === undefined)
    throw invalid('createMap type', `one of ${Object.keys(MAP_TYPES).join(', ')}`, options.type)
  for (const f of ['keySize', 'valueSize', 'maxEntries'] as const) {
    const v = options[f]
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw invalid(`createMap ${f}`, 'a non-negative integer', v)
  }
  if (options.name !== undefined && !/^[A-Za-z0-9_.]{1,15}$/.test(options.name))
    throw invalid('createMap name', 'up to 15 characters of [A-Za-z0-9_.]', options.name)
  let flags = options.flags ?? 0
  if (options.type === 'lpm_trie') flags |= 1 // BPF_F_NO_PREALLOC is mandatory
  const addon = loadAddon()
  if ((options.type === 'array_of_maps' || options.type === 'hash_of_maps') && !options.innerMap)
    throw invalid('createMap innerMap', `a template map for ${options.type}`)
  const fd = native(
    () =>
      addon.mapCreate(
        type,
        options.name,
        options.keySize,
        options.valueSize,
        options.maxEntries,
        flags,
        options.innerMap?.fd,
      ),
    `createMap ${options.name ?? options.type}`,
  )
  return BpfMap.fromFd({ fd, owned: true, name: options.name })
}

/** Opens a map pinned on bpffs. */
export function openPinnedMap(path: string): BpfMap {
  checkPinPath(path)
  const addon = loadAddon()
  const fd = native(() => addon.objGet(path), `openPinnedMap ${path}`)
  try {
    return BpfMap.fromFd({ fd, owned: true, pinPath: path })
  } catch (error) {
    addon.close(fd)
    throw error
  }
}

function flagOf(flags: UpdateFlag): number {
  const f = UPDATE_FLAGS[flags]
  if (f === undefined) throw invalid('update flags', "'any', 'noexist' or 'exist'", flags)
  return f
}

// The byte length V8 keeps for a typed array; an own `length` property cannot shadow it.
const typedArrayByteLength = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  'byteLength',
)!.get as (this: Uint8Array) => number

function byteLengthOf(b: Uint8Array): number {
  return typedArrayByteLength.call(b)
}

function isBufferOf(b: unknown, size: number): b is Buffer {
  return Buffer.isBuffer(b) && byteLengthOf(b) === size
}

/**
 * Copies `n` bytes (both sides checked to hold them): an element-by-element loop for the small
 * keys and values of the hot paths, which the JIT compiles inline, TypedArray#set for the rest.
 */
function copyBytes(dst: Uint8Array, src: Uint8Array, n: number): void {
  if (n <= 32) for (let i = 0; i < n; i++) dst[i] = src[i]!
  else dst.set(src)
}

function align8(n: number): number {
  return (n + 7) & ~7
}

function splitPerCpu(raw: Buffer, valueSize: number): Buffer[] {
  const stride = align8(valueSize)
  const out: Buffer[] = []
  for (let off = 0; off + stride <= raw.length; off += stride)
    out.push(raw.subarray(off, off + valueSize))
  return out
}
