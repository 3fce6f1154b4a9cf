import { mkdirSync, readFileSync } from 'node:fs'
import { run } from './exec'

interface Mount {
  mountPoint: string
  fsType: string
}

function mounts(): Mount[] {
  const out: Mount[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ')
    const dash = fields.indexOf('-')
    const mountPoint = fields[4]
    const fsType = fields[dash + 1]
    if (dash > 0 && mountPoint && fsType) {
      out.push({ mountPoint: mountPoint.replace(/\\040/g, ' '), fsType })
    }
  }
  return out
}

function under(path: string, mountPoint: string): boolean {
  return (
    path === mountPoint || path.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`)
  )
}

/** The bpffs mount holding `path`, mounting bpffs at /sys/fs/bpf when none does. */
export async function ensureBpffsFor(path: string): Promise<string> {
  const m = mounts()
    .filter((x) => x.fsType === 'bpf' && under(path, x.mountPoint))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0]
  if (m) return m.mountPoint
  const target = under(path, '/sys/fs/bpf') ? '/sys/fs/bpf' : path
  mkdirSync(target, { recursive: true })
  await run('mount', ['-t', 'bpf', 'bpf', target])
  return target
}

/** Mount cgroup v2 at `path` unless it is already cgroup2. */
export async function ensureCgroup2At(path: string): Promise<string> {
  if (mounts().some((x) => x.fsType === 'cgroup2' && x.mountPoint === path)) return path
  mkdirSync(path, { recursive: true })
  await run('mount', ['-t', 'cgroup2', 'none', path])
  return path
}

/** True when `path` lies on a bpffs mount. */
export function onBpffs(path: string): boolean {
  return mounts().some((x) => x.fsType === 'bpf' && under(path, x.mountPoint))
}
