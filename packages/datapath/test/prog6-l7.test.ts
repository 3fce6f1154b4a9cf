/**
 * BPF_PROG_TEST_RUN tests of the IPv6 L7 redirect and the IPv6 hairpin of endpoint.o: the
 * DNAT target and its checksums, the mb_proxy6 record as lookupProxyOrigin reads it, the
 * reverse NAT of the proxy's replies, the proxy's upstream mark, and both halves of a hairpin
 * service flow. test_run runs tc programs on the loopback device, so the endpoint under test is
 * registered on ifindex 1.
 */
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { formatIpv6Bytes as formatIpv6, proxyMark } from '@membrane/types'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { Datapath, DEFAULT_HAIRPIN_IP6, DropReason } from '../src/index'
import { type PacketSpec6, TcpFlags } from '../src/testing'
import { buildObjects } from './_btf'
import { progHelpers6 } from './_prog'

const OK = 0
const SHOT = 2
const EP = {
  id: 10,
  identity: 1000,
  ifindex: 1,
  ip: '10.0.1.10',
  ip6: 'fd00:1::10',
  mac: '02:00:00:00:01:0a',
}
const PEER = 'fd00:2::5'
const ROUTER6 = 'fd00:ff::1'

describeKernel(
  'endpoint programs, IPv6 L7 redirect and hairpin (BPF_PROG_TEST_RUN)',
  ['root', 'bpf', 'bpffs', 'clang'],
  () => {
    let dp: Datapath
    let pins: { path: string; remove(): void }
    const events: Buffer[] = []
    let sub: { close(): void }

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path, routerIp6: ROUTER6 })
      sub = dp.events((r) => events.push(r))
      dp.ipcache.upsert('fd00:2::/64', 2000)
    })
    afterAll(async () => {
      sub?.close()
      await dp?.close()
      pins?.remove()
    })
    beforeEach(() => {
      dp.ct.flush()
      for (const e of dp.endpoints.list()) dp.endpoints.delete(e.ifindex)
      dp.policyMap(EP.id).clear()
      dp.policyMap(20).clear()
      dp.endpoints.upsert(EP)
      events.length = 0
    })

    const { run, tcp } = progHelpers6(() => dp)
    const egressProxy = (port: number, proxyPort: number, protocol = 6) =>
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol, port },
            value: { deny: false, proxyPort },
          },
        ],
      })

    for (const protocol of ['TCP', 'UDP'] as const) {
      it(`egress L7 rule: DNAT to [routerIp6]:proxy port, mb_proxy6 record, replies reverse-NATed (${protocol})`, async () => {
        egressProxy(80, 15001, protocol === 'TCP' ? 6 : 17)
        const out = await run('from_container', {
          saddr: EP.ip6,
          sport: 40050,
          daddr: PEER,
          dport: 80,
          protocol,
          payload: Buffer.from('GET / HTTP/1.1\r\n'),
        })
        expect(out.retval).toBe(OK)
        expect(out.pkt).toMatchObject({
          saddr: EP.ip6,
          sport: 40050,
          daddr: ROUTER6,
          dport: 15001,
          l4ChecksumOk: true,
        })
        expect(out.pkt.payload.toString()).toBe('GET / HTTP/1.1\r\n')
        expect(dp.lookupProxyOrigin(EP.ip6, 40050, protocol)).toEqual({
          address: PEER,
          port: 80,
          srcIdentity: EP.identity,
          dstIdentity: 2000,
          endpointId: EP.id,
          direction: 'egress',
        })
        // Another client port has no record; IPv4 clients are looked up in mb_proxy4.
        expect(dp.lookupProxyOrigin(EP.ip6, 40051, protocol)).toBeUndefined()
        expect(dp.lookupProxyOrigin(EP.ip, 40050, protocol)).toBeUndefined()
        // Both conntrack entries: the flow (redirected) and the leg to the proxy (rev NAT).
        const proto = protocol === 'TCP' ? 6 : 17
        expect(
          dp.ct.get({ saddr: EP.ip6, daddr: PEER, sport: 40050, dport: 80, protocol: proto })
            ?.flagNames,
        ).toContain('PROXY_REDIRECT')
        expect(
          dp.ct.get({
            saddr: EP.ip6,
            daddr: ROUTER6,
            sport: 40050,
            dport: 15001,
            protocol: proto,
          })?.flagNames,
        ).toContain('REV_NAT')
        // Later packets of the flow follow it to the proxy.
        const next = await run('from_container', {
          saddr: EP.ip6,
          sport: 40050,
          daddr: PEER,
          dport: 80,
          protocol,
          tcpFlags: TcpFlags.ACK,
        })
        expect(next.retval).toBe(OK)
        expect(next.pkt).toMatchObject({ daddr: ROUTER6, dport: 15001, l4ChecksumOk: true })
        // The proxy's reply reaches the client from the original destination.
        const reply = await run('to_container', {
          saddr: ROUTER6,
          sport: 15001,
          daddr: EP.ip6,
          dport: 40050,
          protocol,
          tcpFlags: TcpFlags.SYN | TcpFlags.ACK,
          payload: Buffer.from('HTTP/1.1 200 OK\r\n'),
        })
        expect(reply.retval).toBe(OK)
        expect(reply.pkt).toMatchObject({
          saddr: PEER,
          sport: 80,
          daddr: EP.ip6,
          dport: 40050,
          l4ChecksumOk: true,
        })
        expect(reply.pkt.payload.toString()).toBe('HTTP/1.1 200 OK\r\n')
      })
    }

    it('the redirect is traced TO_PROXY with the proxy port; the verdict says REDIRECTED', async () => {
      egressProxy(80, 15003)
      expect((await run('from_container', tcp(EP.ip6, 40070, PEER, 80))).retval).toBe(OK)
      const isOurs = (e: Buffer) => e.readUInt16LE(48) === 40070
      for (let i = 0; i < 50 && events.filter(isOurs).length < 2; i++)
        await new Promise((r) => setTimeout(r, 10))
      const trace = events.find((e) => isOurs(e) && e[0] === 4) as Buffer
      expect(trace).toBeDefined()
      expect(trace[1]).toBe(1) // MB_TRACE_TO_PROXY
      expect(trace.readUInt16LE(10)).toBe(15003)
      expect((trace[3] as number) & 1).toBe(1) // MB_EVF_IPV6
      const verdict = events.find((e) => isOurs(e) && e[0] !== 4 && e[0] !== 1) as Buffer
      expect(verdict).toBeDefined()
      expect(verdict[5]).toBe(3) // MB_ACTION_REDIRECTED
    })

    it('events of a translated IPv6 service flow carry the service address and port as orig', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      dp.services.upsert({
        address: 'fd00:96::50',
        port: 80,
        backends: [{ address: 'fd00:2::9', port: 8080 }],
      })
      try {
        const out = await run('from_container', tcp(EP.ip6, 40110, 'fd00:96::50', 80))
        expect(out.pkt).toMatchObject({ daddr: 'fd00:2::9', dport: 8080 })
        const isOurs = (e: Buffer) => e.readUInt16LE(48) === 40110
        for (let i = 0; i < 50 && events.filter(isOurs).length < 2; i++)
          await new Promise((r) => setTimeout(r, 10))
        const ours = events.filter(isOurs)
        expect(ours.length).toBeGreaterThanOrEqual(2) // verdict + trace
        for (const e of ours) {
          expect((e[3] as number) & 4).toBe(4) // MB_EVF_NAT
          expect(formatIpv6(e.subarray(88, 104))).toBe('fd00:96::50')
          expect(e.readUInt16LE(52)).toBe(80)
          expect(formatIpv6(e.subarray(72, 88))).toBe('fd00:2::9')
        }
      } finally {
        dp.services.delete('fd00:96::50', 80)
      }
    })

    it("an ingress L7 rule of a local destination redirects in the sender's program", async () => {
      dp.endpoints.upsert({
        id: 20,
        identity: 5000,
        ifindex: 999,
        ip: '10.0.1.20',
        ip6: 'fd00:1::20',
        mac: '02:00:00:00:01:14',
      })
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 5000, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      dp.policyMap(20).apply({
        upserts: [
          {
            key: { identity: EP.identity, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false, proxyPort: 15004 },
          },
        ],
      })
      const out = await run('from_container', tcp(EP.ip6, 40080, 'fd00:1::20', 8080))
      expect(out.retval).toBe(OK)
      expect(out.pkt).toMatchObject({ daddr: ROUTER6, dport: 15004, l4ChecksumOk: true })
      expect(dp.lookupProxyOrigin(EP.ip6, 40080)).toEqual({
        address: 'fd00:1::20',
        port: 8080,
        srcIdentity: EP.identity,
        dstIdentity: 5000,
        endpointId: 20,
        direction: 'ingress',
      })
      // The destination's ingress without an entry: dropped in the sender's program.
      expect((await run('from_container', tcp(EP.ip6, 40081, 'fd00:1::20', 8081))).retval).toBe(
        SHOT,
      )
    })

    it('a redirected service flow: the proxy sees the backend, the client the ClusterIP', async () => {
      egressProxy(8080, 15005)
      dp.services.upsert({
        address: 'fd00:96::30',
        port: 80,
        backends: [{ address: 'fd00:2::7', port: 8080 }],
      })
      try {
        const out = await run('from_container', tcp(EP.ip6, 40090, 'fd00:96::30', 80))
        expect(out.retval).toBe(OK)
        expect(out.pkt).toMatchObject({ daddr: ROUTER6, dport: 15005, l4ChecksumOk: true })
        expect(dp.lookupProxyOrigin(EP.ip6, 40090)).toMatchObject({
          address: 'fd00:2::7',
          port: 8080,
          direction: 'egress',
        })
        const reply = await run(
          'to_container',
          tcp(ROUTER6, 15005, EP.ip6, 40090, TcpFlags.SYN | TcpFlags.ACK),
        )
        expect(reply.retval).toBe(OK)
        expect(reply.pkt).toMatchObject({
          saddr: 'fd00:96::30',
          sport: 80,
          l4ChecksumOk: true,
        })
      } finally {
        dp.services.delete('fd00:96::30', 80)
      }
    })

    it('the proxy upstream (skb mark) is admitted by identity; unmarked L7 ingress is dropped (179)', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false, proxyPort: 15002 },
          },
        ],
      })
      const marked = await run('to_container', tcp(ROUTER6, 50000, EP.ip6, 80), proxyMark(2000))
      expect(marked.retval).toBe(OK)
      expect(marked.pkt).toMatchObject({ saddr: ROUTER6, daddr: EP.ip6, dport: 80 })
      expect(
        dp.ct.get({ saddr: ROUTER6, daddr: EP.ip6, sport: 50000, dport: 80, protocol: 6 })
          ?.flagNames,
      ).toContain('FROM_PROXY')
      // The reply of the upstream connection passes as a reply.
      expect(
        (await run('from_container', tcp(EP.ip6, 80, ROUTER6, 50000, TcpFlags.SYN | TcpFlags.ACK)))
          .retval,
      ).toBe(OK)
      // A mark with another identity has no entry.
      expect(
        (await run('to_container', tcp(ROUTER6, 50001, EP.ip6, 80), proxyMark(2001))).retval,
      ).toBe(SHOT)
      const before = dp.metrics.packets(DropReason.PROXY_SET_FAILED, 'ingress')
      expect((await run('to_container', tcp(PEER, 50002, EP.ip6, 80))).retval).toBe(SHOT)
      expect(dp.metrics.packets(DropReason.PROXY_SET_FAILED, 'ingress')).toBeGreaterThan(before)
    })

    it('without routerIp6 an IPv6 flow with a proxy port is dropped (179), nothing recorded', async () => {
      egressProxy(80, 15006)
      dp.configure({ routerIp6: '::' })
      try {
        const before = dp.metrics.packets(DropReason.PROXY_SET_FAILED, 'egress')
        expect((await run('from_container', tcp(EP.ip6, 40100, PEER, 80))).retval).toBe(SHOT)
        expect(dp.metrics.packets(DropReason.PROXY_SET_FAILED, 'egress')).toBeGreaterThan(before)
        expect(dp.lookupProxyOrigin(EP.ip6, 40100)).toBeUndefined()
        expect(
          dp.ct.get({ saddr: EP.ip6, daddr: PEER, sport: 40100, dport: 80, protocol: 6 }),
        ).toBeUndefined()
      } finally {
        dp.configure({ routerIp6: ROUTER6 })
      }
    })

    for (const protocol of ['TCP', 'UDP'] as const) {
      it(`hairpin: a client that is its own backend gets through, both halves rewritten (${protocol})`, async () => {
        const proto = protocol === 'TCP' ? 6 : 17
        dp.policyMap(EP.id).apply({
          upserts: (['egress', 'ingress'] as const).map((direction) => ({
            key: { identity: EP.identity, direction, protocol: proto, port: 8080 },
            value: { deny: false },
          })),
        })
        dp.services.upsert({
          address: 'fd00:96::40',
          port: 80,
          protocol,
          backends: [{ address: EP.ip6, port: 8080 }],
        })
        const HP = DEFAULT_HAIRPIN_IP6
        const pkt = (
          saddr: string,
          sport: number,
          daddr: string,
          dport: number,
          payload = '',
          tcpFlags: number = TcpFlags.SYN,
        ): PacketSpec6 => ({
          saddr,
          sport,
          daddr,
          dport,
          protocol,
          tcpFlags,
          payload: Buffer.from(payload),
        })
        try {
          const out = await run('from_container', pkt(EP.ip6, 40060, 'fd00:96::40', 80, 'hi'))
          expect(out.retval).toBe(OK)
          expect(out.pkt).toMatchObject({
            saddr: HP,
            sport: 40060,
            daddr: EP.ip6,
            dport: 8080,
            l4ChecksumOk: true,
          })
          expect(out.pkt.payload.toString()).toBe('hi')
          expect((await run('to_container', pkt(HP, 40060, EP.ip6, 8080))).retval).toBe(OK)
          const ack = TcpFlags.SYN | TcpFlags.ACK
          const reply = await run('from_container', pkt(EP.ip6, 8080, HP, 40060, 'there', ack))
          expect(reply.retval).toBe(OK)
          expect(reply.pkt).toMatchObject({
            saddr: 'fd00:96::40',
            sport: 80,
            daddr: EP.ip6,
            dport: 40060,
            l4ChecksumOk: true,
          })
          expect(reply.pkt.payload.toString()).toBe('there')
          expect(
            (await run('to_container', pkt('fd00:96::40', 80, EP.ip6, 40060, '', ack))).retval,
          ).toBe(OK)
          expect(
            dp.ct.get({ saddr: HP, daddr: EP.ip6, sport: 40060, dport: 8080, protocol: proto })
              ?.flagNames,
          ).toContain('HAIRPIN')
        } finally {
          dp.services.delete('fd00:96::40', 80, protocol)
        }
      })
    }

    it('hairpin off (hairpinIp6 "::"): the flow is translated but its source stays', async () => {
      dp.policyMap(EP.id).apply({
        upserts: (['egress', 'ingress'] as const).map((direction) => ({
          key: { identity: EP.identity, direction, protocol: 6, port: 8080 },
          value: { deny: false },
        })),
      })
      dp.services.upsert({
        address: 'fd00:96::41',
        port: 80,
        backends: [{ address: EP.ip6, port: 8080 }],
      })
      dp.configure({ hairpinIp6: '::' })
      try {
        const out = await run('from_container', tcp(EP.ip6, 40061, 'fd00:96::41', 80))
        expect(out.retval).toBe(OK)
        expect(out.pkt).toMatchObject({ saddr: EP.ip6, daddr: EP.ip6, dport: 8080 })
      } finally {
        dp.configure({ hairpinIp6: DEFAULT_HAIRPIN_IP6 })
        dp.services.delete('fd00:96::41', 80)
      }
    })

    it('configure rejects a malformed IPv6 router or hairpin address, naming the field', () => {
      expect(() => dp.configure({ routerIp6: '10.0.0.1' })).toThrow(/routerIp6|IPv6/)
      expect(() => dp.configure({ hairpinIp6: 'fe80::zz' })).toThrow(/IPv6/)
    })
  },
)
