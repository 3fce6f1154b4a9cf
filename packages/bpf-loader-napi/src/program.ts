import { unlinkSync } from 'node:fs'
import { loadAddon, type NativeAddon } from './_addon'
import { checkIfname, checkPinPath } from './_paths'
import { type ProgramType, programTypeName } from './constants'
import {
  BpfError,
  BpfErrorCode,
  closed,
  invalid,
  NotSupportedError,
  native,
  nativeAsync,
} from './errors'

/** Options of {@link BpfProgram.testRun} (BPF_PROG_TEST_RUN). */
export interface TestRunOptions {
  /** The packet (for tc/XDP programs: starting at the Ethernet header). */
  data: Buffer
  /** Context in, e.g. a `struct __sk_buff` for tc programs (mark, priority, ifindex...). */
  ctxIn?: Buffer
  /** Bytes of context to read back (default: ctxIn's length when given, else none). */
  ctxSizeOut?: number
  /** Run the program this many times (duration is the mean). Default 1. */
  repeat?: number
  /** Room for the output packet. Default data.length + 1024. */
  dataSizeOut?: number
  /** BPF_F_TEST_* flags. */
  flags?: number
  /** CPU to run on, with BPF_F_TEST_RUN_ON_CPU. */
  cpu?: number
}

/** Result of {@link BpfProgram.testRun}. */
export interface TestRunResult {
  /** The program's return value (TC_ACT_*, XDP_*...). */
  retval: number
  /** The packet after the run. */
  data: Buffer
  /** Context after the run (when ctxSizeOut > 0). */
  ctx: Buffer
  /** Mean run time per repetition in nanoseconds. */
  durationNs: number
}

/** Options of {@link BpfProgram.attachTc}. */
export interface TcAttachOptions {
  ifindex?: number
  ifname?: string
  direction: 'ingress' | 'egress'
  /** Filter priority (1..65535); 0 lets the kernel choose. Default 1. */
  priority?: number
  /** Filter handle; 0 lets the kernel choose. Default 1. */
  handle?: number
  /** Replace an existing filter with the same handle/priority. Default false. */
  replace?: boolean
}

/** Options of {@link BpfProgram.attachXdp}. */
export interface XdpAttachOptions {
  ifindex?: number
  ifname?: string
  /** 'generic' (skb mode, any device) or 'native' (driver mode). Default 'generic'. */
  mode?: 'generic' | 'native'
  /** Replace whatever program is attached. Default false (EBUSY when one is there). */
  replace?: boolean
}

/** Cgroup attach points (socket address hooks, sock_create, skb ingress/egress, sock_ops). */
export const CGROUP_ATTACH_TYPES = {
  connect4: 'BPF_CGROUP_INET4_CONNECT',
  connect6: 'BPF_CGROUP_INET6_CONNECT',
  sendmsg4: 'BPF_CGROUP_UDP4_SENDMSG',
  sendmsg6: 'BPF_CGROUP_UDP6_SENDMSG',
  recvmsg4: 'BPF_CGROUP_UDP4_RECVMSG',
  recvmsg6: 'BPF_CGROUP_UDP6_RECVMSG',
  getpeername4: 'BPF_CGROUP_INET4_GETPEERNAME',
  getpeername6: 'BPF_CGROUP_INET6_GETPEERNAME',
  sock_create: 'BPF_CGROUP_INET_SOCK_CREATE',
  bind4: 'BPF_CGROUP_INET4_BIND',
  bind6: 'BPF_CGROUP_INET6_BIND',
  ingress: 'BPF_CGROUP_INET_INGRESS',
  egress: 'BPF_CGROUP_INET_EGRESS',
  sock_ops: 'BPF_CGROUP_SOCK_OPS',
} as const

/** A cgroup attach point name. */
export type CgroupAttachType = keyof typeof CGROUP_ATTACH_TYPES

/** Options of {@link BpfProgram.attachCgroup}. */
export interface CgroupAttachOptions {
  /** A cgroup v2 directory, e.g. /sys/fs/cgroup/my.slice. */
  cgroupPath: string
  attachType: CgroupAttachType
  /**
   * 'link' (default): a bpf_link, detached when closed unless pinned, always multi-attach.
   * 'attach': BPF_PROG_ATTACH, which stays until detached.
   */
  mode?: 'link' | 'attach'
  /** With mode 'attach': BPF_F_ALLOW_MULTI (default true); false means exclusive. */
  multi?: boolean
}

const TCX_INGRESS = 46
const TCX_EGRESS = 47

