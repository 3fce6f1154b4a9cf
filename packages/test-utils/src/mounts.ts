import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { runSync } from './exec'
import { uniqueName } from './names'

/** Where bpffs is mounted when the tests mount it. */
export const DEFAULT_BPFFS = '/sys/fs/bpf'
/** Where a cgroup v2 hierarchy is mounted when the machine has none we can use. */
export const DEFAULT_CGROUP2 = '/run/membrane/cgroupv2'

interface MountEntry {
  mountPoint: string
  fsType: string
}

function mounts(): MountEntry[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8')
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    // mountinfo: id parent major:minor root mountpoint options [optional...] - fstype source superopts
    const fields = line.split(' ')
    const dash = fields.indexOf('-')
    const mountPoint = fields[4]
    const fsType = fields[dash + 1]
    if (mountPoint && fsType) out.push({ mountPoint: mountPoint.replace(/\\040/g, ' '), fsType })
  }
  return out
}

/** The mount point of a filesystem of `fsType` at `path`, if one is mounted exactly there. */
export function isMounted(path: string, fsType: string): boolean {
  return mounts().some((m) => m.mountPoint === path && m.fsType === fsType)
}

/**
 * A usable mount point of a filesystem type (`bpf`, `cgroup2`), if any: the most recent mount
 * of that type whose directory is still reachable. A later mount over a parent directory (say
 * cgroup2 on /sys/fs/cgroup over a tmpfs holding /sys/fs/cgroup/unified) hides earlier ones.
 */
export function findMount(fsType: string): string | undefined {
  const marker = fsType === 'cgroup2' ? 'cgroup.procs' : ''
  const candidates = mounts().filter((m) => m.fsType === fsType)
  for (let i = candidates.length - 1; i >= 0; i--) {
    const mountPoint = (candidates[i] as MountEntry).mountPoint
    if (existsSync(join(mountPoint, marker))) return mountPoint
  }
  return undefined
}

/** Mount bpffs at `path` (default /sys/fs/bpf) unless it is already there. Needs root. */
export function ensureBpffs(path = DEFAULT_BPFFS): string {
  if (!isMounted(path, 'bpf')) {
    mkdirSync(path, { recursive: true })
    runSync('mount', ['-t', 'bpf', 'bpf', path])
  }
  return path
}

/**
 * A cgroup v2 hierarchy to attach socket programs to: an existing cgroup2 mount, or a new one
 * at {@link DEFAULT_CGROUP2}. Needs root.
 */
export function ensureCgroup2(path?: string): string {
  if (path === undefined) {
    const existing = findMount('cgroup2')
    if (existing) return existing
    path = DEFAULT_CGROUP2
  }
  if (!isMounted(path, 'cgroup2')) {
    mkdirSync(path, { recursive: true })
    runSync('mount', ['-t', 'cgroup2', 'none', path])
  }
  return path
}

/** A fresh directory on bpffs for one test's pins; `remove()` deletes it and every pin in it. */
export function tempBpffsDir(root = ensureBpffs()): { path: string; remove(): void } {
  const path = join(root, 'membrane-test', uniqueName())
  mkdirSync(path, { recursive: true })
  return {
    path,
    remove() {
      rmSync(path, { recursive: true, force: true })
    },
  }
}

/**
 * A fresh child cgroup (v2) for one test. `remove()` moves nothing: callers must have moved
 * their processes out (or let them exit) before it can be removed.
 */
export function tempCgroup(root = ensureCgroup2()): { path: string; remove(): void } {
  const path = join(root, uniqueName())
  mkdirSync(path)
  return {
    path,
    remove() {
      try {
        rmdirSync(path)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      }
    },
  }
}
