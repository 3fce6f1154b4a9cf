/**
 * Kernel integration tests: real TCP/UDP traffic between network namespaces through the
 * endpoint programs attached to the host-side veths.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import {
  describeKernel,
  ensureCgroup2,
  findMount,
  requireKernel,
  run,
  TestNetwork,
  tempBpffsDir,
  tempCgroup,
} from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Datapath } from '../src'
import { buildObjects } from './_btf'
import { attach, CLIENT, client, startServer, type Workload, workload } from './_topology'

const VIP = '10.96.213.10'

describeKernel(
  'real traffic through the endpoint programs',
  ['root', 'bpf', 'bpffs', 'netns', 'tc', 'cgroup2', 'clang'],
  () => {
    const net = new TestNetwork()
    let pins: { path: string; remove(): void }
    let dp: Datapath
    let a: Workload
    let b: Workload[]

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path })
      a = await workload(net, '10.213.1.10', 1, 1001, dp)
      b = []
      for (let i = 1; i <= 3; i++) {
        const w = await workload(net, `10.213.2.${i}`, 10 + i, 1002, dp)
        await startServer(w, `b${i}`, [8080, 8081], 5353)
        b.push(w)
      }
      // a: egress to identity 1002 on TCP 8080/8081 and UDP 5353; b*: ingress from 1001 on TCP 8080, UDP 5353.
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
            key: { identity: 1002, direction: 'egress', protocol: 17, port: 5353 },
            value: { deny: false },
          },
        ],
      })
      for (const w of b)
        dp.policyMap(w.id).apply({
          upserts: [
            {
              key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8080 },
              value: { deny: false },
            },
            {
              key: { identity: 1001, direction: 'ingress', protocol: 17, port: 5353 },
              value: { deny: false },
            },
          ],
        })
    }, 120_000)

    afterAll(async () => {
      await net.cleanup()
      await dp?.close()
      pins?.remove()
    })

    const b1 = () => b[0] as Workload

    it('TCP: the allowed port connects, the port without an ingress entry does not', async () => {
      const ok = await client<{ replies: string[] }>(a, ['tcp', b1().ip, '8080', '2', '3000'])
      expect(ok.replies).toEqual(['b1:8080', 'b1:8080'])
      const denied = await client<{ replies: string[] }>(a, ['tcp', b1().ip, '8081', '1', '1500'])
      expect(denied.replies).toEqual(['ERR:TIMEOUT'])
      const drops = dp.counters().filter((c) => c.reason === 133 && c.direction === 'ingress')
      expect(drops.reduce((s, c) => s + c.packets, 0n)).toBeGreaterThan(0n)
    }, 30_000)

    it('UDP: allowed datagrams get their reply; a deny entry stops them', async () => {
      expect(await client<{ reply: string }>(a, ['udp', b1().ip, '5353', '2000'])).toMatchObject({
        reply: 'b1:5353',
      })
      dp.policyMap(b1().id).apply({
        upserts: [
          {
            key: { identity: 1001, direction: 'ingress', protocol: 17, port: 5353 },
            value: { deny: true },
          },
        ],
      })
      try {
        expect(await client<{ reply: string }>(a, ['udp', b1().ip, '5353', '1000'])).toEqual({
          reply: 'ERR:TIMEOUT',
        })
      } finally {
        dp.policyMap(b1().id).apply({
          upserts: [
            {
              key: { identity: 1001, direction: 'ingress', protocol: 17, port: 5353 },
              value: { deny: false },
            },
          ],
        })
      }
      // Conntrack of the first exchange was created by a's program, the reply passed b1's.
      expect(
        dp.ct
          .dump()
          .some(
            (e) => e.tuple.saddr === a.ip && e.tuple.daddr === b1().ip && e.tuple.protocol === 17,
          ),
      ).toBe(true)
    }, 30_000)

    it('UDP: a datagram larger than the MTU crosses as IPv4 fragments, to an endpoint and through a ClusterIP', async () => {
      const before = [157, 175].map((r) => dp.metrics.packets(r, 'egress'))
      expect(
        await client<{ reply: string }>(a, ['udp', b1().ip, '5353', '3000', '4000']),
      ).toMatchObject({ reply: 'b1:5353:4000' })
      dp.services.upsert({
        address: VIP,
        port: 53,
        protocol: 'UDP',
        backends: b.map((w) => ({ address: w.ip, port: 5353 })),
      })
      try {
        // Every fragment goes to the backend the first one chose (ports of the first).
        const r = await client<{ reply: string }>(a, ['udp', VIP, '53', '3000', '4000'])
        expect(r.reply).toMatch(/^b[123]:5353:4000$/)
      } finally {
        dp.services.delete(VIP, 53, 'UDP')
      }
      expect([157, 175].map((r) => dp.metrics.packets(r, 'egress'))).toEqual(before)
    }, 30_000)

    it('a ClusterIP with 3 backends spreads connections over them', async () => {
      dp.services.upsert({
        address: VIP,
        port: 80,
        backends: b.map((w) => ({ address: w.ip, port: 8080 })),
      })
      const r = await client<{ replies: string[] }>(a, ['tcp', VIP, '80', '30', '3000'])
      const counts = new Map<string, number>()
      for (const x of r.replies) counts.set(x, (counts.get(x) ?? 0) + 1)
      expect(r.replies.every((x) => /^b[123]:8080$/.test(x))).toBe(true)
      expect(counts.size).toBe(3)
    }, 60_000)

    // Sockets in the workloads hand veth CHECKSUM_PARTIAL packets: the L4 checksum field holds
    // only the pseudo-header sum and is completed later (by a NIC, or in software). Over veth
    // with offload on nobody ever completes it, so the receiver would accept a wrong one;
    // with tx checksumming off on the backends' host veths the kernel completes it in
    // software and the backends verify it, so a wrong DNAT update makes connections fail.
    const csumTool = requireKernel(['bin:ethtool'])
    it.skipIf(!csumTool.ok)(
      'service DNAT of CHECKSUM_PARTIAL packets: checksums completed in software are right (TCP and UDP)',
      async () => {
        const offload = (on: boolean) =>
          Promise.all(b.map((w) => run('ethtool', ['-K', w.hostIf, 'tx', on ? 'on' : 'off'])))
        dp.services.upsert({
          address: VIP,
          port: 80,
          backends: b.map((w) => ({ address: w.ip, port: 8080 })),
        })
        dp.services.upsert({
          address: VIP,
          port: 53,
          protocol: 'UDP',
          backends: b.map((w) => ({ address: w.ip, port: 5353 })),
        })
        await offload(false)
        try {
          const r = await client<{ replies: string[] }>(a, ['tcp', VIP, '80', '12', '3000'])
          expect(r.replies.every((x) => /^b[123]:8080$/.test(x))).toBe(true)
          expect(new Set(r.replies).size).toBeGreaterThan(1)
          const u = await client<{ reply: string }>(a, ['udp', VIP, '53', '3000'])
          expect(u.reply).toMatch(/^b[123]:5353$/)
        } finally {
          await offload(true)
          dp.services.delete(VIP, 80)
          dp.services.delete(VIP, 53, 'UDP')
        }
      },
      60_000,
    )

    it('removing a backend keeps its existing connection; new ones avoid it', async () => {
      dp.services.upsert({
        address: VIP,
        port: 80,
        backends: b.map((w) => ({ address: w.ip, port: 8080 })),
      })
      const hold = a.ns.spawn(process.execPath, [CLIENT, 'hold', VIP, '80'])
      const lines = createInterface({ input: hold.stdout as NodeJS.ReadableStream })
      const next = () =>
        new Promise<Record<string, string>>((resolve) =>
          lines.once('line', (l) => resolve(JSON.parse(l))),
        )
      try {
        expect(await next()).toEqual({ connected: true })
        hold.stdin?.write('send\n')
        const first = await next()
        const backend = first.reply as string
        expect(first.remote).toBe(`${VIP}:80`) // reverse NAT: the client sees the ClusterIP
        const victim = b.find((w) => backend.startsWith(`b${w.id - 10}:`)) as Workload
        dp.services.upsert({
          address: VIP,
          port: 80,
          backends: b.filter((w) => w !== victim).map((w) => ({ address: w.ip, port: 8080 })),
        })
        hold.stdin?.write('send\n')
        expect((await next()).reply).toBe(backend)
        const fresh = await client<{ replies: string[] }>(a, ['tcp', VIP, '80', '15', '3000'])
        expect(fresh.replies.filter((x) => x === backend)).toEqual([])
        expect(fresh.replies.every((x) => /^b[123]:8080$/.test(x))).toBe(true)
      } finally {
        hold.stdin?.end()
        hold.kill()
      }
    }, 60_000)

    it('socket LB: a client in the cgroup connects to a backend directly, getpeername shows the ClusterIP', async () => {
      dp.services.upsert({
        address: VIP,
        port: 80,
        backends: b.map((w) => ({ address: w.ip, port: 8080 })),
      })
      // The first cgroup2 mount in mountinfo can be shadowed by a later one (a v1 layout with
      // "unified" under a cgroup2 mount of /sys/fs/cgroup): use one that is reachable.
      const root = ['/sys/fs/cgroup', findMount('cgroup2') ?? '', ensureCgroup2()].find(
        (p) => p && existsSync(join(p, 'cgroup.procs')),
      )
      const cg = tempCgroup(root)
      try {
        await dp.attachSocketLb(cg.path)
        dp.ct.flush()
        const child = spawn(
          'sh',
          [
            '-c',
            'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
            'sh',
            cg.path,
            'ip',
            'netns',
            'exec',
            a.ns.name,
            process.execPath,
            CLIENT,
            'tcp',
            VIP,
            '80',
            '5',
            '3000',
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        )
        let out = ''
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
        })
        await new Promise((resolve) => child.once('exit', resolve))
        const r = JSON.parse(out.trim()) as { replies: string[]; remotes: string[] }
        expect(r.replies.every((x) => /^b[123]:8080$/.test(x))).toBe(true)
        expect(r.remotes.every((x) => x === `${VIP}:80`)).toBe(true)
        // The packets never carried the ClusterIP: no service selection in conntrack.
        const ct = dp.ct.dump()
        expect(ct.some((e) => e.tuple.service)).toBe(false)
        expect(
          ct.some(
            (e) =>
              e.tuple.saddr === a.ip &&
              e.tuple.daddr.startsWith('10.213.2.') &&
              e.tuple.dport === 8080,
          ),
        ).toBe(true)
        await dp.detachSocketLb(cg.path)
      } finally {
        cg.remove()
      }
    }, 60_000)

    it('hairpin: a workload reaches a ClusterIP whose backend is itself', async () => {
      const server = await startServer(a, 'a', [8080])
      dp.policyMap(a.id).apply({
        upserts: [
          {
            key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      dp.policyMap(a.id).apply({
        upserts: [
          {
            key: { identity: 1001, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      dp.services.upsert({
        address: '10.96.213.20',
        port: 80,
        backends: [{ address: a.ip, port: 8080 }],
      })
      try {
        const r = await client<{ replies: string[]; remotes: string[] }>(a, [
          'tcp',
          '10.96.213.20',
          '80',
          '3',
          '3000',
        ])
        expect(r.replies).toEqual(['a:8080', 'a:8080', 'a:8080'])
        expect(r.remotes.every((x) => x === '10.96.213.20:80')).toBe(true)
      } finally {
        dp.services.delete('10.96.213.20', 80)
        dp.policyMap(a.id).apply({
          deletes: [
            { identity: 1001, direction: 'ingress', protocol: 6, port: 8080 },
            { identity: 1001, direction: 'egress', protocol: 6, port: 8080 },
          ],
        })
        server.kill()
      }
    }, 30_000)

    it('maps and programs survive closing the Datapath and reopening it from the pins', async () => {
      dp.services.upsert({
        address: VIP,
        port: 80,
        backends: b.map((w) => ({ address: w.ip, port: 8080 })),
      })
      await dp.close({ keepPrograms: true })
      // Nobody holds the maps now but the pins and the attached programs: enforcement continues.
      expect(
        (await client<{ replies: string[] }>(a, ['tcp', b1().ip, '8080', '1', '3000'])).replies,
      ).toEqual(['b1:8080'])
      expect(
        (await client<{ replies: string[] }>(a, ['tcp', b1().ip, '8081', '1', '1000'])).replies,
      ).toEqual(['ERR:TIMEOUT'])
      dp = await Datapath.open({ pinRoot: pins.path })
      expect(dp.services.get(VIP, 80)?.backends.length).toBe(3)
      expect(dp.policyMap(a.id).size).toBe(3)
      expect(dp.ipcache.lookup(b1().ip)?.identity).toBe(1002)
      expect(dp.endpoints.byId(a.id)?.ip).toBe(a.ip)
      for (const w of [a, ...b]) await attach(dp, w)
      const r = await client<{ replies: string[] }>(a, ['tcp', VIP, '80', '3', '3000'])
      expect(r.replies.every((x) => /^b[123]:8080$/.test(x))).toBe(true)
    }, 60_000)
  },
)
