/**
 * The per-packet fast path with real traffic between network namespaces: an endpoint whose
 * host-side veth has an ifindex >= 65536 (beyond the mb_ep_direct array, found through the
 * mb_endpoints hash), endpoints whose array slots were cleared by hand (hash fallback for
 * endpoints, backends and Maglev tables), and local delivery inside the node endpoint CIDR
 * (localCidr4) that still enforces the destination's ingress policy.
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import {
  describeKernel,
  killAndWait,
  TestNetwork,
  tempBpffsDir,
  type WorkloadNamespace,
  workloadNamespace,
} from '@membrane/test-utils'
import { u32 as u32Codec } from '@membrane/types'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Datapath } from '../src'
import { buildObjects } from './_btf'
import { attach, client, startServer, type Workload, workload } from './_topology'

const VIP = '10.96.219.1'

/** A workload namespace (test-utils' wiring) whose host-side veth has an ifindex >= 65536. */
async function workloadAtIndex(
  net: TestNetwork,
  ip: string,
): Promise<WorkloadNamespace & { ifindex: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const candidate = 70000 + Math.floor(Math.random() * 500000)
    let w: WorkloadNamespace
    try {
      w = await workloadNamespace(net, ip, { hostIfindex: candidate })
    } catch {
      continue // index taken: another
    }
    const ifindex = Number(readFileSync(`/sys/class/net/${w.hostIf}/ifindex`, 'utf8').trim())
    expect(ifindex).toBe(candidate)
    return { ...w, ifindex }
  }
  throw new Error('could not create a veth with an ifindex >= 65536')
}

describeKernel(
  'fast path with real traffic (ifindex >= 65536, cleared slots, localCidr4)',
  ['root', 'bpf', 'bpffs', 'netns', 'tc', 'clang', 'bin:ip'],
  () => {
    const net = new TestNetwork()
    let pins: { path: string; remove(): void }
    let dp: Datapath
    let a: Workload // ordinary ifindex (has an mb_ep_direct slot)
    let b: Workload // ifindex >= 65536 (hash only)
    let bIfindex = 0
    const servers: ChildProcess[] = []

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({
        pinRoot: pins.path,
        localCidr4: '10.219.1.0/24',
        maglevDirectTables: 2,
      })
      a = await workload(net, '10.219.1.10', 1, 1001, dp)
      const big = await workloadAtIndex(net, '10.219.1.20')
      bIfindex = big.ifindex
      b = { ns: big.ns, ip: '10.219.1.20', hostIf: big.hostIf, mac: big.mac, id: 2, identity: 1002 }
      await attach(dp, b)
      servers.push(await startServer(a, 'a', [9090]))
      servers.push(await startServer(b, 'b', [8080, 8081]))
      dp.policyMap(a.id).apply({
        upserts: [
          {
            key: { identity: 1002, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
          {
            key: { identity: 1002, direction: 'egress', protocol: 6, port: 8081 },
            value: { deny: false },
          },
          {
            key: { identity: 1002, direction: 'ingress', protocol: 6, port: 9090 },
            value: { deny: false },
          },
        ],
      })
      dp.policyMap(b.id).apply({
        upserts: [
          // 8080 only: 8081 has no ingress entry at b
          {
            key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
          {
            key: { identity: 1001, direction: 'egress', protocol: 6, port: 9090 },
            value: { deny: false },
          },
        ],
      })
    }, 120_000)

    afterAll(async () => {
      for (const s of servers) await killAndWait(s)
      await net.cleanup()
      await dp?.close()
      pins?.remove()
    })

    it('the endpoint on ifindex >= 65536 sends and receives under its own policy (found through mb_endpoints)', async () => {
      expect(bIfindex).toBeGreaterThanOrEqual(65536)
      expect(dp.endpoints.get(bIfindex)).toMatchObject({ id: b.id, identity: 1002, ip: b.ip })
      expect(dp.map('mb_ep_direct').info.maxEntries).toBeLessThanOrEqual(bIfindex)
      // a -> b: the allowed port connects, the port without an ingress entry at b does not
      // (local delivery inside localCidr4 checks b's ingress policy in a's program).
      expect(
        await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '2', '3000']),
      ).toMatchObject({
        replies: ['b:8080', 'b:8080'],
      })
      expect(
        await client<{ replies: string[] }>(a, ['tcp', b.ip, '8081', '1', '1500']),
      ).toMatchObject({
        replies: ['ERR:TIMEOUT'],
      })
      // b -> a: b's from-container program (on the big ifindex) applies b's egress entries.
      expect(
        await client<{ replies: string[] }>(b, ['tcp', a.ip, '9090', '2', '3000']),
      ).toMatchObject({
        replies: ['a:9090', 'a:9090'],
      })
      const fromB = dp.ct
        .dump()
        .filter((e) => e.tuple.saddr === b.ip && e.tuple.dport === 9090 && !e.tuple.service)
      expect(fromB.length).toBeGreaterThan(0)
      expect(fromB.every((e) => e.endpointId === b.id && e.srcIdentity === 1002)).toBe(true)
    }, 30_000)

    it('with every array slot cleared by hand, traffic (direct and through a Maglev ClusterIP) goes on through the hashes', async () => {
      const svc = dp.services.upsert({
        address: VIP,
        port: 80,
        backends: [{ address: b.ip, port: 8080 }],
      })
      try {
        expect(svc.id).toBeLessThan(dp.maglevDirectTables) // id 1: has a Maglev slot
        const key = (n: number) => u32Codec.encode(n)
        const aIfindex = dp.endpoints.byIp(a.ip)?.ifindex as number
        const beId = svc.backends[0]?.id as number
        const slots = [
          ['mb_ep_direct', aIfindex],
          ['mb_lb4_be_direct', beId],
          ['mb_lb_maglev_direct', svc.id],
        ] as const
        for (const [m, k] of slots) {
          expect([
            m,
            dp
              .map(m)
              .lookup(key(k))
              ?.some((x) => x !== 0),
          ]).toEqual([m, true])
          dp.map(m).update(key(k), Buffer.alloc(dp.map(m).info.valueSize))
        }
        dp.ct.flush()
        expect(
          await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '2', '3000']),
        ).toMatchObject({ replies: ['b:8080', 'b:8080'] })
        const viaVip = await client<{ replies: string[]; remotes: string[] }>(a, [
          'tcp',
          VIP,
          '80',
          '3',
          '3000',
        ])
        expect(viaVip.replies).toEqual(['b:8080', 'b:8080', 'b:8080'])
        // Reverse NAT: the client saw the service address.
        expect(viaVip.remotes.every((r) => r.endsWith(`${VIP}:80`))).toBe(true)
        // Still denied where the policy says so, with the slot of a cleared.
        expect(
          await client<{ replies: string[] }>(a, ['tcp', b.ip, '8081', '1', '1500']),
        ).toMatchObject({ replies: ['ERR:TIMEOUT'] })
      } finally {
        dp.services.delete(VIP, 80)
        dp.endpoints.upsert(
          dp.endpoints.byIp(a.ip) as NonNullable<ReturnType<Datapath['endpoints']['byIp']>>,
        )
      }
    }, 30_000)
  },
)
