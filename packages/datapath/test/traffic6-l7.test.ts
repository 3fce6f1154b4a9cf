/**
 * IPv6 L7 redirect and IPv6 hairpin with real traffic. IPv6 forwarding is a global switch, so
 * the routing "node" is a network namespace of its own; the datapath and a small proxy run in
 * one process inside it (test/fixtures/proxy6-node.ts). A client's IPv6 connection is DNATed
 * by its endpoint program to the proxy on [routerIp6]:15080; the proxy asks lookupProxyOrigin
 * where the client was going and connects there with the proxy SO_MARK; the client sees the
 * original destination as its socket's peer.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { describeKernel, type NetNamespace, TestNetwork } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { PolicyDiffInput, ProxyOrigin } from '../src'
import { buildObjects } from './_btf'
import { client, startServer, type Workload } from './_topology'

const ROUTER6 = 'fd00:216:ff::1'
const PROXY_PORT = 15080
const VIP6 = 'fd00:216:96::10'

interface ProxyNode {
  send<T = undefined>(cmd: object): Promise<T>
  close(): Promise<void>
}

/** Start test/fixtures/proxy6-node.ts inside `ns` and talk to it line by line. */
function startProxyNode(ns: NetNamespace): ProxyNode {
  const tsx = createRequire(import.meta.url).resolve('tsx')
  const script = fileURLToPath(new URL('./fixtures/proxy6-node.ts', import.meta.url))
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns.name,
      process.execPath,
      '--conditions=@membrane/source',
      '--import',
      tsx,
      script,
      ROUTER6,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('..', import.meta.url)) },
  )
  let pending: ((line: string) => void) | undefined
  let buf = ''
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      pending?.(line)
    }
  })
  child.once('exit', (code) => pending?.(`error: proxy node exited with ${code}`))
  const send = <T>(cmd: object) =>
    new Promise<T>((resolve, reject) => {
      pending = (line) => {
        if (line === 'ok') resolve(undefined as T)
        else if (line.startsWith('ok ')) resolve(JSON.parse(line.slice(3)) as T)
        else reject(new Error(`proxy node: ${line}`))
      }
      child.stdin?.write(`${JSON.stringify(cmd)}\n`)
    })
  return {
    send,
    async close() {
      if (child.exitCode !== null) return
      await send({ cmd: 'close' }).catch(() => {})
      await new Promise((resolve) =>
        child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
      )
    },
  }
}

