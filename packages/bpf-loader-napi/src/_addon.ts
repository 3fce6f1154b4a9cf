import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The raw N-API binding (src/native/*.cc). Internal: the public API wraps every call. */
export interface NativeAddon {
  libbpfVersion: string
  close(fd: number): void
  setDebug(on: boolean): void
  NativeObject: new (source: string | Buffer, pinRoot?: string, name?: string) => NativeObjectHandle
  /**
   * Binds a map's element slot (16-byte header, key at 16, value at 16 + align8(keySize)) and
   * returns the function that runs the element call the header names on it (see maps.cc).
   */
  mapBindSlot(slot: ArrayBuffer, keySize: number, valueStride: number): () => undefined
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

/** `glibc` or `musl`: the C library this Node.js runs on (prebuilt addons are per libc). */
export function runningLibc(): 'glibc' | 'musl' {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }
  return report?.header?.glibcVersionRuntime ? 'glibc' : 'musl'
}

/**
 * Prebuilt addons in `dir` (node-gyp-build's layout: `prebuilds/<platform>-<arch>/
 * <name>.<tags>.node`, tags such as `napi` and `glibc`/`musl`) that fit this libc; a file
 * without a libc tag fits any.
 */
export function prebuiltCandidates(dir: string, libc = runningLibc()): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return [join(dir, `membrane_bpf.napi.${libc}.node`)]
  }
  const fits = names.filter((n) => {
    if (!n.endsWith('.node')) return false
    const tags = n.split('.').slice(1, -1)
    const tagged = tags.find((t) => t === 'glibc' || t === 'musl')
    return tagged === undefined || tagged === libc
  })
  return fits.length > 0
    ? fits.sort().map((n) => join(dir, n))
    : [join(dir, `membrane_bpf.napi.${libc}.node`)]
}

/**
 * Candidate paths, most specific first: `$MEMBRANE_BPF_ADDON`, then a from-source build
 * (`build/Release`, `build/Debug`: it wins over the prebuilt, as with node-gyp-build), then the
 * prebuilt addon shipped in `prebuilds/<platform>-<arch>/`.
 */
export function addonCandidates(): string[] {
  const pkgRoot = resolve(here(), '..')
  const out: string[] = []
  const env = process.env.MEMBRANE_BPF_ADDON
  if (env) out.push(resolve(env))
  for (const dir of ['build/Release', 'build/Debug']) {
    out.push(join(pkgRoot, dir, 'membrane_bpf.node'))
  }
  out.push(...prebuiltCandidates(join(pkgRoot, 'prebuilds', `${process.platform}-${process.arch}`)))
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

/** What a user runs when no addon loads: the runtime library, or a build from source. */
export function addonHelp(attempts: readonly AddonAttempt[]): string {
  const lines: string[] = []
  if (attempts.some((a) => /libbpf\.so/.test(a.error)))
    lines.push(
      'The prebuilt addon links the system libbpf 1.x (libbpf.so.1) at run time; install it:',
      '  apt-get install libbpf1        # Debian 12+, Ubuntu 24.04+ (brings libelf1 and zlib1g)',
      '  dnf install libbpf             # Fedora, RHEL 9',
    )
  lines.push(
    `A prebuilt addon ships for linux-x64 with glibc (this is ${process.platform}-${process.arch}, ${process.platform === 'linux' ? runningLibc() : 'not Linux'}). To build it from source instead`,
    'in your project (needs libbpf-dev libelf-dev zlib1g-dev g++ make python3, and Node.js headers):',
    '  npm install-scripts approve @membrane/bpf-loader-napi   # npm 11: allow its install script',
    '  npm rebuild @membrane/bpf-loader-napi                   # runs it: node-gyp rebuild',
    'Inside the Membrane repository: npm run build:native.',
  )
  return lines.join('\n')
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
    `@membrane/bpf-loader-napi: the native addon could not be loaded. Tried:\n${lines}\n${addonHelp(attempts)}`,
  ) as Error & { attempts: AddonAttempt[] }
  err.attempts = attempts
  throw err
}
