/**
 * Pod to pod across two nodes, three ways, side by side in one run on the same pods:
 *   plain:  no BPF programs; the nodes route each other's pod CIDRs via their underlay addresses.
 *   native: the endpoint programs on both pods' veths (policy enforced with allow entries), the
 *           same routes (native routing: identity from the ipcache).
 *   tunnel: the same programs plus the overlay (VXLAN in external mode, identity in the VNI).
 * The nodes are network namespaces on a bridge (ClusterLab), each with its own datapath process
 * and pin root. Both pods have the tunnel's MTU (1450 on a 1500 underlay) in all three, so that
 * only the datapath differs. Measured: request/response rate over one TCP connection (1-byte
 * request, 1-byte response, back to back, from a Node.js client: the figures include its
 * per-transaction cost) and single-stream TCP throughput (iperf3). The three run in interleaved
 * rounds (the order rotates) so they see the same machine load; medians over the rounds.
 *
 *   npm run bench -- datapath/cluster     (CLUSTER_ROUNDS, CLUSTER_SECONDS to change the run)
 */
import { fileURLToPath } from 'node:url'
import { ClusterLab, killAndWait, median, reportFigure, TestNetwork } from '@membrane/test-utils'
import { podMtu } from '../src'
import { type NodeDatapath, startNodeDatapath, waitForOutput } from '../test/_topology'

const ROUNDS = Number(process.env.CLUSTER_ROUNDS ?? 5)
const SECONDS = Number(process.env.CLUSTER_SECONDS ?? 3)
const BULK = fileURLToPath(new URL('../test/fixtures/bulk.cjs', import.meta.url))
const ID = { client: 6001, server: 6002 }
type Mode = 'plain' | 'native' | 'tunnel'

const net = new TestNetwork()
const dps: NodeDatapath[] = []

async function main() {
  const lab = await ClusterLab.create(net, { nodes: 2, mode: 'tunnel' })
  // Routes for plain and native routing (the tunnel does not use them).
  for (const n of lab.nodes)
    for (const m of lab.nodes)
      if (m !== n) await n.ns.exec('ip', ['route', 'add', m.podCidr, 'via', m.ip])
  const mtu = podMtu(lab.underlayMtu, 'tunnel')
  const [n1, n2] = lab.nodes
  if (!n1 || !n2) throw new Error('two nodes expected')
  const client = await lab.workload(n1, lab.podIp(0, 10), { mtu })
  const server = await lab.workload(n2, lab.podIp(1, 10), { mtu })
  for (const n of lab.nodes) dps.push(startNodeDatapath(n.ns))
  const [dp1, dp2] = dps as [NodeDatapath, NodeDatapath]
  await dp1.send({
    cmd: 'ipcache',
    cidr: `${server.ip}/32`,
    identity: ID.server,
    tunnelEndpoint: n2.ip,
  })
  await dp2.send({
    cmd: 'ipcache',
    cidr: `${client.ip}/32`,
    identity: ID.client,
    tunnelEndpoint: n1.ip,
  })

  const echo = server.ns.spawn(process.execPath, [BULK, 'echo', '9100'])
  const iperf = server.ns.spawn('iperf3', ['-s', '-p', '5201'])
  await waitForOutput(echo, 'ready', 'echo server')
  await new Promise((r) => setTimeout(r, 500)) // iperf3 -s has no ready line worth parsing

  let attached = false
  async function configure(mode: Mode) {
    if (mode === 'plain') {
      if (attached) for (const dp of dps) await dp.send({ cmd: 'detach' })
      for (const dp of dps) await dp.send({ cmd: 'overlay', ifname: null })
      attached = false
      return
    }
    if (!attached) {
      await dp1.send({
        cmd: 'attach',
        endpoints: [
          { id: 1, ifname: client.hostIf, ip: client.ip, mac: client.mac, identity: ID.client },
        ],
        allowIdentity: ID.server,
      })
      await dp2.send({
        cmd: 'attach',
        endpoints: [
          { id: 1, ifname: server.hostIf, ip: server.ip, mac: server.mac, identity: ID.server },
        ],
        allowIdentity: ID.client,
      })
      attached = true
    }
    for (const [i, dp] of dps.entries())
      await dp.send({ cmd: 'overlay', ifname: mode === 'tunnel' ? lab.nodes[i]?.vxlanIf : null })
  }

  const rr: Record<Mode, number[]> = { plain: [], native: [], tunnel: [] }
  const tput: Record<Mode, number[]> = { plain: [], native: [], tunnel: [] }
  const order: Mode[] = ['plain', 'native', 'tunnel']
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < order.length; k++) {
      const mode = order[(k + round) % order.length] as Mode
      await configure(mode)
      const r = JSON.parse(
        (
          await client.ns.exec(process.execPath, [BULK, 'rr', server.ip, '9100', String(SECONDS)])
        ).stdout.trim(),
      ) as { transactions?: number; seconds?: number; error?: string }
      if (!r.transactions || !r.seconds) throw new Error(`rr ${mode}: ${JSON.stringify(r)}`)
      rr[mode].push(r.transactions / r.seconds)
      const t = JSON.parse(
        (
          await client.ns.exec('iperf3', [
            '-c',
            server.ip,
            '-p',
            '5201',
            '-t',
            String(SECONDS),
            '-J',
          ])
        ).stdout,
      ) as { end?: { sum_received?: { bits_per_second?: number } } }
      tput[mode].push((t.end?.sum_received?.bits_per_second ?? 0) / 1e6)
    }
  }
  const extra = { rounds: ROUNDS, seconds: SECONDS, podMtu: mtu, underlayMtu: lab.underlayMtu }
  for (const mode of order) {
    reportFigure({
      name: `cluster_tcp_rr.${mode}`,
      value: Math.round(median(rr[mode])),
      unit: 'transactions/s',
      ...extra,
    })
    reportFigure({
      name: `cluster_tcp_stream.${mode}`,
      value: Math.round(median(tput[mode])),
      unit: 'Mbit/s',
      ...extra,
    })
  }
  for (const mode of ['native', 'tunnel'] as const) {
    reportFigure({
      name: `cluster_tcp_rr.${mode}_vs_plain`,
      value: Number((median(rr[mode]) / median(rr.plain)).toFixed(3)),
      unit: 'ratio',
      target: 0.9,
      ...extra,
    })
    reportFigure({
      name: `cluster_tcp_stream.${mode}_vs_plain`,
      value: Number((median(tput[mode]) / median(tput.plain)).toFixed(3)),
      unit: 'ratio',
      ...extra,
    })
  }
  await killAndWait(echo)
  await killAndWait(iperf)
}

try {
  await main()
} finally {
  for (const dp of dps) await dp.close()
  await net.cleanup()
}