describeKernel(
  'IPv6 L7 redirect and hairpin through the endpoint programs (real traffic)',
  ['root', 'bpf', 'netns', 'tc', 'clang'],
  () => {
    const net = new TestNetwork()
    let node: NetNamespace
    let dp: ProxyNode
    let a: Workload & { ip6: string }
    let b: Workload & { ip6: string }

    /** A workload wired like traffic6.test.ts: /128 + default route via fe80::1 (the node). */
    async function workload6(ip: string, ip6: string, id: number, identity: number) {
      const ns = await net.namespace()
      const pair = await net.veth({ nsA: node, nsB: ns, nameB: 'eth0' })
      const nodeMac = (await node.exec('cat', [`/sys/class/net/${pair.a}/address`])).stdout.trim()
      await ns.exec('ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0'])
      await ns.exec('ip', ['-6', 'addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad'])
      await ns.exec('ip', ['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'])
      await ns.exec('ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0'])
      for (const [gw, family] of [
        ['169.254.1.1', '-4'],
        ['fe80::1', '-6'],
      ] as const)
        await ns.exec('ip', [
          family,
          'neigh',
          'replace',
          gw,
          'lladdr',
          nodeMac,
          'dev',
          'eth0',
          'nud',
          'permanent',
        ])
      await ns.exec('ip', ['-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0'])
      await node.exec('ip', ['route', 'add', `${ip}/32`, 'dev', pair.a])
      await node.exec('ip', ['-6', 'route', 'add', `${ip6}/128`, 'dev', pair.a])
      const mac = (await ns.exec('cat', ['/sys/class/net/eth0/address'])).stdout.trim()
      await dp.send({ cmd: 'attach', endpoints: [{ id, ifname: pair.a, ip, ip6, mac, identity }] })
      return { ns, ip, ip6, hostIf: pair.a, id, identity }
    }

    const policy = (endpointId: number, diff: PolicyDiffInput) =>
      dp.send({ cmd: 'policy', endpointId, diff })
    const origins = () => dp.send<(ProxyOrigin | null)[]>({ cmd: 'origins' })

    beforeAll(async () => {
      buildObjects()
      node = await net.namespace()
      await node.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
      await node.exec('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1'])
      dp = startProxyNode(node)
      a = await workload6('10.216.1.10', 'fd00:216:1::10', 1, 5001)
      b = await workload6('10.216.2.10', 'fd00:216:2::10', 2, 5002)
      // The router address lives on the node (here on a's host-side veth), as in the v4 test.
      await node.exec('ip', ['-6', 'addr', 'add', `${ROUTER6}/128`, 'dev', a.hostIf, 'nodad'])
      await startServer(b, 'b', [8080])
      await dp.send({ cmd: 'proxy', port: PROXY_PORT, mark: true })
      await policy(a.id, {
        upserts: [
          {
            key: { identity: 5002, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false, proxyPort: PROXY_PORT },
          },
        ],
      })
      await policy(b.id, {
        upserts: [
          {
            key: { identity: 5001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
    }, 120_000)

    afterAll(async () => {
      await dp?.close()
      await net.cleanup()
    })

    it('the IPv6 client talks to the proxy while its socket peer is the server', async () => {
      const r = await client<{ replies: string[]; remotes: string[] }>(a, [
        'tcp',
        b.ip6,
        '8080',
        '2',
        '3000',
      ])
      expect(r.replies).toEqual(['proxied:b:8080', 'proxied:b:8080'])
      expect(r.remotes).toEqual([`${b.ip6}:8080`, `${b.ip6}:8080`])
      expect((await origins()).at(-1)).toEqual({
        address: b.ip6,
        port: 8080,
        srcIdentity: 5001,
        dstIdentity: 5002,
        endpointId: a.id,
        direction: 'egress',
      })
      // The upstream connection was admitted by b's ingress policy through the mark.
      const ct = await dp.send<{ daddr: string; flags: string[] }[]>({ cmd: 'ct' })
      expect(ct.some((e) => e.daddr === b.ip6 && e.flags.includes('FROM_PROXY'))).toBe(true)
    }, 30_000)

    it('without the mark the upstream is a stranger to the destination and is dropped', async () => {
      await dp.send({ cmd: 'proxy', port: PROXY_PORT, mark: false })
      try {
        const r = await client<{ replies: string[] }>(a, ['tcp', b.ip6, '8080', '1', '1500'])
        expect(r.replies).toEqual(['ERR:TIMEOUT'])
      } finally {
        await dp.send({ cmd: 'proxy', port: PROXY_PORT, mark: true })
      }
    }, 30_000)

    it("an ingress L7 rule of a local destination redirects in the sender's program", async () => {
      await policy(a.id, {
        upserts: [
          {
            key: { identity: 5002, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      await policy(b.id, {
        upserts: [
          {
            key: { identity: 5001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false, proxyPort: PROXY_PORT },
          },
        ],
      })
      await dp.send({ cmd: 'flushCt' })
      const r = await client<{ replies: string[]; remotes: string[] }>(a, [
        'tcp',
        b.ip6,
        '8080',
        '1',
        '3000',
      ])
      expect(r.replies).toEqual(['proxied:b:8080'])
      expect(r.remotes).toEqual([`${b.ip6}:8080`])
      expect((await origins()).at(-1)).toMatchObject({
        address: b.ip6,
        port: 8080,
        srcIdentity: 5001,
        endpointId: b.id,
        direction: 'ingress',
      })
    }, 30_000)

    it('hairpin: an IPv6 workload reaches a ClusterIP whose only backend is itself', async () => {
      await startServer(a, 'a', [8080])
      await policy(a.id, {
        upserts: (['ingress', 'egress'] as const).map((direction) => ({
          key: { identity: 5001, direction, protocol: 6, port: 8080 },
          value: { deny: false },
        })),
      })
      await dp.send({
        cmd: 'service',
        address: VIP6,
        port: 80,
        backends: [{ address: a.ip6, port: 8080 }],
      })
      try {
        const r = await client<{ replies: string[]; remotes: string[] }>(a, [
          'tcp',
          VIP6,
          '80',
          '3',
          '3000',
        ])
        expect(r.replies).toEqual(['a:8080', 'a:8080', 'a:8080'])
        expect(r.remotes.every((x) => x === `${VIP6}:80`)).toBe(true)
        const ct = await dp.send<{ saddr: string; daddr: string; flags: string[] }[]>({
          cmd: 'ct',
        })
        expect(
          ct.some((e) => e.saddr === 'fe80::1' && e.daddr === a.ip6 && e.flags.includes('HAIRPIN')),
        ).toBe(true)
        // The same flow without the source rewrite never gets its replies translated back.
        await dp.send({ cmd: 'configure', hairpinIp6: '::' })
        await dp.send({ cmd: 'flushCt' })
        const off = await client<{ replies: string[] }>(a, ['tcp', VIP6, '80', '1', '1500'])
        expect(off.replies[0]).toMatch(/^ERR:/)
      } finally {
        await dp.send({ cmd: 'configure', hairpinIp6: 'fe80::1' })
        await dp.send({ cmd: 'deleteService', address: VIP6, port: 80 })
      }
    }, 30_000)
  },
)
