/**
 * Pods on different nodes, both routing modes, real traffic. Each node is a network namespace
 * on a shared underlay (ClusterLab from @membrane/test-utils) with its own datapath process and
 * pin root (test/fixtures/datapath-node.ts). Tunnel mode: the sender's identity travels in the
 * VXLAN VNI and the receiving node's ingress policy takes it from there; native mode: the
 * underlay routes pod CIDRs and the receiving node takes the identity from its ipcache.
 */
import { fileURLToPath } from 'node:url'
import {
  ClusterLab,
  describeKernel,
  killAndWait,
  type NetNamespace,
  TestNetwork,
} from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DropReason, podMtu, type RoutingMode } from '../src'
import { buildObjects } from './_btf'
import {
  client,
  type NodeDatapath,
  startNodeDatapath,
  startServer,
  type Workload,
  waitForOutput,
} from './_topology'

const BULK = fileURLToPath(new URL('./fixtures/bulk.cjs', import.meta.url))
const ID = { a: 5001, b: 5002, c: 5003 } as const

interface CounterRow {
  reason: number
  direction: string
  packets: number
}

/** Node-wide IPv4 counters from /proc/net/snmp (e.g. FragCreates, FragFails). */
async function ipStats(ns: NetNamespace): Promise<Record<string, number>> {
  const lines = (await ns.exec('cat', ['/proc/net/snmp'])).stdout
    .split('\n')
    .filter((l) => l.startsWith('Ip:'))
  const names = (lines[0] ?? '').split(/\s+/).slice(1)
  const values = (lines[1] ?? '').split(/\s+/).slice(1).map(Number)
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]))
}

function drops(rows: CounterRow[], reason: number, direction: string): number {
  return rows
    .filter((r) => r.reason === reason && r.direction === direction)
    .reduce((n, r) => n + r.packets, 0)
}

