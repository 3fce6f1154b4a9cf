import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { type RunResult, run, runSync } from './exec'
import { uniqueName } from './names'

/** One network namespace made for a test (`ip netns add`), with helpers to run things in it. */
export interface NetNamespace {
  /** The namespace name, `/run/netns/<name>`. */
  readonly name: string
  /** Run a program inside the namespace (argument array, no shell). */
  exec(file: string, args?: readonly string[]): Promise<RunResult>
  /**
   * Start a long-running program inside the namespace. It is killed when the namespace's
   * network is cleaned up, if still running.
   */
  spawn(file: string, args?: readonly string[], options?: SpawnOptions): ChildProcess
}

/** A veth pair whose ends live in two namespaces (or the host, `null`). */
export interface VethPair {
  /** Interface name of end A (in `nsA`, or on the host when `nsA` is null). */
  readonly a: string
  /** Interface name of end B. */
  readonly b: string
  readonly nsA: NetNamespace | null
  readonly nsB: NetNamespace | null
  /** Address of end A without prefix length, when one was assigned. */
  readonly addrA?: string
  readonly addrB?: string
}

export interface VethOptions {
  /** Namespace of end A; `null` keeps it on the host. Default: host. */
  nsA?: NetNamespace | null
  /** Namespace of end B; `null` keeps it on the host. */
  nsB?: NetNamespace | null
  /** CIDR address for end A, e.g. `10.200.0.1/24`. */
  addrA?: string
  addrB?: string
  /** Name of end B inside its namespace (default: unique). Useful for `eth0`. */
  nameB?: string
  /** ifindex for end A (e.g. >= 65536, to test ifindex-keyed code); EEXIST when it is taken. */
  indexA?: number
}

/**
 * A scope that owns every namespace, interface and process a test creates and removes them
 * all in `cleanup()` (also registered for process exit, so an aborted run cleans up too;
 * a crashed process's leftovers are swept by {@link sweepLeftovers} at the next run).
 *
 * @example
 * const net = new TestNetwork()
 * afterAll(() => net.cleanup())
 * const [a, b] = [await net.namespace(), await net.namespace()]
 * await net.veth({ nsA: a, nsB: b, addrA: '10.9.0.1/24', addrB: '10.9.0.2/24' })
 */
export class TestNetwork {
  readonly #namespaces = new Set<string>()
  readonly #hostLinks = new Set<string>()
  readonly #children = new Set<ChildProcess>()
  readonly #onExit = () => this.cleanupSync()
  #closed = false

  constructor() {
    process.once('exit', this.#onExit)
  }

  /** Create a namespace with loopback up. */
  async namespace(): Promise<NetNamespace> {
    this.#assertOpen()
    const name = uniqueName()
    await run('ip', ['netns', 'add', name])
    this.#namespaces.add(name)
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    return this.#wrap(name)
  }

  /** Create a veth pair, move its ends into place, assign addresses and bring both ends up. */
  async veth(options: VethOptions = {}): Promise<VethPair> {
    this.#assertOpen()
    const base = uniqueName()
    const a = `${base}a`
    const tmpB = `${base}b`
    const nsA = options.nsA ?? null
    const nsB = options.nsB ?? null
    const index = options.indexA
    if (index !== undefined && (!Number.isInteger(index) || index < 1 || index > 0x7fffffff))
      throw new RangeError(`veth indexA: expected an ifindex 1..2^31-1, got ${String(index)}`)
    await run('ip', [
      'link',
      'add',
      a,
      ...(index !== undefined ? ['index', String(index)] : []),
      'type',
      'veth',
      'peer',
      'name',
      tmpB,
    ])
    this.#hostLinks.add(a)
    try {
      if (nsA) {
        await run('ip', ['link', 'set', a, 'netns', nsA.name])
        this.#hostLinks.delete(a)
      }
      let b = tmpB
      if (nsB) await run('ip', ['link', 'set', tmpB, 'netns', nsB.name])
      if (options.nameB && options.nameB !== tmpB) {
        await run('ip', [...nsArgs(nsB), 'link', 'set', tmpB, 'name', options.nameB])
        b = options.nameB
      }
      if (options.addrA) await run('ip', [...nsArgs(nsA), 'addr', 'add', options.addrA, 'dev', a])
      if (options.addrB) await run('ip', [...nsArgs(nsB), 'addr', 'add', options.addrB, 'dev', b])
      await run('ip', [...nsArgs(nsA), 'link', 'set', a, 'up'])
      await run('ip', [...nsArgs(nsB), 'link', 'set', b, 'up'])
      const pair: VethPair = { a, b, nsA, nsB }
      return {
        ...pair,
        ...(options.addrA ? { addrA: stripPrefix(options.addrA) } : {}),
        ...(options.addrB ? { addrB: stripPrefix(options.addrB) } : {}),
      }
    } catch (error) {
      // Deleting either end deletes the pair.
      await run('ip', [...nsArgs(nsA), 'link', 'del', a]).catch(() => {})
      this.#hostLinks.delete(a)
      throw error
    }
  }

  /** Namespaces still owned by this scope. */
  get namespaces(): string[] {
    return [...this.#namespaces]
  }

  /** Kill spawned processes, delete host-side links and namespaces. Safe to call twice. */
  async cleanup(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    process.removeListener('exit', this.#onExit)
    await Promise.all([...this.#children].map((c) => killAndWait(c)))
    this.#children.clear()
    for (const link of this.#hostLinks) await run('ip', ['link', 'del', link]).catch(() => {})
    this.#hostLinks.clear()
    for (const ns of this.#namespaces) await run('ip', ['netns', 'del', ns]).catch(() => {})
    this.#namespaces.clear()
  }

  /** Exit-time cleanup: synchronous, best effort. */
  cleanupSync(): void {
    for (const child of this.#children) child.kill('SIGKILL')
    for (const link of this.#hostLinks) tryQuiet(() => runSync('ip', ['link', 'del', link]))
    for (const ns of this.#namespaces) tryQuiet(() => runSync('ip', ['netns', 'del', ns]))
    this.#children.clear()
    this.#hostLinks.clear()
    this.#namespaces.clear()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cleanup()
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('TestNetwork is already cleaned up')
  }

  #wrap(name: string): NetNamespace {
    return {
      name,
      exec: (file, args = []) => run('ip', ['netns', 'exec', name, file, ...args]),
      spawn: (file, args = [], options = {}) => {
        const child = spawn('ip', ['netns', 'exec', name, file, ...args], {
          stdio: 'pipe',
          ...options,
        })
        this.#children.add(child)
        child.once('exit', () => this.#children.delete(child))
        return child
      },
    }
  }
}

function nsArgs(ns: NetNamespace | null): string[] {
  return ns ? ['-n', ns.name] : []
}

function stripPrefix(cidr: string): string {
  return cidr.split('/')[0] ?? cidr
}

function tryQuiet(fn: () => void): void {
  try {
    fn()
  } catch {
    // best effort at exit
  }
}

/** SIGTERM a child, then SIGKILL if it has not exited within `graceMs`. */
export function killAndWait(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}
