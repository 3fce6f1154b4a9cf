import { existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { loadAddon, type NativeAddon, type NativeObjectHandle } from './_addon'
import { checkPinPath } from './_paths'
import { codecFromLayout, type TypeLayout } from './btf'
import { type MapType, mapTypeName, type ProgramType, programTypeName } from './constants'
import { BpfError, BpfErrorCode, closed, invalid, native, nativeAsync } from './errors'
import { BpfMap, type TypedMap } from './map'
import { BpfProgram } from './program'

/** Options of {@link BpfObject.open}. */
export interface OpenOptions {
  /** Maps marked LIBBPF_PIN_BY_NAME are pinned here (reused when compatible). Must be on bpffs. */
  pinRoot?: string
  /** Object name (default: the file name). */
  name?: string
}

/** Options of {@link BpfObject.load}. */
export interface LoadOptions {
  /** Verifier log level for every program (0: only on failure, 1, 2). Default 0. */
  logLevel?: 0 | 1 | 2
  /** Bytes of verifier log kept per program. Default 1 MiB. */
  logSize?: number
}

/** A map of an object before load: what the ELF declares. */
export interface MapSpec {
  name: string
  type: MapType
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
  internal: boolean
  pinPath?: string
}

/** A program of an object before load. */
export interface ProgramSpec {
  name: string
  section: string
  type: ProgramType
}

/**
 * A BPF ELF object: open, set globals, load, then use its programs and maps.
 *
 * @example
 * using obj = BpfObject.open('bpf-src/build/tests/count_packets.o')
 * await obj.load()
 * const att = await obj.program('count_packets').attachTc({ ifname: 'veth0', direction: 'ingress' })
 */
export class BpfObject {
  #handle: NativeObjectHandle | undefined
  #state: 'open' | 'loading' | 'loaded' | 'failed' = 'open'
  #maps: BpfMap[] = []
  #programs: BpfProgram[] = []
  #logs: Record<string, string[]> = {}
  /** Where the object came from (a path, or `<buffer>`). */
  readonly source: string

  private constructor(handle: NativeObjectHandle, source: string) {
    this.#handle = handle
    this.source = source
  }

  /** Opens an ELF object from a path or a Buffer (nothing is loaded into the kernel yet). */
  static open(pathOrBuffer: string | Buffer, options: OpenOptions = {}): BpfObject {
    const addon = loadAddon()
    if (typeof pathOrBuffer === 'string') {
      if (!existsSync(pathOrBuffer))
        throw new BpfError(`BPF object ${pathOrBuffer} does not exist`, {
          code: 'ENOENT',
          errno: 2,
          call: 'open',
          hint: 'build BPF objects with `node tools/bpf-build.mjs`',
        })
    } else if (!Buffer.isBuffer(pathOrBuffer)) {
      throw invalid(
        'BpfObject.open source',
        'a path or a Buffer holding an ELF object',
        pathOrBuffer,
      )
    }
    if (options.pinRoot !== undefined) preparePinRoot(addon, options.pinRoot)
    if (options.name !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(options.name))
      throw invalid('BpfObject.open name', 'up to 64 characters [A-Za-z0-9_.-]', options.name)
    const handle = native(
      () => new addon.NativeObject(pathOrBuffer, options.pinRoot, options.name),
      `BpfObject.open ${typeof pathOrBuffer === 'string' ? pathOrBuffer : '<buffer>'}`,
    )
    return new BpfObject(handle, typeof pathOrBuffer === 'string' ? pathOrBuffer : '<buffer>')
  }

  #need(): NativeObjectHandle {
    if (!this.#handle) throw closed(`BPF object ${this.source}`)
    return this.#handle
  }

  /** True after load() succeeded. */
  get loaded(): boolean {
    return this.#state === 'loaded'
  }

  /** Maps as declared in the ELF (available before load). */
  mapSpecs(): MapSpec[] {
    return this.#need()
      .maps()
      .map((m) => ({
        name: m.name,
        type: mapTypeName(m.type),
        keySize: m.keySize,
        valueSize: m.valueSize,
        maxEntries: m.maxEntries,
        flags: m.flags,
        internal: m.internal,
        ...(m.pinPath ? { pinPath: m.pinPath } : {}),
      }))
  }

  /** Programs as declared in the ELF (available before load). */
  programSpecs(): ProgramSpec[] {
    return this.#need()
      .programs()
      .map((p) => ({ name: p.name, section: p.section, type: programTypeName(p.type) }))
  }

  /**
   * The key and value layout of a map from the object's BTF (null without BTF). Lets a codec be
   * checked against the C struct it mirrors: sizes and field offsets come from the compiler.
   *
   * @example
   * expect(obj.mapLayout('lpm_v4')?.key.fields?.map((f) => [f.name, f.offset])).toEqual([['prefixlen', 0], ['addr', 4]])
   */
  mapLayout(map: string): { key: TypeLayout | null; value: TypeLayout | null } | null {
    const handle = this.#need()
    return native(() => handle.mapLayout(map), `mapLayout('${map}')`) as {
      key: TypeLayout | null
      value: TypeLayout | null
    } | null
  }

  /**
   * A loaded map with codecs derived from its BTF key/value types (see {@link codecFromLayout}):
   * handy for inspection and tools; hand-written codecs give better types.
   */
  typedMap(name: string): TypedMap<unknown, unknown> {
    const map = this.map(name)
    const layout = this.mapLayout(name)
    if (!layout?.key || !layout.value)
      throw new BpfError(`map '${name}' has no BTF key/value types`, {
        code: BpfErrorCode.BAD_STATE,
      })
    return map.typed(
      codecFromLayout(layout.key, `${name} key`),
      codecFromLayout(layout.value, `${name} value`),
    )
  }

  /** A named struct/union/typedef/enum from the object's BTF (null when absent). */
  typeLayout(type: string): TypeLayout | null {
    const handle = this.#need()
    return native(() => handle.typeLayout(type), `typeLayout('${type}')`) as TypeLayout | null
  }

  /** Global variables (.rodata/.data/.bss) with their sizes. */
  globals(): Array<{ name: string; size: number; offset: number; section: string }> {
    return this.#need()
      .globals()
      .map((g) => ({ name: g.name, size: g.size, offset: g.offset, section: g.section }))
  }

  /**
   * Sets a global variable before load. Numbers and bigints are written little-endian in the
   * variable's own size (1, 2, 4 or 8 bytes); a Buffer must match the size exactly.
   */
  setGlobal(name: string, value: Buffer | number | bigint | boolean): void {
    const handle = this.#need()
    if (this.#state !== 'open')
      throw new BpfError(`setGlobal('${name}') after load: globals are fixed once loaded`, {
        code: BpfErrorCode.BAD_STATE,
      })
    const g = handle.globals().find((x) => x.name === name)
    if (!g) {
      const known = handle.globals().map((x) => x.name)
      throw invalid(
        `setGlobal name`,
        `one of the object's globals (${known.join(', ') || 'none'})`,
        name,
      )
    }
    const buf = encodeGlobal(name, g.size, value)
    native(() => handle.setGlobal(name, buf), `setGlobal('${name}')`)
  }

  /** Resizes a map before load (max_entries; for ringbuf a power-of-two multiple of the page size). */
  setMaxEntries(map: string, maxEntries: number): void {
    const handle = this.#need()
    if (this.#state !== 'open')
      throw new BpfError(`setMaxEntries('${map}') after load`, { code: BpfErrorCode.BAD_STATE })
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 0xffffffff)
      throw invalid(`setMaxEntries('${map}')`, 'a positive 32-bit integer', maxEntries)
    native(() => handle.setMaxEntries(map, maxEntries), `setMaxEntries('${map}')`)
  }

  /**
   * Pins one map at `path` at load (reusing a compatible pin there, like pinRoot does for
   * LIBBPF_PIN_BY_NAME maps); `null` cancels pinning. The directory must exist on bpffs.
   */
  setPinPath(map: string, path: string | null): void {
    const handle = this.#need()
    if (this.#state !== 'open')
      throw new BpfError(`setPinPath('${map}') after load`, { code: BpfErrorCode.BAD_STATE })
    if (path !== null) checkPinPath(path, `setPinPath('${map}') path`)
    native(() => handle.setPinPath(map, path), `setPinPath('${map}')`)
  }

  /**
   * Reads a global variable after load (its bytes in the live .data/.bss/.rodata map), e.g. a
   * counter a program keeps in .bss.
   */
  readGlobal(name: string): Buffer {
    this.#loaded()
    const g = this.#need()
      .globals()
      .find((x) => x.name === name)
    if (!g) throw invalid('readGlobal name', "one of the object's globals", name)
    const map = this.#maps.find((m) => m.name === g.section)
    const value = map?.lookup(Buffer.alloc(4))
    if (!value)
      throw new BpfError(`global '${name}': section ${g.section} is not readable`, {
        code: BpfErrorCode.BAD_STATE,
      })
    return Buffer.from(value.subarray(g.offset, g.offset + g.size))
  }

  /** Skips (false) or includes (true) a program at load. */
  setAutoload(program: string, on: boolean): void {
    const handle = this.#need()
    native(() => handle.setAutoload(program, on))
  }

  /**
   * Creates the maps (reusing compatible pins), loads and verifies every program, in a worker
   * thread. A verifier rejection is a VerifierError with the full log; an incompatible pin is a
   * BpfError PIN_MISMATCH naming the map and the difference.
   */
  async load(options: LoadOptions = {}): Promise<void> {
    const handle = this.#need()
    if (this.#state !== 'open')
      throw new BpfError(
        `BPF object ${this.source} was already ${this.#state === 'failed' ? 'loaded and failed' : 'loaded'}`,
        {
          code: BpfErrorCode.BAD_STATE,
        },
      )
    const level = options.logLevel ?? 0
    if (level !== 0 && level !== 1 && level !== 2)
      throw invalid('load logLevel', '0, 1 or 2', level)
    const logSize = options.logSize ?? 1 << 20
    if (!Number.isInteger(logSize) || logSize < 1024 || logSize > 0x3fffffff)
      throw invalid('load logSize', 'an integer between 1024 and 2^30', logSize)
    this.#state = 'loading'
    try {
      this.#logs = await nativeAsync(() => handle.load(level, logSize), `load of ${this.source}`)
    } catch (error) {
      this.#state = 'failed'
      throw error
    }
    this.#state = 'loaded'
    this.#maps = handle
      .maps()
      .filter((m) => m.fd >= 0)
      .map((m) =>
        BpfMap.fromFd({ fd: m.fd, owned: false, name: m.name, pinPath: m.pinPath, owner: this }),
      )
    this.#programs = handle
      .programs()
      .filter((p) => p.fd >= 0)
      .map((p) =>
        BpfProgram.fromFd({
          fd: p.fd,
          owned: false,
          name: p.name,
          section: p.section,
          type: p.type,
          owner: this,
        }),
      )
  }

  #loaded(): void {
    this.#need()
    if (this.#state !== 'loaded')
      throw new BpfError(`BPF object ${this.source} is not loaded: call await obj.load() first`, {
        code: BpfErrorCode.BAD_STATE,
      })
  }

  /** Loaded programs. */
  get programs(): BpfProgram[] {
    this.#loaded()
    return [...this.#programs]
  }

  /** Loaded maps (including .rodata/.data/.bss). */
  get maps(): BpfMap[] {
    this.#loaded()
    return [...this.#maps]
  }

  /** The verifier log of each program when loaded with logLevel > 0. */
  get verifierLogs(): Record<string, string[]> {
    return this.#logs
  }

  /** A loaded program by name. */
  program(name: string): BpfProgram {
    this.#loaded()
    const p = this.#programs.find((x) => x.name === name)
    if (!p)
      throw invalid(`program name`, `one of ${this.#programs.map((x) => x.name).join(', ')}`, name)
    return p
  }

  /** A loaded map by name. */
  map(name: string): BpfMap {
    this.#loaded()
    const m = this.#maps.find((x) => x.name === name)
    if (!m) throw invalid(`map name`, `one of ${this.#maps.map((x) => x.name).join(', ')}`, name)
    return m
  }

  /** Closes the object and every program and map fd it owns (links and pins are independent). */
  close(): void {
    if (!this.#handle) return
    if (this.#state === 'loading')
      throw new BpfError('cannot close a BPF object while it is loading', {
        code: BpfErrorCode.BAD_STATE,
      })
    for (const m of this.#maps) m.markClosed()
    for (const p of this.#programs) p.markClosed()
    this.#handle.close()
    this.#handle = undefined
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

function preparePinRoot(addon: NativeAddon, pinRoot: string): void {
  checkPinPath(pinRoot, 'pinRoot')
  let probe = pinRoot
  while (!existsSync(probe) && probe !== '/') probe = dirname(probe)
  const fs = addon.fsType(probe)
  if (fs !== 'bpf')
    throw new BpfError(`pinRoot ${pinRoot} is not on bpffs (${probe} is ${fs ?? 'missing'})`, {
      code: 'ENOENT',
      errno: 2,
      call: 'statfs',
      hint: 'mount bpffs: mount -t bpf bpf /sys/fs/bpf',
    })
  mkdirSync(pinRoot, { recursive: true })
}

function encodeGlobal(
  name: string,
  size: number,
  value: Buffer | number | bigint | boolean,
): Buffer {
  if (Buffer.isBuffer(value)) {
    if (value.length !== size) throw invalid(`global '${name}'`, `a ${size}-byte Buffer`, value)
    return value
  }
  const v = typeof value === 'boolean' ? (value ? 1n : 0n) : value
  if (typeof v === 'number' && !Number.isInteger(v))
    throw invalid(`global '${name}'`, 'an integer', v)
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8)
    throw invalid(
      `global '${name}'`,
      `a ${size}-byte Buffer (numbers only fit 1/2/4/8-byte globals)`,
      value,
    )
  const big = BigInt(v)
  const bits = BigInt(size * 8)
  const min = -(1n << (bits - 1n))
  const max = (1n << bits) - 1n
  if (big < min || big > max)
    throw invalid(`global '${name}'`, `a value that fits ${size} bytes`, value)
  const buf = Buffer.alloc(8)
  buf.writeBigUInt64LE(BigInt.asUintN(64, big))
  return buf.subarray(0, size)
}
