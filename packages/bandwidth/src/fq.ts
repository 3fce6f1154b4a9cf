import { existsSync, readdirSync } from 'node:fs'
import { BandwidthError } from './errors'
import { exec, tryExec } from './internal/exec'
import { DEFAULT_HORIZON_NS } from './throttle'

/** What the kernel's fq qdisc can do here, as probed feature by feature. */
export interface FqSupport {
  /** `tc qdisc add ... fq` works (sch_fq is built in or loadable). */
  fq: boolean
  /** fq accepts `horizon <t> horizon_drop` (kernel 5.7+). */
  horizon: boolean
  /** The mq qdisc works (fq leaves per tx queue on multiqueue devices). */
  mq: boolean
  /** What the probe saw, e.g. tc's error message when fq is missing. */
  detail: string
}

/** A device name that can become an interface argument: 1..15 of [A-Za-z0-9_.:-], not . or .. */
const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/

/** Throw unless `name` is a valid interface name (it is passed to tc as an argument). */
export function checkIfname(name: string, field = 'ifname'): string {
  if (typeof name !== 'string' || !IFNAME.test(name) || name === '.' || name === '..') {
    throw new BandwidthError(
      'INVALID_OPTION',
      `${field}: ${JSON.stringify(name)} is not an interface name (1-15 of A-Z a-z 0-9 _ . : -)`,
      { field, value: name },
    )
  }
  return name
}

const NETNS = /^[A-Za-z0-9_.-]{1,64}$/

/** Throw unless `name` is a plausible network namespace name (a file under /run/netns). */
export function checkNetnsName(name: string, field = 'netns'): string {
  if (typeof name !== 'string' || !NETNS.test(name) || name === '.' || name === '..') {
    throw new BandwidthError(
      'INVALID_OPTION',
      `${field}: ${JSON.stringify(name)} is not a namespace name (1-64 of A-Z a-z 0-9 _ . -)`,
      { field, value: name },
    )
  }
  return name
}

let probeCounter = 0
const PROBE_PREFIX = 'mbbwprobe-'

