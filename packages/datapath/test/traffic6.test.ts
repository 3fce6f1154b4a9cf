/**
 * IPv6 with real traffic. IPv6 forwarding is a global switch, so the routing "node" is a network
 * namespace of its own and the datapath runs in a process inside it
 * (test/fixtures/datapath-node.ts); the host's settings are not touched.
 */
import { describeKernel, type NetNamespace, TestNetwork } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildObjects } from './_btf'
import {
  client,
  type NodeDatapath,
  startNodeDatapath,
  startServer,
  type Workload,
} from './_topology'

describeKernel(
  'IPv6 traffic through the endpoint programs',
  ['root', 'bpf', 'netns', 'tc', 'clang'],
  () => {
    const net = new TestNetwork()
    let node: NetNamespace
    let dp: NodeDatapath
    let a: Workload & { ip6: string }
    let b: Workload & { ip6: string }

    async function workload6(ip: string, ip6: string, id: number, identity: number) {
      const ns = await net.namespace()
      const pair = await net.veth({ nsA: node, nsB: ns, nameB: 'eth0' })
      const nodeMac = (await node.exec('cat', [`/sys/class/net/${pair.a}/address`])).stdout.trim()
      await ns.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0'])
      await ns.exec('ip', ['-6', 'addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad'])
      await ns.exec('ip', ['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'])
      await ns.exec('ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0'])
      await ns.exec('ip', [
        'neigh',
        'replace',
        '169.254.1.1',
        'lladdr',
        nodeMac,
        'dev',
        'eth0',
        'nud',
        'permanent',
      ])
      await ns.exec('ip', ['-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0'])
      await ns.exec('ip', [
        '-6',
        'neigh',
        'replace',
        'fe80::1',
        'lladdr',
        nodeMac,
        'dev',
        'eth0',
        'nud',
        'permanent',
      ])
      await node.exec('ip', ['route', 'add', `${ip}/32`, 'dev', pair.a])
      await node.exec('ip', ['-6', 'route', 'add', `${ip6}/128`, 'dev', pair.a])
      const mac = (await ns.exec('cat', ['/sys/class/net/eth0/address'])).stdout.trim()
      await dp.send({ cmd: 'attach', endpoints: [{ id, ifname: pair.a, ip, ip6, mac, identity }] })
      return { ns, ip, ip6, hostIf: pair.a, id, identity }
    }

    beforeAll(async () => {
      buildObjects()
      node = await net.namespace()
      await node.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
      await node.exec('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1'])
      dp = startNodeDatapath(node)
      a = await workload6('10.215.1.10', 'fd00:215:1::10', 1, 4001)
      b = await workload6('10.215.2.10', 'fd00:215:2::10', 2, 4002)
      await startServer(b, 'b', [8080, 8081], 5353)
      await dp.send({
        cmd: 'policy',
        endpointId: a.id,
        diff: {
          upserts: [
            {
              key: { identity: 4002, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
              value: { deny: false },
            },
          ],
        },
      })
      await dp.send({
        cmd: 'policy',
        endpointId: b.id,
        diff: {
          upserts: [
            {
              key: { identity: 4001, direction: 'ingress', protocol: 6, port: 8080 },
              value: { deny: false },
            },
            {
              key: { identity: 4001, direction: 'ingress', protocol: 17, port: 5353 },
              value: { deny: false },
            },
          ],
        },
      })
    }, 120_000)

    afterAll(async () => {
      await dp?.close()
      await net.cleanup()
    })

    it('TCP over IPv6: the allowed port connects, the other one is dropped', async () => {
      expect(
        (await client<{ replies: string[] }>(a, ['tcp', b.ip6, '8080', '2', '3000'])).replies,
      ).toEqual(['b:8080', 'b:8080'])
      expect(
        (await client<{ replies: string[] }>(a, ['tcp', b.ip6, '8081', '1', '1500'])).replies,
      ).toEqual(['ERR:TIMEOUT'])
      const counters = await dp.send<{ reason: number; direction: string; packets: number }[]>({
        cmd: 'counters',
      })
      expect(
        counters.some((c) => c.reason === 133 && c.direction === 'ingress' && c.packets > 0),
      ).toBe(true)
    }, 30_000)

    it('UDP over IPv6, and IPv4 alongside on the same endpoints', async () => {
      expect(await client<{ reply: string }>(a, ['udp', b.ip6, '5353', '2000'])).toMatchObject({
        reply: 'b:5353',
      })
      expect(
        (await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '1', '3000'])).replies,
      ).toEqual(['b:8080'])
    }, 30_000)
  },
)
