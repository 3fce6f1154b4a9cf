import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { hasCommand, runSync } from './exec'
import { findMount } from './mounts'
import { isAlive, ownerPid, TEST_PREFIX } from './names'

/** What a sweep removed. */
export interface SweepReport {
  namespaces: string[]
  links: string[]
  pinDirs: string[]
  processes: number[]
}

/**
 * Remove what crashed test processes left behind: namespaces, host interfaces and bpffs pin
 * directories named with {@link TEST_PREFIX} whose owner process is gone, and etcd servers
 * started from a data dir of a dead owner. Objects of live processes are left alone, so runs
 * in parallel do not break each other. Never throws: a sweep is best effort.
 */
export function sweepLeftovers(): SweepReport {
  const report: SweepReport = { namespaces: [], links: [], pinDirs: [], processes: [] }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return report
  const stale = (name: string) => {
    if (!name.startsWith(TEST_PREFIX)) return false
    const pid = ownerPid(name)
    return pid !== undefined && !isAlive(pid)
  }

  for (const pid of leftoverEtcd(stale)) {
    try {
      process.kill(pid, 'SIGKILL')
      report.processes.push(pid)
    } catch {
      // already gone
    }
  }

  if (hasCommand('ip')) {
    try {
      const list = runSync('ip', ['-j', 'netns', 'list']).stdout.trim()
      const names = list ? (JSON.parse(list) as { name: string }[]).map((n) => n.name) : []
      for (const name of names.filter(stale)) {
        try {
          runSync('ip', ['netns', 'del', name])
          report.namespaces.push(name)
        } catch {
          // raced with another sweep
        }
      }
    } catch {
      // no netns support
    }
    try {
      const links = JSON.parse(runSync('ip', ['-j', 'link', 'show']).stdout) as { ifname: string }[]
      for (const { ifname } of links) {
        if (!stale(ifname)) continue
        try {
          runSync('ip', ['link', 'del', ifname])
          report.links.push(ifname)
        } catch {
          // its peer went first
        }
      }
    } catch {
      // ignore
    }
  }

  const bpffs = findMount('bpf')
  if (bpffs) {
    const dir = join(bpffs, 'membrane-test')
    let entries: string[] = []
    try {
      entries = readdirSync(dir)
    } catch {
      entries = []
    }
    for (const name of entries.filter(stale)) {
      rmSync(join(dir, name), { recursive: true, force: true })
      report.pinDirs.push(name)
    }
  }
  return report
}

/** Pids of etcd processes whose `--data-dir` is a test dir of a dead owner. */
function leftoverEtcd(stale: (name: string) => boolean): number[] {
  const out: number[] = []
  let pids: string[] = []
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p))
  } catch {
    return out
  }
  for (const p of pids) {
    let argv: string[]
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (!argv[0]?.endsWith('etcd')) continue
    const dataDir = argv.find((a) => a.startsWith('--data-dir='))?.slice('--data-dir='.length)
    const base = dataDir?.split('/').find((part) => part.startsWith(`${TEST_PREFIX}`))
    if (base && stale(base)) out.push(Number(p))
  }
  return out
}
