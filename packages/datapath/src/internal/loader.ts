/**
 * The part of @membrane/bpf-loader-napi's API this package uses, typed structurally so the map
 * wrappers can be driven by an in-memory fake in unit tests (and so this package type-checks
 * whatever the loader's build state).
 */

/** Kernel facts about a map. */
export interface MapInfoLike {
  name: string
  type: string
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
  id?: number
}

/** A BPF map handle. */
export interface MapLike {
  readonly info: MapInfoLike
  lookup(key: Buffer): Buffer | undefined
  update(key: Buffer, value: Buffer, flags?: 'any' | 'noexist' | 'exist'): void
  delete(key: Buffer): boolean
  keys(): Buffer[]
  lookupPerCpu?(key: Buffer): Buffer[] | undefined
  close?(): void
}

export interface TcAttachmentLike {
  detach(): void | Promise<void>
}

export interface LinkLike {
  pin(path: string): void
  detach(): void | Promise<void>
  close(): void
}

export interface ProgramLike {
  readonly name: string
  testRun(options: {
    data: Buffer
    ctxIn?: Buffer
    repeat?: number
    dataSizeOut?: number
  }): Promise<{ retval: number; data: Buffer; durationNs: number }>
  attachTc(options: {
    ifindex?: number
    ifname?: string
    direction: 'ingress' | 'egress'
    priority?: number
    handle?: number
    replace?: boolean
  }): Promise<TcAttachmentLike>
  attachCgroup(options: {
    cgroupPath: string
    attachType: string
    multi?: boolean
  }): Promise<LinkLike>
}

export interface ObjectLike {
  readonly maps: MapLike[]
  readonly programs: ProgramLike[]
  map(name: string): MapLike
  program(name: string): ProgramLike
  setGlobal(name: string, value: Buffer | number | bigint): void
  setMaxEntries(map: string, maxEntries: number): void
  load(options?: { logLevel?: 0 | 1 | 2 }): Promise<void>
  close(): void
}

export interface RingBufferLike {
  close(): void
}

/** The loader module, as far as this package uses it. */
export interface LoaderModule {
  BpfObject: {
    open(pathOrBuffer: string | Buffer, options?: { pinRoot?: string; name?: string }): ObjectLike
  }
  RingBuffer: new (map: MapLike, callback: (record: Buffer) => void) => RingBufferLike
  openPinnedMap(path: string): MapLike
  probeMapType(type: string): boolean
  NotSupportedError: new (feature: string, options: { minKernel?: string }) => Error
}

let cached: Promise<LoaderModule> | undefined

/** Load @membrane/bpf-loader-napi (once). */
export function loadLoader(): Promise<LoaderModule> {
  cached ??= import('@membrane/bpf-loader-napi').then((m) => m as unknown as LoaderModule)
  return cached
}
