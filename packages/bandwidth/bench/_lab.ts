/**
 * The bandwidth lab, shared by the kernel test and the benchmark: a "pod" namespace and a
 * "host" namespace joined by a veth pair (pod side `eth0`, host side like a CNI host veth),
 * iperf3 for bulk throughput and a Node request/response probe for latency under load.
 * Everything lives in namespaces the TestNetwork owns and removes.
 */
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { type NetNamespace, run, type TestNetwork } from '@membrane/test-utils'

export interface Lab {
  pod: NetNamespace
  host: NetNamespace
  /** Interface in the pod namespace (`eth0`). */
  podIf: string
  /** The host-side veth, in the host namespace. */
  hostIf: string
  podAddr: string
  hostAddr: string
}

let labCounter = 0

/** Two namespaces and a veth between them with 10.<n>.0.{1,2}/24. */
export async function createLab(net: TestNetwork): Promise<Lab> {
  const n = 100 + ((process.pid + labCounter++) % 100)
  const pod = await net.namespace()
  const host = await net.namespace()
  const pair = await net.veth({
    nsA: host,
    nsB: pod,
    addrA: `10.${n}.0.1/24`,
    addrB: `10.${n}.0.2/24`,
    nameB: 'eth0',
  })
  return {
    pod,
    host,
    podIf: pair.b,
    hostIf: pair.a,
    podAddr: pair.addrB as string,
    hostAddr: pair.addrA as string,
  }
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen}`)), 10_000)
    const onData = (d: Buffer) => {
      seen += d.toString()
      if (pattern.test(seen)) {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        resolve()
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (d: Buffer) => {
      seen += d.toString()
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited (${code}): ${seen}`))
    })
  })
}

function collect(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString()
    })
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err || out}`)),
    )
  })
}

/** Result of one iperf3 run. */
export interface IperfResult {
  /** Receiver-side goodput over the measured seconds (omitted warm-up excluded). */
  bitsPerSecond: number
  retransmits: number
}

/**
 * One iperf3 TCP run from `sender` to `receiver` (a server is started in the receiver's
 * namespace for this run only). `omit` seconds at the start are excluded, so a bucket's initial
 * burst does not inflate the figure.
 */
export async function iperf(
  sender: NetNamespace,
  receiver: NetNamespace,
  receiverAddr: string,
  options: { seconds: number; omit?: number; port?: number },
): Promise<IperfResult> {
  const port = String(options.port ?? 5201)
  const server = receiver.spawn('iperf3', [
    '-s',
    '-1',
    '--forceflush',
    '-B',
    receiverAddr,
    '-p',
    port,
  ])
  try {
    await waitForLine(server, /Server listening/, 'iperf3 server')
    const client = sender.spawn('iperf3', [
      '-c',
      receiverAddr,
      '-p',
      port,
      '-t',
      String(options.seconds),
      '-O',
      String(options.omit ?? 0),
      '-J',
    ])
    const json = JSON.parse(await collect(client)) as {
      end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } }
    }
    return {
      bitsPerSecond: json.end.sum_received.bits_per_second,
      retransmits: json.end.sum_sent.retransmits ?? 0,
    }
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL')
  }
}

const rrScript = fileURLToPath(new URL('./_rr.mjs', import.meta.url))

/** A request/response latency probe: server in `server` ns, client in `client` ns. */
export async function requestResponse(
  client: NetNamespace,
  server: NetNamespace,
  serverAddr: string,
  options: { seconds: number; intervalMs?: number; port?: number },
): Promise<number[]> {
  const port = String(options.port ?? 7007)
  const srv = server.spawn(process.execPath, [rrScript, 'server', serverAddr, port])
  try {
    await waitForLine(srv, /listening/, 'rr server')
    const cli = client.spawn(process.execPath, [
      rrScript,
      'client',
      serverAddr,
      port,
      String(options.seconds),
      String(options.intervalMs ?? 10),
    ])
    const out = JSON.parse(await collect(cli)) as { samplesUs: number[] }
    return out.samplesUs
  } finally {
    if (srv.exitCode === null) srv.kill('SIGKILL')
  }
}

/**
 * Attach a pinned tc program to a device inside a namespace (clsact, direct-action). tc runs
 * through `nsenter --net` rather than `tc -n`, because `tc -n` remounts /sys and would hide the
 * bpffs pin under /sys/fs/bpf.
 */
export async function attachPinnedTc(
  ns: NetNamespace,
  ifname: string,
  direction: 'ingress' | 'egress',
  pinnedProgram: string,
): Promise<void> {
  const tc = (args: string[]) => run('nsenter', [`--net=/run/netns/${ns.name}`, 'tc', ...args])
  await tc(['qdisc', 'replace', 'dev', ifname, 'clsact'])
  await tc([
    'filter',
    'replace',
    'dev',
    ifname,
    direction,
    'pref',
    '1',
    'handle',
    '1',
    'bpf',
    'direct-action',
    'object-pinned',
    pinnedProgram,
  ])
}

/** Remove whatever qdisc/filters the lab put on a device's root and clsact. */
export async function clearTc(ns: NetNamespace, ifname: string): Promise<void> {
  await run('tc', ['-n', ns.name, 'qdisc', 'del', 'dev', ifname, 'clsact']).catch(() => {})
  await run('tc', ['-n', ns.name, 'qdisc', 'del', 'dev', ifname, 'root']).catch(() => {})
}
