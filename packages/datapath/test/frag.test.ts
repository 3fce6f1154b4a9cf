/**
 * IPv4 fragments through the endpoint programs (BPF_PROG_TEST_RUN): the first fragment's ports
 * are recorded in mb_frag4 and lend later fragments their L4 identity, so conntrack, policy and
 * service DNAT treat a fragmented datagram as one; a later fragment without its first one is
 * DROP_FRAG_NOT_FOUND (175). Also the fragment/reassemble helpers of the packet builder.
 */
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import fc from 'fast-check'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Datapath, DropReason } from '../src/index'
import {
  buildPacket,
  fragmentPacket,
  inetChecksum,
  type PacketSpec,
  parsePacket,
  reassemblePacket,
} from '../src/testing'
import { buildObjects } from './_btf'

const TC_ACT_OK = 0
const TC_ACT_SHOT = 2
const EP = { id: 10, identity: 1000, ifindex: 1, ip: '10.0.1.10', mac: '02:00:00:00:01:0a' }
const DST = '10.0.2.5'

const udp = (sport: number, daddr: string, dport: number, size: number): PacketSpec => ({
  saddr: EP.ip,
  daddr,
  sport,
  dport,
  protocol: 'UDP',
  payload: Buffer.alloc(size, 0x5a),
})

describe('fragmentPacket / reassemblePacket', () => {
  it('split a datagram as a sender would and put it back (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4000 }),
        fc.integer({ min: 8, max: 1480 }),
        fc.constantFrom<'UDP' | 'TCP' | 'ICMP'>('UDP', 'TCP', 'ICMP'),
        fc.boolean(),
        (size, mtu, protocol, shuffle) => {
          const frame = buildPacket({
            saddr: '10.1.2.3',
            daddr: '10.4.5.6',
            protocol,
            payload: Buffer.alloc(size, 7),
          })
          const frags = fragmentPacket(frame, mtu)
          const step = Math.floor(mtu / 8) * 8
          if (frags.length === 1) {
            expect(frags[0]).toBe(frame)
            expect(frame.length - 34).toBeLessThanOrEqual(step)
            return
          }
          for (const f of frags) {
            expect(f.subarray(14).readUInt16BE(2) - 20).toBeLessThanOrEqual(step)
            expect(inetChecksum(f.subarray(14, 34))).toBe(0)
          }
          const order = shuffle ? [...frags].reverse() : frags
          const back = reassemblePacket(order)
          const p = parsePacket(back)
          expect(p.ipChecksumOk).toBe(true)
          expect(p.l4ChecksumOk).toBe(true)
          expect(back.subarray(34)).toEqual(frame.subarray(34))
        },
      ),
    )
    const frags = fragmentPacket(buildPacket(udp(1, DST, 2, 100)), 40)
    expect(() => reassemblePacket(frags.slice(1))).toThrowError(/first fragment/)
    expect(() => reassemblePacket(frags.slice(0, -1))).toThrowError(/last fragment/)
  })
})

describeKernel(
  'IPv4 fragments through the endpoint programs',
  ['root', 'bpf', 'bpffs', 'clang', 'bin:bpftool'],
  () => {
    let dp: Datapath
    let pins: { path: string; remove(): void }

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path })
    })
    afterAll(async () => {
      await dp?.close()
      pins?.remove()
    })
    beforeEach(() => {
      dp.ct.flush()
      for (const e of dp.endpoints.list()) dp.endpoints.delete(e.ifindex)
      dp.policyMap(EP.id).clear()
      dp.endpoints.upsert(EP)
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.ipcache.upsert('10.0.3.0/24', 2000)
    })

    const send = async (frame: Buffer) => {
      const r = await dp.program('from_container').testRun({ data: frame })
      return { retval: r.retval, data: r.data }
    }
    const allow = (port: number) =>
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 2000, direction: 'egress', protocol: 17, port },
            value: { deny: false },
          },
        ],
      })

    it('every fragment of an allowed datagram passes; of a denied one, every fragment drops (133)', async () => {
      allow(5353)
      const ok = fragmentPacket(buildPacket(udp(41000, DST, 5353, 3000)), 1480, 0x1001)
      expect(ok.length).toBe(3)
      for (const f of ok) expect((await send(f)).retval).toBe(TC_ACT_OK)
      // The conntrack entry is the datagram's 5-tuple, as if unfragmented.
      expect(dp.ct.dump().some((e) => e.tuple.sport === 41000 && e.tuple.dport === 5353)).toBe(true)
      const before = dp.metrics.packets(DropReason.POLICY, 'egress')
      const denied = fragmentPacket(buildPacket(udp(41001, DST, 5354, 3000)), 1480, 0x1002)
      for (const f of denied) expect((await send(f)).retval).toBe(TC_ACT_SHOT)
      expect(dp.metrics.packets(DropReason.POLICY, 'egress')).toBe(before + 3n)
    })

    it('a later fragment whose first one never came is FRAG_NOT_FOUND (175)', async () => {
      allow(5353)
      const frags = fragmentPacket(buildPacket(udp(41010, DST, 5353, 3000)), 1480, 0x2001)
      const before = dp.metrics.packets(DropReason.FRAG_NOT_FOUND, 'egress')
      expect((await send(frags[1] as Buffer)).retval).toBe(TC_ACT_SHOT)
      expect(dp.metrics.packets(DropReason.FRAG_NOT_FOUND, 'egress')).toBe(before + 1n)
      // Once the first fragment passed, the same later fragment is recognised.
      expect((await send(frags[0] as Buffer)).retval).toBe(TC_ACT_OK)
      expect((await send(frags[1] as Buffer)).retval).toBe(TC_ACT_OK)
    })

    it('service DNAT: all fragments go to the first fragment’s backend, checksums stay valid', async () => {
      allow(5353)
      dp.services.upsert({
        address: '10.96.0.53',
        port: 53,
        protocol: 'UDP',
        backends: [1, 2, 3].map((i) => ({ address: `10.0.3.${i}`, port: 5353 })),
      })
      try {
        for (let i = 0; i < 8; i++) {
          const frame = buildPacket(udp(42000 + i, '10.96.0.53', 53, 2500))
          const frags = fragmentPacket(frame, 1000, 0x3000 + i)
          const out: Buffer[] = []
          for (const f of frags) {
            const r = await send(f)
            expect(r.retval).toBe(TC_ACT_OK)
            out.push(r.data)
          }
          const dsts = new Set(out.map((f) => [...f.subarray(30, 34)].join('.')))
          expect(dsts.size).toBe(1)
          expect([...dsts][0]).toMatch(/^10\.0\.3\.[123]$/)
          for (const f of out) expect(inetChecksum(f.subarray(14, 34))).toBe(0)
          // The reassembled datagram: backend port, valid UDP checksum, payload untouched.
          const whole = parsePacket(reassemblePacket(out))
          expect(whole).toMatchObject({ dport: 5353, ipChecksumOk: true, l4ChecksumOk: true })
          expect(whole.payload).toEqual(Buffer.alloc(2500, 0x5a))
        }
      } finally {
        dp.services.delete('10.96.0.53', 53, 'UDP')
      }
    })

    it('an unfragmented packet with DF and no offset is not tracked as a fragment', async () => {
      allow(5353)
      const keys = dp.unsafeMap('mb_frag4').keys().length
      expect((await send(buildPacket(udp(43000, DST, 5353, 100)))).retval).toBe(TC_ACT_OK)
      expect(dp.unsafeMap('mb_frag4').keys().length).toBe(keys)
    })
  },
)
