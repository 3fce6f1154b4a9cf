import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { proxyMark } from '@membrane/types'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { Datapath, DropReason } from '../src/index'
import { buildPacket, type PacketSpec, TcpFlags } from '../src/testing'
import { buildObjects } from './_btf'
import { decodeRawEvent, type RawEvent } from './_event'
import { maglevPredictor, progHelpers } from './_prog'

const TC_ACT_OK = 0
const TC_ACT_SHOT = 2
const EP = { id: 10, identity: 1000, ifindex: 1, ip: '10.0.1.10', mac: '02:00:00:00:01:0a' }
const ROUTER = '10.0.0.254'

describeKernel(
  'endpoint programs (BPF_PROG_TEST_RUN)',
  ['root', 'bpf', 'bpffs', 'clang', 'bin:bpftool'],
  () => {
    let dp: Datapath
    let pins: { path: string; remove(): void }
    const events: RawEvent[] = []
    let sub: { close(): void }

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path, routerIp4: ROUTER })
      sub = dp.events((r) => events.push(decodeRawEvent(r)))
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

    const { run, tcp, drops, waitEvents } = progHelpers(() => dp, events)

    it('ingress: allows by identity and port, drops other ports with POLICY (133)', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('to_container', tcp('10.0.2.5', 40000, EP.ip, 80))).retval).toBe(TC_ACT_OK)
      const before = drops(133, 'ingress')
      expect((await run('to_container', tcp('10.0.2.5', 40000, EP.ip, 81))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(133, 'ingress')).toBe(before + 1n)
      // Another identity on the allowed port: denied.
      dp.ipcache.upsert('10.0.9.0/24', 2001)
      expect((await run('to_container', tcp('10.0.9.5', 40000, EP.ip, 80))).retval).toBe(
        TC_ACT_SHOT,
      )
    })

    it('deny takes precedence over allow (181), and the drop event says so', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
          {
            key: { identity: 0, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: true },
          },
        ],
      })
      expect((await run('to_container', tcp('10.0.2.5', 40010, EP.ip, 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      const [drop] = await waitEvents((e) => e.type === 1 && e.sport === 40010)
      expect(drop).toMatchObject({
        subtype: DropReason.POLICY_DENY,
        direction: 1,
        endpointId: EP.id,
        srcIdentity: 2000,
        dstIdentity: EP.identity,
        saddr: '10.0.2.5',
        daddr: EP.ip,
        sport: 40010,
        dport: 80,
        protocol: 6,
      })
      const [verdict] = await waitEvents((e) => e.type === 5 && e.sport === 40010)
      // The deny came from the identity-0 (L4-only) entry.
      expect(verdict).toMatchObject({ action: 2, matchType: 3, direction: 1 })
    })

    it('port-range prefixes, L3-only and L4-only entries', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.ipcache.upsert('10.0.3.0/24', 3000)
      dp.policyMap(EP.id).apply({
        upserts: [
          // 4992..5007 (5000 with a 12-bit prefix)
          {
            key: {
              identity: 2000,
              direction: 'ingress',
              protocol: 17,
              port: 5000,
              portPrefixLen: 12,
            },
            value: { deny: false },
          },
          // L3-only: everything from identity 3000
          {
            key: { identity: 3000, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
          // L4-only: TCP 443 from anyone
          {
            key: { identity: 0, direction: 'ingress', protocol: 6, port: 443 },
            value: { deny: false },
          },
        ],
      })
      const udp = (dport: number, sport = 1000): PacketSpec => ({
        saddr: '10.0.2.5',
        daddr: EP.ip,
        sport,
        dport,
        protocol: 'UDP',
      })
      expect((await run('to_container', udp(4992))).retval).toBe(TC_ACT_OK)
      expect((await run('to_container', udp(5007))).retval).toBe(TC_ACT_OK)
      expect((await run('to_container', udp(5008))).retval).toBe(TC_ACT_SHOT)
      expect((await run('to_container', udp(4991))).retval).toBe(TC_ACT_SHOT)
      expect((await run('to_container', tcp('10.0.3.7', 1234, EP.ip, 9999))).retval).toBe(TC_ACT_OK)
      expect(
        (await run('to_container', { saddr: '10.0.3.7', daddr: EP.ip, protocol: 'ICMP' })).retval,
      ).toBe(TC_ACT_OK)
      expect((await run('to_container', tcp('10.0.9.9', 1234, EP.ip, 443))).retval).toBe(TC_ACT_OK)
      expect((await run('to_container', tcp('10.0.9.9', 1234, EP.ip, 444))).retval).toBe(
        TC_ACT_SHOT,
      )
      const verdicts = await waitEvents(
        (e) => e.type === 5 && e.action === 1 && e.daddr === EP.ip && e.dport === 4992,
      )
      verdicts.push(...events.filter((e) => e.type === 5 && e.action === 1 && e.daddr === EP.ip))
      const byPort = new Map(verdicts.map((v) => [v.dport, v.matchType]))
      expect(byPort.get(9999)).toBe(2) // L3_ONLY
      expect(byPort.get(443)).toBe(3) // L4_ONLY
      expect(byPort.get(4992)).toBe(1) // L3_L4
    })

    it('replies of an allowed connection pass without a policy entry (conntrack)', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp(EP.ip, 40020, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_OK,
      )
      // Reply: no ingress entry exists, conntrack lets it in.
      expect(
        (await run('to_container', tcp('10.0.2.5', 80, EP.ip, 40020, TcpFlags.SYN | TcpFlags.ACK)))
          .retval,
      ).toBe(TC_ACT_OK)
      // Not a reply (other port): dropped.
      expect(
        (await run('to_container', tcp('10.0.2.5', 80, EP.ip, 40021, TcpFlags.SYN | TcpFlags.ACK)))
          .retval,
      ).toBe(TC_ACT_SHOT)
      const ct = dp.ct.get({
        saddr: EP.ip,
        daddr: '10.0.2.5',
        sport: 40020,
        dport: 80,
        protocol: 6,
      })
      expect(ct).toMatchObject({ srcIdentity: EP.identity, endpointId: EP.id, packets: 2n })
      expect(ct?.flagNames).toContain('SEEN_REPLY')
      // Egress to a port without an entry: dropped on egress.
      const before = drops(133, 'egress')
      expect((await run('from_container', tcp(EP.ip, 40022, '10.0.2.5', 81))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(133, 'egress')).toBe(before + 1n)
    })

    it('ICMP errors about a tracked connection pass as related traffic; others meet policy', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 17, port: 53 },
            value: { deny: false },
          },
        ],
      })
      expect(
        (
          await run('from_container', {
            saddr: EP.ip,
            sport: 7001,
            daddr: '10.0.2.5',
            dport: 53,
            protocol: 'UDP',
          })
        ).retval,
      ).toBe(TC_ACT_OK)
      const inner = (sport: number) =>
        buildPacket({
          saddr: EP.ip,
          sport,
          daddr: '10.0.2.5',
          dport: 53,
          protocol: 'UDP',
        }).subarray(14, 14 + 28)
      // Port unreachable from the server about the client's datagram: related.
      const related = await run('to_container', {
        saddr: '10.0.2.5',
        daddr: EP.ip,
        protocol: 'ICMP',
        icmpType: 3,
        payload: inner(7001),
      })
      expect(related.retval).toBe(TC_ACT_OK)
      // About a flow nobody opened: an ordinary ICMP packet, and no entry allows it.
      const stranger = await run('to_container', {
        saddr: '10.0.2.5',
        daddr: EP.ip,
        protocol: 'ICMP',
        icmpType: 3,
        payload: inner(7002),
      })
      expect(stranger.retval).toBe(TC_ACT_SHOT)
    })

    it('drops spoofed source addresses (132)', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp('10.0.1.99', 1, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(DropReason.INVALID_SIP, 'egress')).toBeGreaterThan(0n)
    })

    for (const protocol of ['TCP', 'UDP'] as const) {
      it(`service DNAT and reverse NAT with valid checksums (${protocol})`, async () => {
        dp.ipcache.upsert('10.0.3.0/24', 4000)
        dp.policyMap(EP.id).apply({
          upserts: [
            {
              key: {
                identity: 4000,
                direction: 'egress',
                protocol: protocol === 'TCP' ? 6 : 17,
                port: 8080,
              },
              value: { deny: false },
            },
          ],
        })
        dp.services.upsert({
          address: '10.96.0.10',
          port: 80,
          protocol,
          backends: [{ address: '10.0.3.1', port: 8080 }],
        })
        const out = await run('from_container', {
          saddr: EP.ip,
          sport: 40030,
          daddr: '10.96.0.10',
          dport: 80,
          protocol,
          payload: Buffer.from('hello'),
        })
        expect(out.retval).toBe(TC_ACT_OK)
        expect(out.pkt).toMatchObject({
          daddr: '10.0.3.1',
          dport: 8080,
          saddr: EP.ip,
          sport: 40030,
          ipChecksumOk: true,
          l4ChecksumOk: true,
        })
        const back = await run('to_container', {
          saddr: '10.0.3.1',
          sport: 8080,
          daddr: EP.ip,
          dport: 40030,
          protocol,
          tcpFlags: TcpFlags.SYN | TcpFlags.ACK,
          payload: Buffer.from('world!'),
        })
        expect(back.retval).toBe(TC_ACT_OK)
        expect(back.pkt).toMatchObject({
          saddr: '10.96.0.10',
          sport: 80,
          daddr: EP.ip,
          dport: 40030,
          ipChecksumOk: true,
          l4ChecksumOk: true,
        })
        expect(back.pkt.payload.toString()).toBe('world!')
        const svcEntry = dp.ct.get({
          saddr: EP.ip,
          daddr: '10.96.0.10',
          sport: 40030,
          dport: 80,
          protocol: protocol === 'TCP' ? 6 : 17,
          service: true,
        })
        expect(svcEntry?.backendId).toBe(
          dp.services.get('10.96.0.10', 80, protocol)?.backends[0]?.id,
        )
        dp.services.delete('10.96.0.10', 80, protocol)
      })
    }

    it('hairpin: a client that is its own backend gets through, both halves rewritten', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: EP.identity, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
          {
            key: { identity: EP.identity, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      dp.services.upsert({
        address: '10.96.0.40',
        port: 80,
        backends: [{ address: EP.ip, port: 8080 }],
      })
      try {
        const out = await run('from_container', tcp(EP.ip, 40060, '10.96.0.40', 80))
        expect(out.retval).toBe(TC_ACT_OK)
        expect(out.pkt).toMatchObject({
          saddr: '169.254.42.1',
          sport: 40060,
          daddr: EP.ip,
          dport: 8080,
          ipChecksumOk: true,
          l4ChecksumOk: true,
        })
        expect((await run('to_container', tcp('169.254.42.1', 40060, EP.ip, 8080))).retval).toBe(
          TC_ACT_OK,
        )
        const reply = await run(
          'from_container',
          tcp(EP.ip, 8080, '169.254.42.1', 40060, TcpFlags.SYN | TcpFlags.ACK),
        )
        expect(reply.retval).toBe(TC_ACT_OK)
        expect(reply.pkt).toMatchObject({
          saddr: '10.96.0.40',
          sport: 80,
          daddr: EP.ip,
          dport: 40060,
          ipChecksumOk: true,
          l4ChecksumOk: true,
        })
        expect(
          (
            await run(
              'to_container',
              tcp('10.96.0.40', 80, EP.ip, 40060, TcpFlags.SYN | TcpFlags.ACK),
            )
          ).retval,
        ).toBe(TC_ACT_OK)
        // Another hairpin source (the hairpinIp4 option / configure) is the one written.
        dp.configure({ hairpinIp4: '169.254.7.7' })
        dp.ct.flush()
        const other = await run('from_container', tcp(EP.ip, 40061, '10.96.0.40', 80))
        expect(other.pkt).toMatchObject({ saddr: '169.254.7.7', daddr: EP.ip, l4ChecksumOk: true })
        expect(() => dp.configure({ hairpinIp4: 'nope' })).toThrowError(/hairpinIp4/)
      } finally {
        dp.configure({ hairpinIp4: '169.254.42.1' })
        dp.services.delete('10.96.0.40', 80)
      }
    })

    it('UDP without checksum stays without checksum through DNAT', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 17, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      dp.services.upsert({
        address: '10.96.0.53',
        port: 53,
        protocol: 'UDP',
        backends: [{ address: '10.0.3.9', port: 5353 }],
      })
      const out = await run('from_container', {
        saddr: EP.ip,
        sport: 999,
        daddr: '10.96.0.53',
        dport: 53,
        protocol: 'UDP',
        udpNoChecksum: true,
      })
      expect(out.pkt).toMatchObject({ daddr: '10.0.3.9', dport: 5353, ipChecksumOk: true })
      const raw = (
        await dp.program('from_container').testRun({
          data: buildPacket({
            saddr: EP.ip,
            sport: 998,
            daddr: '10.96.0.53',
            dport: 53,
            protocol: 'UDP',
            udpNoChecksum: true,
          }),
        })
      ).data
      expect(raw.readUInt16BE(14 + 20 + 6)).toBe(0)
      dp.services.delete('10.96.0.53', 53, 'UDP')
    })

    it('Maglev: the backend of each flow is the one @membrane/maglev predicts', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      const backends = [1, 2, 3, 4, 5].map((i) => ({ address: `10.0.4.${i}`, port: 8080 }))
      const svc = dp.services.upsert({ address: '10.96.0.20', port: 80, backends })
      const predict = maglevPredictor(svc)
      const seen = new Set<string>()
      for (let i = 0; i < 40; i++) {
        const sport = 20000 + i * 7
        const out = await run('from_container', tcp(EP.ip, sport, '10.96.0.20', 80))
        expect(out.pkt.daddr).toBe(predict(EP.ip, sport, 80))
        seen.add(out.pkt.daddr)
      }
      expect(seen.size).toBeGreaterThan(2)
      dp.services.delete('10.96.0.20', 80)
    })

    it('a draining backend keeps its connections and gets no new ones; no backend is 158', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      const backends = [1, 2, 3].map((i) => ({ address: `10.0.5.${i}`, port: 80 }))
      dp.services.upsert({ address: '10.96.0.30', port: 80, algorithm: 'random', backends })
      const first = await run('from_container', tcp(EP.ip, 30000, '10.96.0.30', 80))
      const chosen = first.pkt.daddr
      dp.services.upsert({
        address: '10.96.0.30',
        port: 80,
        algorithm: 'random',
        backends: backends.filter((b) => b.address !== chosen),
      })
      const again = await run('from_container', tcp(EP.ip, 30000, '10.96.0.30', 80, TcpFlags.ACK))
      expect(again.pkt.daddr).toBe(chosen)
      for (let i = 1; i < 30; i++) {
        const n = await run('from_container', tcp(EP.ip, 30000 + i, '10.96.0.30', 80))
        expect(n.pkt.daddr).not.toBe(chosen)
      }
      dp.services.upsert({ address: '10.96.0.30', port: 80, backends: [] })
      const before = drops(DropReason.NO_SERVICE, 'egress')
      expect((await run('from_container', tcp(EP.ip, 31000, '10.96.0.30', 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(DropReason.NO_SERVICE, 'egress')).toBe(before + 1n)
      // The drained backend is collected once no connection uses it.
      const chosenId = dp.services.get('10.96.0.30', 80)?.draining.find((d) => d.address === chosen)
        ?.id as number
      expect(chosenId).toBeGreaterThan(0)
      expect(dp.gc().backendsDeleted).not.toContain(chosenId)
      dp.ct.flush()
      expect(dp.gc().backendsDeleted).toContain(chosenId)
      dp.services.delete('10.96.0.30', 80)
    })

    it('local delivery checks the destination endpoint ingress policy in from-container', async () => {
      dp.endpoints.upsert({
        id: 20,
        identity: 5000,
        ifindex: 999,
        ip: '10.0.1.20',
        mac: '02:00:00:00:01:14',
      })
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 5000, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp(EP.ip, 40040, '10.0.1.20', 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      const [drop] = await waitEvents((e) => e.type === 1 && e.sport === 40040)
      expect(drop).toMatchObject({
        subtype: 133,
        direction: 1,
        endpointId: 20,
        srcIdentity: EP.identity,
        dstIdentity: 5000,
      })
      dp.policyMap(20).apply({
        upserts: [
          {
            key: { identity: EP.identity, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp(EP.ip, 40041, '10.0.1.20', 80))).retval).toBe(
        TC_ACT_OK,
      )
    })

    it('L7 redirect: DNAT to the proxy, original destination recorded, replies reverse-NATed', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false, proxyPort: 15001 },
          },
        ],
      })
      const out = await run('from_container', tcp(EP.ip, 40050, '10.0.2.5', 80))
      expect(out.retval).toBe(TC_ACT_OK)
      expect(out.pkt).toMatchObject({
        daddr: ROUTER,
        dport: 15001,
        ipChecksumOk: true,
        l4ChecksumOk: true,
      })
      expect(dp.lookupProxyOrigin(EP.ip, 40050, 'TCP')).toEqual({
        address: '10.0.2.5',
        port: 80,
        srcIdentity: EP.identity,
        dstIdentity: 2000,
        endpointId: EP.id,
        direction: 'egress',
      })
      // Later packets of the flow follow.
      const next = await run('from_container', tcp(EP.ip, 40050, '10.0.2.5', 80, TcpFlags.ACK))
      expect(next.pkt).toMatchObject({ daddr: ROUTER, dport: 15001 })
      const reply = await run(
        'to_container',
        tcp(ROUTER, 15001, EP.ip, 40050, TcpFlags.SYN | TcpFlags.ACK),
      )
      expect(reply.retval).toBe(TC_ACT_OK)
      expect(reply.pkt).toMatchObject({
        saddr: '10.0.2.5',
        sport: 80,
        ipChecksumOk: true,
        l4ChecksumOk: true,
      })
      const [trace] = await waitEvents((e) => e.type === 4 && e.subtype === 1 && e.sport === 40050)
      expect(trace).toMatchObject({ proxyPort: 15001 })
    })

    it('the proxy upstream (skb mark) is admitted by identity and not redirected again', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false, proxyPort: 15002 },
          },
        ],
      })
      const marked = await run('to_container', tcp(ROUTER, 50000, EP.ip, 80), proxyMark(2000))
      expect(marked.retval).toBe(TC_ACT_OK)
      expect(marked.pkt.daddr).toBe(EP.ip)
      expect(
        dp.ct.get({ saddr: ROUTER, daddr: EP.ip, sport: 50000, dport: 80, protocol: 6 })?.flagNames,
      ).toContain('FROM_PROXY')
      // A mark with another identity is not allowed.
      expect(
        (await run('to_container', tcp(ROUTER, 50001, EP.ip, 80), proxyMark(2001))).retval,
      ).toBe(TC_ACT_SHOT)
      // Without the mark, an L7 ingress rule cannot be enforced on this path: dropped (179).
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      expect((await run('to_container', tcp('10.0.2.5', 50002, EP.ip, 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(DropReason.PROXY_SET_FAILED, 'ingress')).toBeGreaterThan(0n)
    })

    it('conntrack GC deletes expired entries only; startGc runs it on a timer', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      await run('from_container', {
        saddr: EP.ip,
        sport: 7000,
        daddr: '10.0.2.5',
        dport: 53,
        protocol: 'UDP',
      })
      const entry = dp.ct.get({
        saddr: EP.ip,
        daddr: '10.0.2.5',
        sport: 7000,
        dport: 53,
        protocol: 17,
      })
      expect(entry).toBeDefined()
      // A UDP entry lives 60 s from its last packet.
      const lifetime = (entry?.expiresNs ?? 0n) - (entry?.createdNs ?? 0n)
      expect(lifetime).toBe(60_000_000_000n)
      expect(dp.gc((entry?.expiresNs ?? 0n) - 1n).ct.deleted).toBe(0)
      expect(dp.gc((entry?.expiresNs ?? 0n) + 1n).ct.deleted).toBeGreaterThanOrEqual(1)
      expect(
        dp.ct.get({ saddr: EP.ip, daddr: '10.0.2.5', sport: 7000, dport: 53, protocol: 17 }),
      ).toBeUndefined()
      const results: unknown[] = []
      const stop = dp.startGc(100, (r) => results.push(r))
      await new Promise((r) => setTimeout(r, 350))
      stop()
      expect(results.length).toBeGreaterThanOrEqual(2)
    })

    it('packets of an unknown interface are dropped with NO_CONFIG (165)', async () => {
      dp.endpoints.delete(1)
      expect((await run('from_container', tcp(EP.ip, 1, '10.0.2.5', 80))).retval).toBe(TC_ACT_SHOT)
      expect(drops(DropReason.NO_CONFIG, 'egress')).toBeGreaterThan(0n)
    })
  },
)