function describeMode(mode: RoutingMode): void {
  describeKernel(
    `pods on two nodes, ${mode} routing`,
    ['root', 'bpf', 'netns', 'tc', 'clang', 'bin:tcpdump'],
    () => {
      const net = new TestNetwork()
      let lab: ClusterLab
      const dps: NodeDatapath[] = []
      let a: Workload
      let b: Workload
      let c: Workload

      /** A pod on node `n`, attached there and known to every other node's ipcache. */
      async function pod(n: number, host: number, id: number, identity: number, allow: number) {
        const node = lab.nodes[n]
        const dp = dps[n]
        if (!node || !dp) throw new Error(`no node ${n}`)
        const w = await lab.workload(node, lab.podIp(n, host), {
          mtu: podMtu(lab.underlayMtu, mode),
        })
        await dp.send({
          cmd: 'attach',
          endpoints: [{ id, ifname: w.hostIf, ip: w.ip, mac: w.mac, identity }],
          allowIdentity: allow,
        })
        for (const [j, other] of dps.entries())
          if (j !== n) await other.send(remoteEntry(w.ip, identity, n))
        return { ns: w.ns, ip: w.ip, hostIf: w.hostIf, mac: w.mac, id, identity }
      }

      /** The ipcache command that places `ip` on node `n` as other nodes see it. */
      function remoteEntry(ip: string, identity: number, n: number) {
        return {
          cmd: 'ipcache',
          cidr: `${ip}/32`,
          identity,
          ...(mode === 'tunnel' ? { tunnelEndpoint: lab.nodes[n]?.ip } : {}),
        }
      }

      const node2 = () => dps[1] as NodeDatapath

      beforeAll(async () => {
        buildObjects()
        lab = await ClusterLab.create(net, { nodes: 2, mode })
        for (const node of lab.nodes) {
          const dp = startNodeDatapath(node.ns)
          dps.push(dp)
          if (mode === 'tunnel') await dp.send({ cmd: 'overlay', ifname: node.vxlanIf })
        }
        // a and c on node 1 may reach b; b on node 2 admits a only.
        a = await pod(0, 10, 1, ID.a, ID.b)
        c = await pod(0, 11, 2, ID.c, ID.b)
        b = await pod(1, 10, 1, ID.b, ID.a)
        await startServer(b, 'b', [8080], 5353)
        await startServer(a, 'a', [8080])
      }, 120_000)

      afterAll(async () => {
        for (const dp of dps) await dp.close()
        await net.cleanup()
      })

      it('TCP and UDP from a pod on node 1 reach a pod on node 2, replies come back', async () => {
        const tcp = await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '3', '3000'])
        expect(tcp.replies).toEqual(['b:8080', 'b:8080', 'b:8080'])
        const udp = await client<{ reply: string }>(a, ['udp', b.ip, '5353', '3000'])
        expect(udp.reply).toBe('b:5353')
      })

      it("node 2's ingress policy refuses an identity it does not admit, node 1 let it out", async () => {
        const before2 = await node2().send<CounterRow[]>({ cmd: 'counters' })
        const r = await client<{ replies: string[] }>(c, ['tcp', b.ip, '8080', '1', '1500'])
        expect(r.replies).toEqual(['ERR:TIMEOUT'])
        const after2 = await node2().send<CounterRow[]>({ cmd: 'counters' })
        expect(drops(after2, DropReason.POLICY, 'ingress')).toBeGreaterThan(
          drops(before2, DropReason.POLICY, 'ingress'),
        )
        const rows1 = await (dps[0] as NodeDatapath).send<CounterRow[]>({ cmd: 'counters' })
        expect(drops(rows1, DropReason.POLICY, 'egress')).toBe(0)
      })

      it('b on node 2 opens a connection to a on node 1 (each admits the other)', async () => {
        const r = await client<{ replies: string[] }>(b, ['tcp', a.ip, '8080', '1', '3000'])
        expect(r.replies).toEqual(['a:8080'])
      })

      if (mode === 'tunnel') {
        it("the VNI, not node 2's ipcache, names the sender", async () => {
          // Node 2's ipcache now says a's address is c: the identity in the VNI still wins.
          await node2().send({ ...remoteEntry(a.ip, ID.c, 0) })
          try {
            const r = await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '2', '3000'])
            expect(r.replies).toEqual(['b:8080', 'b:8080'])
          } finally {
            await node2().send(remoteEntry(a.ip, ID.a, 0))
          }
        })

        it("a capture on the underlay shows each sender's identity as the VNI", async () => {
          const dump = lab.underlay.spawn('tcpdump', [
            '-i',
            'br0',
            '-nn',
            '-l',
            '-c',
            '6',
            '-T',
            'vxlan',
            'udp',
            'port',
            '8472',
          ])
          let out = ''
          dump.stdout?.on('data', (d: Buffer) => {
            out += d.toString()
          })
          await waitForOutput(dump, 'listening on', 'tcpdump', { stream: 'stderr' })
          const r = await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '1', '3000'])
          expect(r.replies).toEqual(['b:8080'])
          await Promise.race([
            new Promise((resolve) => dump.once('exit', resolve)),
            new Promise((resolve) => setTimeout(resolve, 3000)),
          ])
          await killAndWait(dump)
          // "... VXLAN, flags [I] (0x08), vni 5001 IP 10.180.0.10.41234 > 10.181.0.10.8080: ..."
          const seen = new Set<string>()
          for (const m of out.matchAll(
            /vni (\d+)\s+IP (\d+\.\d+\.\d+\.\d+)\.\d+ > (\d+\.\d+\.\d+\.\d+)\./g,
          ))
            seen.add(`${m[2]}>${m[3]}:${m[1]}`)
          expect(seen).toEqual(new Set([`${a.ip}>${b.ip}:${ID.a}`, `${b.ip}>${a.ip}:${ID.b}`]))
        })
      } else {
        it("node 2's ipcache names the sender", async () => {
          // Node 2's ipcache now says a's address is c, whom b does not admit.
          await node2().send({ ...remoteEntry(a.ip, ID.c, 0) })
          try {
            const r = await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '1', '1500'])
            expect(r.replies).toEqual(['ERR:TIMEOUT'])
          } finally {
            await node2().send(remoteEntry(a.ip, ID.a, 0))
          }
          const r = await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '1', '3000'])
          expect(r.replies).toEqual(['b:8080'])
        })
      }

      it('50 MB cross the nodes with no IP fragmentation on the way', async () => {
        const sink = b.ns.spawn(process.execPath, [BULK, 'sink', '9000'])
        try {
          await waitForOutput(sink, 'ready', 'sink')
          const nodes = lab.nodes.map((n) => n.ns)
          const before = await Promise.all(nodes.map(ipStats))
          const bytes = 50 * 1024 * 1024
          const { stdout } = await a.ns.exec(process.execPath, [
            BULK,
            'send',
            b.ip,
            '9000',
            String(bytes),
          ])
          const result = JSON.parse(stdout.trim()) as { bytes: number; ms: number }
          expect(result.bytes).toBe(bytes)
          const after = await Promise.all(nodes.map(ipStats))
          for (const [i, s] of after.entries()) {
            expect([i, (s.FragCreates ?? 0) - (before[i]?.FragCreates ?? 0)]).toEqual([i, 0])
            expect([i, (s.FragFails ?? 0) - (before[i]?.FragFails ?? 0)]).toEqual([i, 0])
          }
        } finally {
          await killAndWait(sink)
        }
      }, 120_000)
    },
  )
}

describeMode('tunnel')
describeMode('native')