const PROG_CTOR = Symbol('BpfProgram.ctor')

/** @internal */
export interface ProgramOrigin {
  fd: number
  owned: boolean
  name?: string
  section?: string
  type?: number
  pinPath?: string
  /** Keeps the owning object alive (and its fds open) while this program is reachable. */
  owner?: object
}

function resolveIfindex(addon: NativeAddon, o: { ifindex?: number; ifname?: string }): number {
  if (o.ifindex !== undefined) {
    if (!Number.isInteger(o.ifindex) || o.ifindex <= 0)
      throw invalid('ifindex', 'a positive integer', o.ifindex)
    return o.ifindex
  }
  if (o.ifname === undefined) throw invalid('attach target', 'ifindex or ifname')
  checkIfname(o.ifname)
  const name = o.ifname
  return native(() => addon.ifNameToIndex(name), `interface ${name}`)
}

/** A loaded BPF program. */
export class BpfProgram {
  readonly #addon: NativeAddon
  #fd: number
  readonly #owned: boolean
  readonly name: string
  /** The ELF section it came from (`tc`, `cgroup/connect4`...), when loaded from an object. */
  readonly section: string | undefined
  readonly type: ProgramType
  #pinPath: string | undefined
  #closed = false
  // Strong reference to the owning BpfObject (see BpfMap): GC must not close our fd.
  readonly #owner: object | undefined

