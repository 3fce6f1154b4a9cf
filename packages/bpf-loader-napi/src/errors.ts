import { dirname } from 'node:path'
import { loadAddon } from './_addon'

/**
 * Stable error codes. Kernel failures use the errno name (`EPERM`, `ENOENT`, `E2BIG`...);
 * errors raised by the loader itself use the names below.
 */
export const BpfErrorCode = {
  /** An argument failed validation before reaching the kernel (wrong key size, bad name...). */
  INVALID_INPUT: 'INVALID_INPUT',
  /** The handle (object, map, program, link, ring buffer) was already closed. */
  CLOSED: 'CLOSED',
  /** An existing pin is incompatible with the map the object defines (type/sizes/flags). */
  PIN_MISMATCH: 'PIN_MISMATCH',
  /** The verifier rejected a program: see {@link VerifierError}. */
  VERIFIER_REJECTED: 'VERIFIER_REJECTED',
  /** The running kernel lacks a feature: see {@link NotSupportedError}. */
  NOT_SUPPORTED: 'NOT_SUPPORTED',
  /** The object is in the wrong state for the call (setGlobal after load, load twice...). */
  BAD_STATE: 'BAD_STATE',
} as const

/** A loader error code: one of {@link BpfErrorCode} or an errno name such as `EPERM`. */
export type BpfErrorCodeName = keyof typeof BpfErrorCode | (string & {})

/** Options of {@link BpfError}. */
export interface BpfErrorOptions {
  code: BpfErrorCodeName
  /** Positive errno, 0 when the error did not come from the kernel. */
  errno?: number
  /** The syscall or libbpf function that failed (`bpf_map_update_elem`, `bpf_tc_attach`...). */
  call?: string
  /** What libbpf printed while the call ran, when anything. */
  libbpfLog?: string
  hint?: string
  cause?: unknown
}

/**
 * Every error the loader throws. Kernel errors carry `errno` and `call`; known errnos carry a
 * `hint` (EPERM: privileges; ENOENT on a pin: bpffs not mounted; E2BIG: sizes).
 */
export class BpfError extends Error {
  override name = 'BpfError'
  readonly code: BpfErrorCodeName
  readonly errno: number
  readonly call: string
  readonly hint: string | undefined
  readonly libbpfLog: string | undefined

  constructor(message: string, options: BpfErrorOptions) {
    super(options.hint ? `${message}; hint: ${options.hint}` : message, { cause: options.cause })
    this.code = options.code
    this.errno = options.errno ?? 0
    this.call = options.call ?? ''
    this.hint = options.hint
    this.libbpfLog = options.libbpfLog
  }
}

/**
 * The verifier rejected a program. `log` keeps the whole verifier log, line by line; the message
 * shows its last meaningful lines.
 */
export class VerifierError extends BpfError {
  override name = 'VerifierError'
  /** The rejected program. */
  readonly program: string
  /** The full verifier log. */
  readonly log: string[]

  constructor(program: string, log: string[], options: Omit<BpfErrorOptions, 'code'>) {
    const tail = meaningfulTail(log, 6)
    super(
      `the verifier rejected program '${program}'${options.errno ? ` (${errnoName(options.errno)})` : ''}:\n  ${tail.join('\n  ')}`,
      { ...options, code: BpfErrorCode.VERIFIER_REJECTED },
    )
    this.program = program
    this.log = log
  }
}

/** The running kernel lacks a feature (tcx links, a map type...). */
export class NotSupportedError extends BpfError {
  override name = 'NotSupportedError'
  /** The missing feature, e.g. `tcx`. */
  readonly feature: string
  /** The first kernel version that has it, when known (e.g. `6.6`). */
  readonly minKernel: string | undefined

  constructor(feature: string, options: Omit<BpfErrorOptions, 'code'> & { minKernel?: string }) {
    super(
      `${feature} is not supported by this kernel${options.minKernel ? ` (needs Linux ${options.minKernel} or newer)` : ''}`,
      { ...options, code: BpfErrorCode.NOT_SUPPORTED },
    )
    this.feature = feature
    this.minKernel = options.minKernel
  }
}

function meaningfulTail(log: string[], n: number): string[] {
  const lines = log.filter(
    (l) => l.trim() !== '' && !/^(processed \d+ insns|verification time|stack depth)/.test(l),
  )
  const tail = lines.slice(-n)
  return tail.length > 0 ? tail : ['(empty verifier log)']
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  4: 'EINTR',
  5: 'EIO',
  7: 'E2BIG',
  9: 'EBADF',
  11: 'EAGAIN',
  12: 'ENOMEM',
  13: 'EACCES',
  14: 'EFAULT',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  20: 'ENOTDIR',
  22: 'EINVAL',
  24: 'EMFILE',
  28: 'ENOSPC',
  34: 'ERANGE',
  38: 'ENOSYS',
  67: 'ENOLINK',
  88: 'ENOTSOCK',
  92: 'ENOPROTOOPT',
  95: 'EOPNOTSUPP',
  524: 'ENOTSUPP',
}

