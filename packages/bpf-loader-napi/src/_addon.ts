import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The raw N-API binding (src/native/*.cc). Internal: the public API wraps every call. */
export interface NativeAddon {
  libbpfVersion: string
  close(fd: number): void
  setDebug(on: boolean): void
  NativeObject: new (source: string | Buffer, pinRoot?: string, name?: string) => NativeObjectHandle
  // Element ops: keySize/valueSize are the map's (0 = no key / no value); they return null,
  // without a syscall, when a buffer's real length differs from them.
  mapLookup(
    fd: number,
    key: Buffer | null,
    value: Buffer,
    keySize: number,
    valueSize: number,
    flags?: number,
  ): boolean | null
  mapLookupAndDelete(
    fd: number,
    key: Buffer | null,
    value: Buffer,
    keySize: number,
    valueSize: number,
  ): boolean | null
  mapUpdate(
    fd: number,
    key: Buffer | null,
    value: Buffer,
    keySize: number,
    valueSize: number,
    flags: number,
  ): null | undefined
  mapDelete(fd: number, key: Buffer, value: null, keySize: number, valueSize: 0): boolean | null
  mapNextKey(fd: number, key: Buffer | null, next: Buffer): boolean
  mapInfo(fd: number): NativeMapInfo
  mapLayout(fd: number): { key: unknown; value: unknown } | null
  mapCreate(
    type: number,
    name: string | undefined,
    keySize: number,
    valueSize: number,
    maxEntries: number,
    flags: number,
    innerFd?: number,
  ): number
  objGet(path: string): number
  objPin(fd: number, path: string): void
  mapFreeze(fd: number): void
  numPossibleCpus(): number
  mapLookupBatch(
    fd: number,
    keySize: number,
    valueStride: number,
    capacity: number,
    andDelete: boolean,
  ): Promise<{ count: number; keys: Buffer; values: Buffer }>
  mapUpdateBatch(
    fd: number,
    keys: Buffer,
    values: Buffer,
    count: number,
    flags: number,
    keySize: number,
    valueStride: number,
    parallel?: 0 | 1 | 2,
  ): Promise<number>
  mapDeleteBatch(fd: number, keys: Buffer, count: number, keySize: number): Promise<number>
  progInfo(fd: number): { type: number; id: number; name: string; tag: string }
  linkInfo(fd: number): { type: number; id: number; progId: number }
  progTestRun(
    fd: number,
    data: Buffer | null,
    dataSizeOut: number,
    ctxIn: Buffer | null,
    ctxSizeOut: number,
    repeat: number,
    flags: number,
    cpu?: number,
  ): Promise<{ retval: number; durationNs: number; data: Buffer; ctx: Buffer }>
  tcAttach(
    ifindex: number,
    ingress: boolean,
    progFd: number,
    priority: number,
    handle: number,
    replace: boolean,
  ): Promise<{ handle: number; priority: number }>
  tcDetach(ifindex: number, ingress: boolean, priority: number, handle: number): Promise<boolean>
  tcDetachSync(ifindex: number, ingress: boolean, priority: number, handle: number): boolean
  tcHookDestroy(ifindex: number): void
  xdpDetachSync(ifindex: number, flags: number, oldProgFd: number): void
  dupFd(fd: number): number
  probeLinkAttach(
    progType: number,
    expectedAttachType: number,
    attachType: number,
    targetFd: number,
  ): number
  linkCreate(progFd: number, targetFd: number, attachType: number, flags: number): Promise<number>
  linkDetach(fd: number): void
  linkUpdate(linkFd: number, progFd: number, oldProgFd: number): void
  progAttach(progFd: number, targetFd: number, attachType: number, flags: number): void
  progDetach(progFd: number, targetFd: number, attachType: number): boolean
  xdpAttach(ifindex: number, progFd: number, flags: number, oldProgFd: number): Promise<void>
  xdpDetach(ifindex: number, flags: number, oldProgFd: number): Promise<void>
  xdpQueryId(ifindex: number, flags: number): number
  openDir(path: string): number
  ifNameToIndex(name: string): number
  constants: Record<string, number>
  NativeRingBuffer: new (
    mapFd: number,
    callback: (error: Error | null, batch?: Buffer, offsets?: Uint32Array) => void,
    maxBatch?: number,
  ) => NativeRingBufferHandle
  NativePerfBuffer: new (
    mapFd: number,
    pageCount: number,
    callback: (error: Error | null, batch?: Buffer, offsets?: Uint32Array, lost?: number) => void,
  ) => NativeRingBufferHandle
  probe(kind: 'prog' | 'map', type: number): boolean
  probe(kind: 'helper', progType: number, helperId: number): boolean
  fsType(path: string): 'bpf' | 'cgroup2' | 'other' | null
  kernelRelease(): string
  setSocketMark(fd: number, mark: number): void
  getSocketMark(fd: number): number
  getSocketCookie(fd: number): bigint
  setIpTransparent(fd: number, ipv6: boolean): void
  getIpTransparent(fd: number, ipv6: boolean): boolean
  socketDomain(fd: number): number
}

export interface NativeMapInfo {
  type: number
  id: number
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
  name: string
  btfId: number
}

export interface NativeObjectHandle {
  maps(): Array<{
    name: string
    type: number
    keySize: number
    valueSize: number
    maxEntries: number
    flags: number
    internal: boolean
    fd: number
    pinPath?: string
    pinned: boolean
  }>
  programs(): Array<{
    name: string
    section: string
    type: number
    expectedAttachType: number
    fd: number
    autoload: boolean
  }>
  globals(): Array<{ name: string; size: number; offset: number; section: string }>
  setGlobal(name: string, value: Buffer): void
  setAutoload(program: string, on: boolean): void
  setMaxEntries(map: string, maxEntries: number): void
  setPinPath(map: string, path: string | null): void
  mapLayout(map: string): { key: unknown; value: unknown } | null
  typeLayout(type: string): unknown
  load(logLevel: number, logSize: number): Promise<Record<string, string[]>>
  close(): void
}

export interface NativeRingBufferHandle {
  start(): void
  stop(): void
  consume(): number
  close(): void
  setRef(on: boolean): void
}

/** Where the addon was looked for, and why each place failed. */
export interface AddonAttempt {
  path: string
  error: string
}

function here(): string {
  try {
    return dirname(fileURLToPath(import.meta.url))
  } catch {
    return typeof __dirname === 'string' ? __dirname : process.cwd()
  }
}

/** Candidate paths, most specific first: $MEMBRANE_BPF_ADDON, then build/{Release,Debug}. */
export function addonCandidates(): string[] {
  const pkgRoot = resolve(here(), '..')
  const out: string[] = []
  const env = process.env.MEMBRANE_BPF_ADDON
  if (env) out.push(resolve(env))
  for (const dir of ['build/Release', 'build/Debug']) {
    out.push(join(pkgRoot, dir, 'membrane_bpf.node'))
  }
  return out
}

let cached: NativeAddon | undefined

/**
 * Load the native addon, trying each candidate path in turn. When none loads, the error lists
 * every path tried and why it failed (missing file, wrong ABI, missing libbpf.so...).
 */
export function loadAddon(): NativeAddon {
  cached ??= loadAddonFrom(addonCandidates())
  return cached
}

/** @internal loadAddon over an explicit candidate list (tests). */
export function loadAddonFrom(candidates: readonly string[]): NativeAddon {
  const require = createRequire(join(here(), 'index.js'))
  const attempts: AddonAttempt[] = []
  for (const path of candidates) {
    if (!existsSync(path)) {
      attempts.push({ path, error: 'not found' })
      continue
    }
    try {
      return require(path) as NativeAddon
    } catch (error) {
      attempts.push({ path, error: (error as Error).message.split('\n')[0] ?? String(error) })
    }
  }
  const lines = attempts.map((a) => `  - ${a.path}: ${a.error}`).join('\n')
  const err = new Error(
    `@membrane/bpf-loader-napi: the native addon could not be loaded. Tried:\n${lines}\n` +
      'Build it with `node tools/native-build.mjs` (needs libbpf-dev, libelf-dev, zlib, g++, python3).',
  ) as Error & { attempts: AddonAttempt[] }
  err.attempts = attempts
  throw err
}