  /** @internal use BpfObject.program or openPinnedProgram */
  constructor(token: symbol, origin: ProgramOrigin) {
    if (token !== PROG_CTOR)
      throw new TypeError('BpfProgram is created by BpfObject.program or openPinnedProgram')
    this.#addon = loadAddon()
    this.#fd = origin.fd
    this.#owned = origin.owned
    this.section = origin.section
    this.#pinPath = origin.pinPath
    this.#owner = origin.owner
    if (origin.name === undefined || origin.type === undefined) {
      const info = native(() => this.#addon.progInfo(origin.fd))
      this.name = origin.name ?? info.name
      this.type = programTypeName(origin.type ?? info.type)
    } else {
      this.name = origin.name
      this.type = programTypeName(origin.type)
    }
  }

  /** @internal */
  static fromFd(origin: ProgramOrigin): BpfProgram {
    return new BpfProgram(PROG_CTOR, origin)
  }

  /** The program's file descriptor. */
  get fd(): number {
    this.#check()
    return this.#fd
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Kernel id and tag. */
  get info(): { id: number; tag: string } {
    const i = native(() => this.#addon.progInfo(this.fd))
    return { id: i.id, tag: i.tag }
  }

  #check(): void {
    if (this.#closed) throw closed(`program '${this.name}'`)
  }

  /**
   * Runs the program once (or `repeat` times) on a crafted packet with BPF_PROG_TEST_RUN.
   *
   * @example
   * const { retval, data } = await prog.testRun({ data: packet })
   */
  async testRun(options: TestRunOptions): Promise<TestRunResult> {
    this.#check()
    if (!Buffer.isBuffer(options.data))
      throw invalid(`testRun of '${this.name}' data`, 'a Buffer', options.data)
    if (options.ctxIn !== undefined && !Buffer.isBuffer(options.ctxIn))
      throw invalid(`testRun of '${this.name}' ctxIn`, 'a Buffer', options.ctxIn)
    const repeat = options.repeat ?? 1
    if (!Number.isInteger(repeat) || repeat < 0)
      throw invalid('testRun repeat', 'a non-negative integer', repeat)
    const dataSizeOut = options.dataSizeOut ?? options.data.length + 1024
    const ctxSizeOut = options.ctxSizeOut ?? options.ctxIn?.length ?? 0
    const fd = this.#fd
    return nativeAsync(
      () =>
        this.#addon.progTestRun(
          fd,
          options.data,
          dataSizeOut,
          options.ctxIn ?? null,
          ctxSizeOut,
          repeat,
          options.flags ?? 0,
          options.cpu ?? 0,
        ),
      `testRun of '${this.name}'`,
    )
  }

  /** Attaches to a clsact hook (created when missing) with bpf_tc_attach. */
  async attachTc(options: TcAttachOptions): Promise<TcAttachment> {
    this.#check()
    if (options.direction !== 'ingress' && options.direction !== 'egress')
      throw invalid('attachTc direction', "'ingress' or 'egress'", options.direction)
    const ifindex = resolveIfindex(this.#addon, options)
    const priority = options.priority ?? 1
    const handle = options.handle ?? 1
    if (!Number.isInteger(priority) || priority < 0 || priority > 0xffff)
      throw invalid('attachTc priority', 'an integer 0..65535', priority)
    if (!Number.isInteger(handle) || handle < 0)
      throw invalid('attachTc handle', 'a non-negative integer', handle)
    const ingress = options.direction === 'ingress'
    const r = await nativeAsync(
      () =>
        this.#addon.tcAttach(
          ifindex,
          ingress,
          this.#fd,
          priority,
          handle,
          options.replace === true,
        ),
      `attachTc of '${this.name}'`,
    )
    return new TcAttachment(this.#addon, ifindex, options.direction, r.handle, r.priority)
  }

  /** Attaches as a tcx link (Linux 6.6+); NotSupportedError on older kernels. */
  async attachTcx(options: {
    ifindex?: number
    ifname?: string
    direction: 'ingress' | 'egress'
  }): Promise<BpfLink> {
    this.#check()
    if (options.direction !== 'ingress' && options.direction !== 'egress')
      throw invalid('attachTcx direction', "'ingress' or 'egress'", options.direction)
    const ifindex = resolveIfindex(this.#addon, options)
    const type = options.direction === 'ingress' ? TCX_INGRESS : TCX_EGRESS
    try {
      const fd = await nativeAsync(
        () => this.#addon.linkCreate(this.#fd, ifindex, type, 0),
        `attachTcx of '${this.name}'`,
      )
      return new BpfLink(LINK_CTOR, this.#addon, fd, `tcx/${options.direction}`)
    } catch (error) {
      if (error instanceof BpfError && error.errno === 22 && !kernelAtLeast(this.#addon, 6, 6)) {
        throw new NotSupportedError('tcx', {
          minKernel: '6.6',
          errno: 22,
          call: 'bpf_link_create',
          cause: error,
        })
      }
      throw error
    }
  }

  /** Attaches to a device's XDP hook (generic or native mode) through netlink. */
  async attachXdp(options: XdpAttachOptions): Promise<XdpAttachment> {
    this.#check()
    const c = this.#addon.constants
    const ifindex = resolveIfindex(this.#addon, options)
    const mode = options.mode ?? 'generic'
    if (mode !== 'generic' && mode !== 'native')
      throw invalid('attachXdp mode', "'generic' or 'native'", mode)
    const modeFlag = mode === 'generic' ? c.XDP_FLAGS_SKB_MODE! : c.XDP_FLAGS_DRV_MODE!
    const flags = modeFlag | (options.replace ? 0 : c.XDP_FLAGS_UPDATE_IF_NOEXIST!)
    // Our own descriptor: detaching later names this program even if the object is closed.
    const own = native(() => this.#addon.dupFd(this.#fd))
    try {
      await nativeAsync(
        () => this.#addon.xdpAttach(ifindex, own, flags, -1),
        `attachXdp of '${this.name}'`,
      )
    } catch (error) {
      this.#addon.close(own)
      throw error
    }
    return new XdpAttachment(this.#addon, ifindex, mode, modeFlag, own)
  }

  /** Attaches to a cgroup v2 hook: a bpf_link (default) or BPF_PROG_ATTACH with ALLOW_MULTI. */
  async attachCgroup(options: CgroupAttachOptions): Promise<BpfLink> {
    this.#check()
    const name = CGROUP_ATTACH_TYPES[options.attachType]
    if (name === undefined)
      throw invalid(
        'attachCgroup attachType',
        `one of ${Object.keys(CGROUP_ATTACH_TYPES).join(', ')}`,
        options.attachType,
      )
    const type = this.#addon.constants[name]!
    if (typeof options.cgroupPath !== 'string' || !options.cgroupPath.startsWith('/'))
      throw invalid(
        'attachCgroup cgroupPath',
        'an absolute cgroup v2 directory',
        options.cgroupPath,
      )
    const cgPath = options.cgroupPath
    const cg = native(() => this.#addon.openDir(cgPath), `cgroup ${cgPath}`)
    try {
      if ((options.mode ?? 'link') === 'link') {
        const fd = await nativeAsync(
          () => this.#addon.linkCreate(this.#fd, cg, type, 0),
          `attachCgroup of '${this.name}'`,
        )
        return new BpfLink(LINK_CTOR, this.#addon, fd, `cgroup/${options.attachType}`)
      }
      const flags = options.multi === false ? 0 : this.#addon.constants.BPF_F_ALLOW_MULTI!
      native(
        () => this.#addon.progAttach(this.#fd, cg, type, flags),
        `attachCgroup of '${this.name}'`,
      )
      const prog = native(() => this.#addon.dupFd(this.#fd))
      const target = native(() => this.#addon.dupFd(cg))
      return new BpfLink(LINK_CTOR, this.#addon, -1, `cgroup/${options.attachType}`, {
        prog,
        target,
        type,
      })
    } finally {
      this.#addon.close(cg)
    }
  }

  /** Pins the program at `path` on bpffs. */
  pin(path: string): void {
    this.#check()
    checkPinPath(path)
    native(() => this.#addon.objPin(this.#fd, path))
    this.#pinPath = path
  }

  /** Removes the pin made by {@link BpfProgram.pin} (or the one it was opened from). */
  unpin(): void {
    if (!this.#pinPath)
      throw new BpfError(`program '${this.name}' is not pinned`, { code: BpfErrorCode.BAD_STATE })
    try {
      unlinkSync(this.#pinPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    this.#pinPath = undefined
  }

  /** Releases the descriptor (a no-op for an object's program: the object owns it). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#owned) this.#addon.close(this.#fd)
    this.#fd = -1
  }

  /** @internal */
  markClosed(): void {
    this.#closed = true
    this.#fd = -1
  }

  /** @internal the owning object, if any */
  get owner(): object | undefined {
    return this.#owner
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

const LINK_CTOR = Symbol('BpfLink.ctor')

/**
 * An attachment held by a file descriptor (bpf_link), or a legacy BPF_PROG_ATTACH. Closing an
 * unpinned link detaches it; a pinned link stays until unpinned and closed, or detached.
 */
export class BpfLink {
  readonly #addon: NativeAddon
  #fd: number
  readonly #legacy: { prog: number; target: number; type: number } | undefined
  #pinPath: string | undefined
  #closed = false
  /** What it attaches (`cgroup/connect4`, `tcx/ingress`, `pinned`...). */
  readonly kind: string

  /** @internal */
  constructor(
    token: symbol,
    addon: NativeAddon,
    fd: number,
    kind: string,
    legacy?: { prog: number; target: number; type: number },
    pinPath?: string,
  ) {
    if (token !== LINK_CTOR)
      throw new TypeError('BpfLink is created by attach calls or openPinnedLink')
    this.#addon = addon
    this.#fd = fd
    this.kind = kind
    this.#legacy = legacy
    this.#pinPath = pinPath
  }

  /** The link's file descriptor (-1 for a legacy BPF_PROG_ATTACH attachment). */
  get fd(): number {
    this.#check()
    return this.#fd
  }

  get closed(): boolean {
    return this.#closed
  }

  #check(): void {
    if (this.#closed) throw closed(`link ${this.kind}`)
  }

  /** Kernel link id and the attached program's id (bpf_link only). */
  get info(): { id: number; progId: number; type: number } {
    this.#check()
    if (this.#legacy)
      throw new BpfError('a BPF_PROG_ATTACH attachment has no link info', {
        code: BpfErrorCode.BAD_STATE,
      })
    return native(() => this.#addon.linkInfo(this.#fd))
  }

  /** Pins the link so it outlives this process. */
  pin(path: string): void {
    this.#check()
    if (this.#legacy)
      throw new BpfError('a BPF_PROG_ATTACH attachment cannot be pinned', {
        code: BpfErrorCode.BAD_STATE,
      })
    checkPinPath(path)
    native(() => this.#addon.objPin(this.#fd, path))
    this.#pinPath = path
  }

  /** Removes the link's pin (it stays attached while this handle is open). */
  unpin(): void {
    if (!this.#pinPath)
      throw new BpfError(`link ${this.kind} is not pinned`, { code: BpfErrorCode.BAD_STATE })
    try {
      unlinkSync(this.#pinPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    this.#pinPath = undefined
  }

  /**
   * Swaps the attached program atomically (BPF_LINK_UPDATE): no moment without a program.
   * With `expected`, only if that program is still the attached one (else EPERM).
   */
  update(program: BpfProgram, expected?: BpfProgram): void {
    this.#check()
    if (this.#legacy)
      throw new BpfError('a BPF_PROG_ATTACH attachment cannot be updated; use a link', {
        code: BpfErrorCode.BAD_STATE,
      })
    const prog = program.fd
    const old = expected ? expected.fd : -1
    native(() => this.#addon.linkUpdate(this.#fd, prog, old), `link ${this.kind} update`)
  }

  /** Detaches now (even when pinned) and closes the handle. */
  detach(): void {
    if (this.#closed) return
    if (this.#legacy) {
      const l = this.#legacy
      native(() => this.#addon.progDetach(l.prog, l.target, l.type))
    } else {
      native(() => this.#addon.linkDetach(this.#fd))
    }
    this.close()
  }

  /** Closes the handle: an unpinned link detaches; a legacy attachment is detached too. */
  close(): void {
    if (this.#closed) return
    if (this.#legacy) {
      const l = this.#legacy
      try {
        this.#addon.progDetach(l.prog, l.target, l.type)
      } finally {
        this.#addon.close(l.prog)
        this.#addon.close(l.target)
      }
    } else {
      this.#addon.close(this.#fd)
    }
    this.#closed = true
    this.#fd = -1
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/** A tc (clsact) filter made by {@link BpfProgram.attachTc}. */
export class TcAttachment {
  #detached = false
  readonly #addon: NativeAddon
  /** @internal made by BpfProgram.attachTc */
  constructor(
    addon: NativeAddon,
    readonly ifindex: number,
    readonly direction: 'ingress' | 'egress',
    readonly handle: number,
    readonly priority: number,
  ) {
    this.#addon = addon
  }

  /** Removes the filter (the clsact qdisc stays). Resolves false when it was already gone. */
  async detach(): Promise<boolean> {
    if (this.#detached) return false
    this.#detached = true
    return nativeAsync(
      () =>
        this.#addon.tcDetach(
          this.ifindex,
          this.direction === 'ingress',
          this.priority,
          this.handle,
        ),
      `tc detach on ifindex ${this.ifindex}`,
    )
  }

  /** Synchronous {@link TcAttachment.detach}. */
  close(): void {
    if (this.#detached) return
    this.#detached = true
    native(() =>
      this.#addon.tcDetachSync(
        this.ifindex,
        this.direction === 'ingress',
        this.priority,
        this.handle,
      ),
    )
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/** An XDP program on a device, made by {@link BpfProgram.attachXdp}. */
export class XdpAttachment {
  #progFd: number
  readonly #addon: NativeAddon
  readonly #modeFlag: number
  /** @internal made by BpfProgram.attachXdp */
  constructor(
    addon: NativeAddon,
    readonly ifindex: number,
    readonly mode: 'generic' | 'native',
    modeFlag: number,
    progFd: number,
  ) {
    this.#addon = addon
    this.#modeFlag = modeFlag
    this.#progFd = progFd
  }

  /** Removes the program if it is still ours (a replacement by someone else is left alone). */
  async detach(): Promise<void> {
    if (this.#progFd < 0) return
    const fd = this.#progFd
    this.#progFd = -1
    try {
      await nativeAsync(
        () =>
          this.#addon.xdpDetach(
            this.ifindex,
            this.#modeFlag | this.#addon.constants.XDP_FLAGS_REPLACE!,
            fd,
          ),
        `xdp detach on ifindex ${this.ifindex}`,
      )
    } finally {
      this.#addon.close(fd)
    }
  }

  /** Synchronous {@link XdpAttachment.detach}. */
  close(): void {
    if (this.#progFd < 0) return
    const fd = this.#progFd
    this.#progFd = -1
    try {
      native(() =>
        this.#addon.xdpDetachSync(
          this.ifindex,
          this.#modeFlag | this.#addon.constants.XDP_FLAGS_REPLACE!,
          fd,
        ),
      )
    } finally {
      this.#addon.close(fd)
    }
  }

  /** The id of the XDP program attached to the device in this mode now (0 when none). */
  attachedProgramId(): number {
    return native(() => this.#addon.xdpQueryId(this.ifindex, this.#modeFlag))
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/** Opens a program pinned on bpffs. */
export function openPinnedProgram(path: string): BpfProgram {
  checkPinPath(path)
  const addon = loadAddon()
  const fd = native(() => addon.objGet(path), `openPinnedProgram ${path}`)
  try {
    return BpfProgram.fromFd({ fd, owned: true, pinPath: path })
  } catch (error) {
    addon.close(fd)
    throw error
  }
}

/** Opens a link pinned on bpffs (closing the handle leaves the pinned link attached). */
export function openPinnedLink(path: string): BpfLink {
  checkPinPath(path)
  const addon = loadAddon()
  const fd = native(() => addon.objGet(path), `openPinnedLink ${path}`)
  return new BpfLink(LINK_CTOR, addon, fd, 'pinned', undefined, path)
}

function kernelAtLeast(addon: NativeAddon, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(addon.kernelRelease())
  if (!m) return true
  const [maj, min] = [Number(m[1]), Number(m[2])]
  return maj > major || (maj === major && min >= minor)
}