/** The errno's symbolic name (`EPERM`), or `E<number>`. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`
}

interface NativeErrorShape extends Error {
  errno?: number
  syscode?: string
  call?: string
  detail?: string
  membraneCode?: string
  libbpfLog?: string
  verifier?: boolean
  program?: string
  log?: string[]
}

const PIN_CALLS = new Set(['bpf_obj_get', 'bpf_obj_pin'])

function hintFor(errno: number, call: string, detail: string): string | undefined {
  switch (errno) {
    case 1:
      return 'the kernel refused: run as root or grant CAP_BPF (+CAP_NET_ADMIN for tc/XDP/cgroup attach, CAP_PERFMON for some helpers)'
    case 2:
      if (PIN_CALLS.has(call) && detail.startsWith('/')) {
        let fs: string | null = null
        try {
          fs = loadAddon().fsType(dirname(detail))
        } catch {
          fs = null
        }
        if (fs !== 'bpf')
          return `bpffs is not mounted at ${dirname(detail)} (mount -t bpf bpf /sys/fs/bpf) or the directory is missing`
        return `nothing is pinned at ${detail}`
      }
      return undefined
    case 7:
      return 'too big for the kernel: check key/value sizes and max_entries, program size (1M insns) or test-run data size'
    case 13:
      return 'permission denied: needs root/CAP_BPF, or the verifier/LSM refused'
    case 28:
      return call === 'bpf_object__load'
        ? 'the verifier log did not fit: pass a larger logSize to load()'
        : call === 'bpf_prog_test_run_opts'
          ? 'the output did not fit: pass a larger dataSizeOut/ctxSizeOut'
          : undefined
    default:
      return undefined
  }
}

/** Turns an error thrown by the native binding into a BpfError (others pass through). */
export function fromNative(error: unknown, context?: string): unknown {
  if (error instanceof BpfError) return error
  const e = error as NativeErrorShape
  if (!e || typeof e !== 'object' || typeof e.errno !== 'number') {
    if (e instanceof Error && /is closed/.test(e.message)) {
      return new BpfError(e.message, { code: BpfErrorCode.CLOSED, cause: e })
    }
    return error
  }
  const call = e.call ?? ''
  const detail = e.detail ?? ''
  if (e.verifier && e.log) {
    return new VerifierError(e.program ?? '?', e.log, {
      errno: e.errno,
      call,
      libbpfLog: e.libbpfLog,
    })
  }
  const message = context ? `${context}: ${e.message}` : e.message
  return new BpfError(message, {
    code: e.membraneCode ?? e.syscode ?? errnoName(e.errno),
    errno: e.errno,
    call,
    libbpfLog: e.libbpfLog,
    hint: e.membraneCode ? undefined : hintFor(e.errno, call, detail),
  })
}

/** Runs a native call, converting its errors. */
export function native<T>(fn: () => T, context?: string): T {
  try {
    return fn()
  } catch (error) {
    throw fromNative(error, context)
  }
}

/**
 * Awaits a native promise, converting its error and giving it the caller's stack (a worker's
 * rejection has none of its own).
 */
export async function nativeAsync<T>(start: () => Promise<T>, context?: string): Promise<T> {
  const site = new Error()
  try {
    return await start()
  } catch (error) {
    const converted = fromNative(error, context)
    if (converted instanceof Error && site.stack) {
      const head = `${converted.name}: ${converted.message}`
      converted.stack = `${head}\n${site.stack.split('\n').slice(1).join('\n')}`
    }
    throw converted
  }
}

/** An INVALID_INPUT error naming the input and what was expected. */
export function invalid(what: string, expected: string, got?: unknown): BpfError {
  const shown = got === undefined ? '' : `, got ${describe(got)}`
  return new BpfError(`${what}: expected ${expected}${shown}`, {
    code: BpfErrorCode.INVALID_INPUT,
  })
}

/** A CLOSED error naming the handle. */
export function closed(what: string): BpfError {
  return new BpfError(`${what} is closed`, { code: BpfErrorCode.CLOSED })
}

function describe(v: unknown): string {
  if (Buffer.isBuffer(v)) return `a ${v.length}-byte Buffer`
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v)
  if (typeof v === 'bigint') return `${v}n`
  if (v === null) return 'null'
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object'
  return String(v)
}
