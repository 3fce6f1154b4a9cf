import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { formatIpv6Bytes as formatIpv6 } from '@membrane/types'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { Datapath, DropReason } from '../src/index'
import { buildPacket6, type PacketSpec6, TcpFlags } from '../src/testing'
import { buildObjects } from './_btf'
import { maglevPredictor, progHelpers6 } from './_prog'

const TC_ACT_OK = 0
const TC_ACT_SHOT = 2

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

describeKernel(
  'endpoint programs, IPv6 (BPF_PROG_TEST_RUN)',
  ['root', 'bpf', 'bpffs', 'clang'],
  () => {
    let dp: Datapath
    let pins: { path: string; remove(): void }
    const events: Buffer[] = []
    let sub: { close(): void }

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path })
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
      dp.policyMap(EP.id).clear()
      dp.endpoints.upsert(EP)
    })

    const { run, tcp } = progHelpers6(() => dp)

    it('ingress policy by identity and port; the drop event carries IPv6 addresses', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('to_container', tcp(PEER, 40000, EP.ip6, 80))).retval).toBe(OK)
      expect((await run('to_container', tcp(PEER, 40001, EP.ip6, 81))).retval).toBe(SHOT)
      for (
        let i = 0;
        i < 50 && !events.some((e) => e[0] === 1 && e.readUInt16LE(48) === 40001);
        i++
      )
        await new Promise((r) => setTimeout(r, 10))
      const drop = events.find((e) => e[0] === 1 && e.readUInt16LE(48) === 40001) as Buffer
      expect(drop[1]).toBe(DropReason.POLICY)
      expect((drop[3] as number) & 1).toBe(1) // MB_EVF_IPV6
      expect(formatIpv6(drop.subarray(56, 72))).toBe(PEER)
      expect(formatIpv6(drop.subarray(72, 88))).toBe(EP.ip6)
      expect(drop.readUInt32LE(16)).toBe(2000)
    })

    it('egress with conntrack: replies pass without an ingress entry, strangers do not', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 17, port: 53 },
            value: { deny: false },
          },
        ],
      })
      const out = await run('from_container', {
        saddr: EP.ip6,
        daddr: PEER,
        sport: 5000,
        dport: 53,
        protocol: 'UDP',
      })
      expect(out.retval).toBe(OK)
      expect(out.pkt.l4ChecksumOk).toBe(true)
      expect(
        (
          await run('to_container', {
            saddr: PEER,
            daddr: EP.ip6,
            sport: 53,
            dport: 5000,
            protocol: 'UDP',
          })
        ).retval,
      ).toBe(OK)
      expect(
        (
          await run('to_container', {
            saddr: PEER,
            daddr: EP.ip6,
            sport: 53,
            dport: 5001,
            protocol: 'UDP',
          })
        ).retval,
      ).toBe(SHOT)
      expect(
        dp.ct.get({ saddr: EP.ip6, daddr: PEER, sport: 5000, dport: 53, protocol: 17 })?.flagNames,
      ).toContain('SEEN_REPLY')
      expect(
        (
          await run('from_container', {
            saddr: EP.ip6,
            daddr: PEER,
            sport: 5000,
            dport: 54,
            protocol: 'UDP',
          })
        ).retval,
      ).toBe(SHOT)
    })

    it('deny wins, ICMPv6 echo uses the type as port, neighbour discovery always passes', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'ingress', protocol: 58, port: 128 },
            value: { deny: false },
          },
          {
            key: { identity: 2000, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: true },
          },
        ],
      })
      expect(
        (
          await run('to_container', {
            saddr: 'fd00:9::1',
            daddr: EP.ip6,
            protocol: 'ICMPV6',
            icmpType: 128,
          })
        ).retval,
      ).toBe(OK)
      expect(
        (
          await run('to_container', {
            saddr: PEER,
            daddr: EP.ip6,
            protocol: 'ICMPV6',
            icmpType: 128,
          })
        ).retval,
      ).toBe(SHOT)
      expect(dp.metrics.packets(DropReason.POLICY_DENY, 'ingress')).toBeGreaterThan(0n)
      // Neighbour solicitation (135) with no policy at all.
      expect(
        (
          await run('to_container', {
            saddr: 'fe80::1',
            daddr: EP.ip6,
            protocol: 'ICMPV6',
            icmpType: 135,
          })
        ).retval,
      ).toBe(OK)
    })

    it('spoofed sources are dropped; local delivery checks the destination ingress', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp('fd00:1::99', 1, PEER, 80))).retval).toBe(SHOT)
      dp.endpoints.upsert({
        id: 20,
        identity: 5000,
        ifindex: 999,
        ip: '10.0.1.20',
        ip6: 'fd00:1::20',
        mac: '02:00:00:00:01:14',
      })
      dp.policyMap(20).clear()
      expect((await run('from_container', tcp(EP.ip6, 2, 'fd00:1::20', 80))).retval).toBe(SHOT)
      dp.policyMap(20).apply({
        upserts: [
          {
            key: { identity: EP.identity, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp(EP.ip6, 3, 'fd00:1::20', 80))).retval).toBe(OK)
      dp.endpoints.delete(999)
      dp.policyMap(20).clear()
    })

    for (const protocol of ['TCP', 'UDP'] as const) {
      it(`IPv6 service DNAT and reverse NAT with valid checksums (${protocol})`, async () => {
        dp.policyMap(EP.id).apply({
          upserts: [
            {
              key: { identity: 2000, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
              value: { deny: false },
            },
          ],
        })
        dp.services.upsert({
          address: 'fd00:96::10',
          port: 80,
          protocol,
          backends: [{ address: 'fd00:2::7', port: 8080 }],
        })
        try {
          const out = await run('from_container', {
            saddr: EP.ip6,
            sport: 41000,
            daddr: 'fd00:96::10',
            dport: 80,
            protocol,
            payload: Buffer.from('hi'),
          })
          expect(out.retval).toBe(OK)
          expect(out.pkt).toMatchObject({
            daddr: 'fd00:2::7',
            dport: 8080,
            saddr: EP.ip6,
            sport: 41000,
            l4ChecksumOk: true,
          })
          const back = await run('to_container', {
            saddr: 'fd00:2::7',
            sport: 8080,
            daddr: EP.ip6,
            dport: 41000,
            protocol,
            tcpFlags: TcpFlags.SYN | TcpFlags.ACK,
            payload: Buffer.from('there'),
          })
          expect(back.retval).toBe(OK)
          expect(back.pkt).toMatchObject({
            saddr: 'fd00:96::10',
            sport: 80,
            daddr: EP.ip6,
            dport: 41000,
            l4ChecksumOk: true,
          })
          expect(back.pkt.payload.toString()).toBe('there')
        } finally {
          dp.services.delete('fd00:96::10', 80, protocol)
        }
      })
    }

    it('IPv6 Maglev: the backend of each flow is the one @membrane/maglev predicts', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
      const svc = dp.services.upsert({
        address: 'fd00:96::20',
        port: 443,
        backends: [1, 2, 3, 4].map((i) => ({ address: `fd00:4::${i}`, port: 8443 })),
      })
      try {
        const predict = maglevPredictor(svc)
        const seen = new Set<string>()
        for (let i = 0; i < 30; i++) {
          const sport = 30000 + i * 11
          const out = await run('from_container', tcp(EP.ip6, sport, 'fd00:96::20', 443))
          expect(out.pkt.daddr).toBe(predict(EP.ip6, sport, 443))
          seen.add(out.pkt.daddr)
        }
        expect(seen.size).toBeGreaterThan(1)
      } finally {
        dp.services.delete('fd00:96::20', 443)
      }
    })

    it('ICMPv6 errors about a tracked flow pass as related traffic (Packet Too Big); others meet policy', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      const syn = tcp(EP.ip6, 41200, 'fd00:2::5', 80)
      expect((await run('from_container', syn)).retval).toBe(TC_ACT_OK)
      // A router on the way answers Packet Too Big (type 2) about that SYN: no ingress entry
      // allows ICMPv6 to the endpoint, yet it passes, being about a tracked connection.
      const about = (spec: PacketSpec6) => buildPacket6(spec).subarray(14, 14 + 40 + 8)
      const ptb = (inner: Buffer): PacketSpec6 => ({
        saddr: 'fd00:2::1',
        daddr: EP.ip6,
        protocol: 'ICMPV6',
        icmpType: 2,
        payload: inner,
      })
      const before = dp.metrics.packets(DropReason.POLICY, 'ingress')
      expect((await run('to_container', ptb(about(syn)))).retval).toBe(TC_ACT_OK)
      // About a connection nobody opened: policy applies (no entry: 133).
      const other = tcp(EP.ip6, 41201, 'fd00:2::5', 80)
      expect((await run('to_container', ptb(about(other)))).retval).toBe(TC_ACT_SHOT)
      expect(dp.metrics.packets(DropReason.POLICY, 'ingress')).toBe(before + 1n)
    })

    it('IPv6 continues in its own programs through the mb_calls tail call; without the slot it is MISSED_TAIL_CALL (140)', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      const calls = dp.unsafeMap('mb_calls')
      const slot = Buffer.alloc(4) // MB_CALL_FROM6
      const packet = tcp(EP.ip6, 41000, 'fd00:2::5', 80)
      expect((await run('from_container', packet)).retval).toBe(TC_ACT_OK)
      const before = dp.metrics.packets(DropReason.MISSED_TAIL_CALL, 'egress')
      const fd = (dp.program('from_container6') as unknown as { fd: number }).fd
      expect(calls.delete(slot)).toBe(true)
      try {
        expect((await run('from_container', packet)).retval).toBe(TC_ACT_SHOT)
        expect(dp.metrics.packets(DropReason.MISSED_TAIL_CALL, 'egress')).toBe(before + 1n)
      } finally {
        const v = Buffer.alloc(4)
        v.writeUInt32LE(fd, 0)
        calls.update(slot, v)
      }
      expect((await run('from_container', packet)).retval).toBe(TC_ACT_OK)
    })
  },
)
