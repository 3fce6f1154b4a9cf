import { formatIpv6Bytes } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decodeEvent,
  EventDecodeError,
  EventFlag,
  encodeEvent,
  MB_EVENT_SIZE,
  type MbEvent,
  parseIpBytes,
} from '../src/event'

// struct mb_event's layout (eventCodec in @membrane/types) is checked against the compiled
// BTF with every other struct codec: packages/datapath/test/btf-layouts.test.ts.

const u8 = fc.integer({ min: 0, max: 255 })
const u16 = fc.integer({ min: 0, max: 0xffff })
const u32 = fc.integer({ min: 0, max: 0xffffffff })
const ipv4 = fc.ipV4()
const ipv6 = fc
  .array(u8, { minLength: 16, maxLength: 16 })
  .map((b) => formatIpv6Bytes(Uint8Array.from(b)))
const mac = fc.oneof(
  fc.constant(''),
  fc
    .array(u8, { minLength: 6, maxLength: 6 })
    .filter((b) => b.some((x) => x !== 0))
    .map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':')),
)

const eventArb: fc.Arbitrary<MbEvent> = fc
  .record({
    type: u8,
    subtype: u8,
    direction: u8,
    flagsRest: fc.integer({ min: 0, max: 0xff }),
    matchType: u8,
    action: u8,
    protocol: u8,
    tcpFlags: u8,
    endpointId: u16,
    proxyPort: u16,
    ruleSet: u16,
    ifindex: u32,
    srcIdentity: u32,
    dstIdentity: u32,
    len: u32,
    extError: u32,
    ktimeNs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    sockCookie: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    sport: u16,
    dport: u16,
    origDport: u16,
    icmpTypeCode: u16,
    v4: fc.tuple(ipv4, ipv4, ipv4),
    v6: fc.tuple(ipv6, ipv6, ipv6),
    smac: mac,
    dmac: mac,
  })
  .map(({ flagsRest, v4, v6, ...r }) => {
    const isV6 = (flagsRest & EventFlag.IPV6) !== 0
    const nat = (flagsRest & EventFlag.NAT) !== 0
    const [s, d, o] = isV6 ? v6 : v4
    return { ...r, flags: flagsRest, saddr: s, daddr: d, origDaddr: nat ? o : '' }
  })

describe('decodeEvent / encodeEvent', () => {
  it('round-trips every field (fast-check)', () => {
    fc.assert(
      fc.property(eventArb, (ev) => {
        const buf = encodeEvent(ev)
        expect(buf.length).toBe(MB_EVENT_SIZE)
        expect(decodeEvent(buf)).toEqual(ev)
        // and encoding the decoded value gives the same bytes
        expect(encodeEvent(decodeEvent(buf)).equals(buf)).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('reads fields at the documented offsets (hand-built record)', () => {
    const b = Buffer.alloc(MB_EVENT_SIZE)
    b[0] = 1
    b[1] = 133
    b[2] = 1
    b[3] = EventFlag.REPLY | EventFlag.NAT
    b[6] = 6
    b[7] = 0x12
    b.writeUInt16LE(42, 8)
    b.writeUInt32LE(7, 12)
    b.writeUInt32LE(1234, 16)
    b.writeUInt32LE(5678, 20)
    b.writeUInt32LE(60, 24)
    b.writeBigUInt64LE(123_456_789_012n, 32)
    b.writeUInt16LE(40000, 48)
    b.writeUInt16LE(8080, 50)
    b.writeUInt16LE(80, 52)
    b.set([10, 0, 0, 1], 56)
    b.set([10, 0, 0, 2], 72)
    b.set([10, 96, 0, 10], 88)
    b.set([0xde, 0xad, 0xbe, 0xef, 0, 1], 104)
    const ev = decodeEvent(b)
    expect(ev).toMatchObject({
      type: 1,
      subtype: 133,
      direction: 1,
      protocol: 6,
      tcpFlags: 0x12,
      endpointId: 42,
      ifindex: 7,
      srcIdentity: 1234,
      dstIdentity: 5678,
      len: 60,
      ktimeNs: 123_456_789_012,
      sport: 40000,
      dport: 8080,
      origDport: 80,
      saddr: '10.0.0.1',
      daddr: '10.0.0.2',
      origDaddr: '10.96.0.10',
      smac: 'de:ad:be:ef:00:01',
      dmac: '',
    })
  })

  it('rejects a short record and names the size', () => {
    expect(() => decodeEvent(Buffer.alloc(100))).toThrow(EventDecodeError)
    expect(() => decodeEvent(Buffer.alloc(100))).toThrow(/100 bytes, expected 120/)
  })

  it('formats IPv6 per RFC 5952 and parses it back', () => {
    expect(formatIpv6Bytes(parseIpBytes('fd00::1'))).toBe('fd00::1')
    expect(formatIpv6Bytes(parseIpBytes('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1')
    expect(formatIpv6Bytes(parseIpBytes('::'))).toBe('::')
    expect(formatIpv6Bytes(parseIpBytes('::ffff:10.0.0.1'))).toBe('::ffff:10.0.0.1')
    expect(() => parseIpBytes('1.2.3')).toThrow(/invalid IPv4 address '1.2.3'/)
  })
})
