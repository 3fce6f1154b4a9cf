import { type WorkloadNamespace, workloadNamespace } from './endpoint'
import type { NetNamespace, TestNetwork } from './netns'

/** One "node" of a {@link ClusterLab}: a network namespace on the shared underlay. */
export interface LabNode {
  /** 0-based position in the lab. */
  readonly index: number
  readonly ns: NetNamespace
  /** The node's address on the underlay (its tunnel endpoint). */
  readonly ip: string
  /** The node's pod CIDR, `10.<base + index>.0.0/24`. */
  readonly podCidr: string
  /** The node's underlay interface. */
  readonly underlayIf: string
  /** The node's VXLAN device in external mode (tunnel mode only). */
  readonly vxlanIf?: string
}

/** Options of {@link ClusterLab.create}. */
export interface ClusterLabOptions {
  /** Number of nodes. Default 2. */
  nodes?: number
  /**
   * `tunnel`: each node gets a VXLAN device in external (collect-metadata) mode on UDP 8472 and
   * no routes to other nodes' pod CIDRs; `native`: each node routes the others' pod CIDRs via
   * their underlay addresses. Default `tunnel`.
   */
  mode?: 'tunnel' | 'native'
  /** MTU of the underlay links. Default 1500. */
  underlayMtu?: number
  /** Second octet of node 0's pod CIDR (node i: base + i). Default 180. */
  podCidrBase?: number
  /** First three octets of the underlay's /24. Default `192.168.180`. */
  underlayNet?: string
}

/** Name of the VXLAN device a lab node gets in tunnel mode. */
export const LAB_VXLAN_IF = 'mb_vxlan'

/**
 * A cluster on one machine for kernel tests and benchmarks: a bridge in a namespace of its own
 * (the underlay) and N node namespaces, each attached to it by a veth with an address of the
 * underlay's /24, IPv4 forwarding on and, in tunnel mode, a VXLAN device in external mode. Pods
 * are namespaces behind veths inside a node ({@link ClusterLab.workload}). Everything belongs
 * to `net` and goes with `net.cleanup()` (namespace names carry the test prefix the global
 * setup sweeps). What runs on the nodes (a datapath per node, an agent, etcd) is the test's.
 *
 * @example
 * const net = new TestNetwork()
 * const lab = await ClusterLab.create(net, { nodes: 2, mode: 'tunnel' })
 * const pod = await lab.workload(lab.nodes[0], lab.podIp(0, 10), { mtu: 1450 })
 */
export class ClusterLab {
  readonly underlay: NetNamespace
  readonly nodes: readonly LabNode[]
  readonly mode: 'tunnel' | 'native'
  readonly underlayMtu: number
  readonly #net: TestNetwork

  private constructor(
    net: TestNetwork,
    underlay: NetNamespace,
    nodes: LabNode[],
    mode: 'tunnel' | 'native',
    underlayMtu: number,
  ) {
    this.#net = net
    this.underlay = underlay
    this.nodes = nodes
    this.mode = mode
    this.underlayMtu = underlayMtu
  }

  /** Build the underlay and the nodes. */
  static async create(net: TestNetwork, options: ClusterLabOptions = {}): Promise<ClusterLab> {
    const count = options.nodes ?? 2
    const mode = options.mode ?? 'tunnel'
    const mtu = options.underlayMtu ?? 1500
    const base = options.podCidrBase ?? 180
    const prefix = options.underlayNet ?? '192.168.180'
    if (!Number.isInteger(count) || count < 1 || count > 50)
      throw new RangeError(`ClusterLab nodes: expected 1..50, got ${String(count)}`)
    if (!Number.isInteger(base) || base < 1 || base + count > 255)
      throw new RangeError(`ClusterLab podCidrBase: expected 1..${255 - count}, got ${base}`)
    const underlay = await net.namespace()
    await underlay.exec('ip', ['link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge'])
    await underlay.exec('ip', ['link', 'set', 'br0', 'up'])
    const nodes: LabNode[] = []
    for (let i = 0; i < count; i++) {
      const ns = await net.namespace()
      const ip = `${prefix}.${i + 1}`
      const pair = await net.veth({
        nsA: underlay,
        nsB: ns,
        nameB: 'underlay0',
        addrB: `${ip}/24`,
      })
      await underlay.exec('ip', ['link', 'set', pair.a, 'mtu', String(mtu), 'master', 'br0'])
      await ns.exec('ip', ['link', 'set', 'underlay0', 'mtu', String(mtu)])
      for (const knob of [
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
        'net.ipv6.conf.all.disable_ipv6=1',
      ])
        await ns.exec('sysctl', ['-qw', knob])
      let vxlanIf: string | undefined
      if (mode === 'tunnel') {
        vxlanIf = LAB_VXLAN_IF
        await ns.exec('ip', [
          'link',
          'add',
          vxlanIf,
          'type',
          'vxlan',
          'external',
          'dstport',
          '8472',
          'nolearning',
        ])
        await ns.exec('ip', ['link', 'set', vxlanIf, 'up'])
      }
      nodes.push({
        index: i,
        ns,
        ip,
        podCidr: `10.${base + i}.0.0/24`,
        underlayIf: 'underlay0',
        ...(vxlanIf ? { vxlanIf } : {}),
      })
    }
    if (mode === 'native')
      for (const n of nodes)
        for (const m of nodes)
          if (m !== n) await n.ns.exec('ip', ['route', 'add', m.podCidr, 'via', m.ip])
    return new ClusterLab(net, underlay, nodes, mode, mtu)
  }

  /** Address `host` (1..254) of node `index`'s pod CIDR. */
  podIp(index: number, host: number): string {
    const node = this.nodes[index]
    if (!node) throw new RangeError(`ClusterLab: no node ${index}`)
    return node.podCidr.replace(/\.0\/24$/, `.${host}`)
  }

  /**
   * A pod on `node`: a workload namespace wired like a Membrane endpoint inside the node's
   * namespace (see `workloadNamespace`). `mtu` is the pod's (in tunnel mode, what
   * `@membrane/datapath`'s `podMtu(lab.underlayMtu)` says); default the underlay's.
   */
  workload(node: LabNode, ip: string, options: { mtu?: number } = {}): Promise<WorkloadNamespace> {
    return workloadNamespace(this.#net, ip, { node: node.ns, mtu: options.mtu ?? this.underlayMtu })
  }
}
