import { type RunResult, run } from './exec'
import type { NetNamespace, TestNetwork } from './netns'

/** The link-local gateway every test workload routes through (a static neighbour entry). */
export const WORKLOAD_GATEWAY = '169.254.1.1'

/** A namespace wired like a Membrane endpoint. */
export interface WorkloadNamespace {
  ns: NetNamespace
  /** The workload's IPv4 address (a /32 on its eth0). */
  ip: string
  /** The host-side veth, where the endpoint programs attach. */
  hostIf: string
  /** MAC address of the workload's eth0. */
  mac: string
}

/** Options of {@link workloadNamespace}. */
export interface WorkloadOptions {
  /** ifindex of the host-side veth (e.g. >= 65536, to test ifindex-keyed code). */
  hostIfindex?: number
  /**
   * The namespace that plays the host (a cluster node, see `ClusterLab`); default the test's
   * own network namespace.
   */
  node?: NetNamespace
  /** MTU of both ends of the veth (e.g. `podMtu(1500)` behind a VXLAN overlay). Default 1500. */
  mtu?: number
}

/**
 * A workload namespace wired the way the agent wires an endpoint: eth0 with a /32 address, a
 * default route via a link-local gateway whose MAC is the host-side veth's, a /32 route to it on
 * the host and forwarding on the host-side veth; IPv6 off on both ends. Cleaned up with `net`.
 * The "host" is the test's network namespace, or `options.node`.
 *
 * @example
 * const w = await workloadNamespace(net, '10.200.0.2')
 * await datapath.attachEndpoint({ id: 1, ifname: w.hostIf, ip: w.ip, mac: w.mac, identity: 256 })
 */
export async function workloadNamespace(
  net: TestNetwork,
  ip: string,
  options: WorkloadOptions = {},
): Promise<WorkloadNamespace> {
  const ns = await net.namespace()
  const node = options.node
  const onHost = (file: string, args: string[]): Promise<RunResult> =>
    node ? node.exec(file, args) : run(file, args)
  const pair = await net.veth({
    nsB: ns,
    nameB: 'eth0',
    ...(node ? { nsA: node } : {}),
    ...(options.hostIfindex !== undefined ? { indexA: options.hostIfindex } : {}),
  })
  if (options.mtu !== undefined) {
    await onHost('ip', ['link', 'set', pair.a, 'mtu', String(options.mtu)])
    await ns.exec('ip', ['link', 'set', 'eth0', 'mtu', String(options.mtu)])
  }
  const hostMac = (await onHost('cat', [`/sys/class/net/${pair.a}/address`])).stdout.trim()
  const gw = WORKLOAD_GATEWAY
  await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1'])
  await ns.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0'])
  await ns.exec('ip', ['route', 'add', gw, 'dev', 'eth0', 'scope', 'link'])
  await ns.exec('ip', ['route', 'add', 'default', 'via', gw, 'dev', 'eth0'])
  await ns.exec('ip', [
    'neigh',
    'replace',
    gw,
    'lladdr',
    hostMac,
    'dev',
    'eth0',
    'nud',
    'permanent',
  ])
  await onHost('sysctl', ['-qw', `net.ipv6.conf.${pair.a}.disable_ipv6=1`])
  await onHost('ip', ['route', 'add', `${ip}/32`, 'dev', pair.a])
  await onHost('sysctl', ['-qw', `net.ipv4.conf.${pair.a}.forwarding=1`])
  const mac = (await ns.exec('cat', ['/sys/class/net/eth0/address'])).stdout.trim()
  return { ns, ip, hostIf: pair.a, mac }
}