/** Remove probe namespaces left by processes that died mid-probe (their pid is gone). */
async function sweepDeadProbes(): Promise<void> {
  if (!existsSync('/run/netns')) return
  for (const name of readdirSync('/run/netns')) {
    const m = /^mbbwprobe-(\d+)-\d+$/.exec(name)
    if (!m || alive(Number(m[1]))) continue
    await tryExec('ip', ['netns', 'del', name])
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Probe sch_fq without touching any real device: in a throwaway network namespace, on a veth
 * pair with two tx queues, try `fq`, then `fq horizon 2s horizon_drop`, then `mq`. The namespace
 * is deleted afterwards (also on failure). Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
 *
 * @throws BandwidthError `COMMAND_FAILED` when the namespace itself cannot be made
 */
export async function probeSchFq(): Promise<FqSupport> {
  await sweepDeadProbes()
  const ns = `${PROBE_PREFIX}${process.pid}-${++probeCounter}`
  await exec('ip', ['netns', 'add', ns])
  try {
    await exec('ip', [
      '-n',
      ns,
      'link',
      'add',
      'p0',
      'numtxqueues',
      '2',
      'type',
      'veth',
      'peer',
      'name',
      'p1',
    ])
    const fq = await tryExec('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'p0', 'root', 'fq'])
    if (!fq.ok) {
      return {
        fq: false,
        horizon: false,
        mq: false,
        detail: `tc qdisc add ... fq: ${fq.stderr.trim() || 'failed'}`,
      }
    }
    const horizon = await tryExec('tc', [
      '-n',
      ns,
      'qdisc',
      'replace',
      'dev',
      'p0',
      'root',
      'fq',
      'horizon',
      '2s',
      'horizon_drop',
    ])
    const mq = await tryExec('tc', [
      '-n',
      ns,
      'qdisc',
      'replace',
      'dev',
      'p0',
      'root',
      'handle',
      '1:',
      'mq',
    ])
    return {
      fq: true,
      horizon: horizon.ok,
      mq: mq.ok,
      detail: `fq available${horizon.ok ? ' with horizon' : ` without horizon (${horizon.stderr.trim()})`}${mq.ok ? ', mq available' : ''}`,
    }
  } finally {
    await tryExec('ip', ['netns', 'del', ns])
  }
}

/** Options of {@link planEgressQdisc}. */
export interface EgressQdiscOptions {
  /** Tx queues of the device (see {@link txQueueCount}); > 1 with mq gives mq + fq leaves. */
  txQueues: number
  /** fq drop horizon in ns (default 2 s), applied when the kernel supports it. */
  horizonNs?: bigint | number
  /** What the kernel supports, from {@link probeSchFq}. */
  support: FqSupport
}

/**
 * The tc commands (argument arrays for `tc`) that put fq on a device's egress: `mq` with one fq
 * leaf per tx queue on a multiqueue device, otherwise a root fq; with `horizon <h> horizon_drop`
 * where supported, so fq drops what EDT stamped too far ahead. Pure: runs nothing.
 *
 * @throws BandwidthError `NOT_SUPPORTED` when the kernel lacks sch_fq
 * @example planEgressQdisc('eth0', { txQueues: 1, support }) // [['qdisc','replace','dev','eth0','root','fq','horizon','2000000us','horizon_drop']]
 */
export function planEgressQdisc(ifname: string, options: EgressQdiscOptions): string[][] {
  checkIfname(ifname)
  const { support } = options
  if (!support.fq) {
    throw new BandwidthError(
      'NOT_SUPPORTED',
      `sch_fq is not available on this kernel (${support.detail}): EDT cannot be paced on ${ifname}`,
      { field: 'support.fq', value: false },
    )
  }
  const txQueues = options.txQueues
  if (!Number.isInteger(txQueues) || txQueues < 1 || txQueues > 0xffff) {
    throw new BandwidthError(
      'INVALID_OPTION',
      `txQueues: expected an integer 1..65535, got ${String(txQueues)}`,
      { field: 'txQueues', value: txQueues },
    )
  }
  const horizonNs = BigInt(options.horizonNs ?? DEFAULT_HORIZON_NS)
  if (horizonNs <= 0n) {
    throw new BandwidthError('INVALID_OPTION', `horizonNs: expected > 0, got ${horizonNs}`, {
      field: 'horizonNs',
      value: options.horizonNs,
    })
  }
  const horizon = support.horizon
    ? ['horizon', `${(horizonNs + 999n) / 1000n}us`, 'horizon_drop']
    : []
  if (txQueues > 1 && support.mq) {
    const cmds = [['qdisc', 'replace', 'dev', ifname, 'root', 'handle', '1:', 'mq']]
    for (let q = 1; q <= txQueues; q++) {
      cmds.push([
        'qdisc',
        'replace',
        'dev',
        ifname,
        'parent',
        `1:${q.toString(16)}`,
        'fq',
        ...horizon,
      ])
    }
    return cmds
  }
  return [['qdisc', 'replace', 'dev', ifname, 'root', 'fq', ...horizon]]
}

/** Number of tx queues of a device in the current network namespace (sysfs), at least 1. */
export function txQueueCount(ifname: string): number {
  checkIfname(ifname)
  const dir = `/sys/class/net/${ifname}/queues`
  if (!existsSync(dir)) return 1
  return Math.max(1, readdirSync(dir).filter((d) => d.startsWith('tx-')).length)
}

/**
 * Put fq on a device's egress ({@link planEgressQdisc}), running tc with argument arrays.
 * With `netns`, tc runs in that named namespace (`tc -n`).
 *
 * @throws BandwidthError `NOT_SUPPORTED` without sch_fq, `COMMAND_FAILED` when tc fails
 */
export async function applyEgressQdisc(
  ifname: string,
  options: Omit<EgressQdiscOptions, 'txQueues'> & { txQueues?: number; netns?: string },
): Promise<string[][]> {
  const txQueues = options.txQueues ?? (options.netns ? 1 : txQueueCount(ifname))
  const plan = planEgressQdisc(ifname, { ...options, txQueues })
  const prefix = options.netns ? ['-n', checkNetnsName(options.netns)] : []
  for (const args of plan) await exec('tc', [...prefix, ...args])
  return plan
}
