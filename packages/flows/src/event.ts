/**
 * The datapath event record (`struct mb_event` in bpf-src/lib/events.h): constants, a decoder and
 * an encoder. The layout is @membrane/types' `eventCodec` (checked against the compiled BTF with
 * every other struct codec); the decoder reads at offsets derived from it, field by field
 * without allocating, because it runs once per flow.
 */
import { eventCodec, formatIpv4Bytes, formatIpv6Bytes, writeIp } from '@membrane/types'

/** Size in bytes of one `struct mb_event` record. */
export const MB_EVENT_SIZE = eventCodec.size

/** Event types: Cilium's monitor message type numbers. */
export const EventType = {
  DROP: 1,
  TRACE: 4,
  POLICY_VERDICT: 5,
  SOCK_LB: 7,
  /** Not a datapath event: L7 records from the proxy (Cilium's access log message type). */
  ACCESS_LOG: 129,
} as const

/** Trace observation points (subtype of a TRACE event), Cilium's TRACE_* numbers. */
export const TracePoint = {
  TO_LXC: 0,
  TO_PROXY: 1,
  TO_HOST: 2,
  TO_STACK: 3,
  TO_OVERLAY: 4,
  FROM_LXC: 5,
  FROM_PROXY: 6,
  FROM_HOST: 7,
  FROM_STACK: 8,
  FROM_OVERLAY: 9,
  FROM_NETWORK: 10,
  TO_NETWORK: 11,
} as const

/** Policy verdict actions. */
export const PolicyAction = { ALLOWED: 1, DENIED: 2, REDIRECTED: 3 } as const

/** Event flag bits (`MB_EVF_*`). */
export const EventFlag = {
  IPV6: 1 << 0,
  REPLY: 1 << 1,
  NAT: 1 << 2,
  AUDIT: 1 << 3,
  CT_NEW: 1 << 4,
} as const

// Offsets of the members the decoder reads, from the one layout.
const at = (name: Parameters<typeof eventCodec.offsetOf>[0]) => eventCodec.offsetOf(name)
const TYPE = at('type')
const SUBTYPE = at('subtype')
const DIRECTION = at('direction')
const FLAGS = at('flags')
const MATCH_TYPE = at('matchType')
const ACTION = at('action')
const PROTOCOL = at('protocol')
const TCP_FLAGS = at('tcpFlags')
const ENDPOINT_ID = at('endpointId')
const PROXY_PORT = at('proxyPort')
const IFINDEX = at('ifindex')
const SRC_IDENTITY = at('srcIdentity')
const DST_IDENTITY = at('dstIdentity')
const LEN = at('len')
const EXT_ERROR = at('extError')
const KTIME_NS = at('ktimeNs')
const SOCK_COOKIE = at('sockCookie')
const SPORT = at('sport')
const DPORT = at('dport')
const ORIG_DPORT = at('origDport')
const ICMP_TYPE_CODE = at('icmpTypeCode')
const SADDR = at('saddr')
const DADDR = at('daddr')
const ORIG_DADDR = at('origDaddr')
const SMAC = at('smac')
const DMAC = at('dmac')
const RULE_SET = at('ruleSet')

/** One decoded datapath event. Addresses are strings (dotted IPv4 / RFC 5952 IPv6). */
export interface MbEvent {
  /** `EventType` number. */
  type: number
  /** Drop reason (positive, 133 ...), trace point, or socket hook. */
  subtype: number
  /** 0 unknown, 1 ingress, 2 egress (Hubble's TrafficDirection numbers). */
  direction: number
  /** `EventFlag` bits. */
  flags: number
  matchType: number
  action: number
  /** IP protocol number of L4, 0 when none. */
  protocol: number
  tcpFlags: number
  endpointId: number
  proxyPort: number
  ifindex: number
  srcIdentity: number
  dstIdentity: number
  /** Packet length on the wire. */
  len: number
  extError: number
  /** CLOCK_MONOTONIC nanoseconds (exact while below 2^53, about 104 days of uptime). */
  ktimeNs: number
  /** Socket cookie as a bigint (0n when absent). */
  sockCookie: bigint
  sport: number
  dport: number
  origDport: number
  /** ICMP type << 8 | code. */
  icmpTypeCode: number
  saddr: string
  daddr: string
  /** Pre-DNAT destination when `flags & NAT`, else ''. */
  origDaddr: string
  /** MAC as aa:bb:cc:dd:ee:ff, '' when all zero. */
  smac: string
  dmac: string
  /** Policy verdicts and policy drops: id of the policies that decided (0 = none matched). */
  ruleSet: number
}

/** Thrown when a record is not a well-formed `struct mb_event`. */
export class EventDecodeError extends Error {
  readonly code = 'EVENT_DECODE' as const
  constructor(message: string) {
    super(message)
    this.name = 'EventDecodeError'
  }
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

// Address and MAC strings repeat a lot (a node has few peers): memoize them, bounded.
const MEMO_MAX = 1 << 16
const ipv4Memo = new Map<number, string>()
const macMemo = new Map<number, string>()

function ipv4At(buf: Buffer, off: number): string {
  const n = buf.readUInt32BE(off)
  let s = ipv4Memo.get(n)
  if (s === undefined) {
    s = formatIpv4Bytes(buf, off)
    if (ipv4Memo.size >= MEMO_MAX) ipv4Memo.clear()
    ipv4Memo.set(n, s)
  }
  return s
}

function macAt(buf: Buffer, off: number): string {
  const n = buf.readUIntBE(off, 6)
  if (n === 0) return ''
  let s = macMemo.get(n)
  if (s === undefined) {
    s = HEX[buf[off] as number] as string
    for (let i = 1; i < 6; i++) s += `:${HEX[buf[off + i] as number]}`
    if (macMemo.size >= MEMO_MAX) macMemo.clear()
    macMemo.set(n, s)
  }
  return s
}

function addrAt(buf: Buffer, off: number, v6: boolean): string {
  return v6 ? formatIpv6Bytes(buf, off) : ipv4At(buf, off)
}

/**
 * Decode one ring-buffer record into an {@link MbEvent}.
 *
 * @throws EventDecodeError when the buffer is shorter than {@link MB_EVENT_SIZE} bytes.
 * @example
 * const ev = decodeEvent(record) // record: Buffer from the loader's RingBuffer callback
 * if (ev.type === EventType.DROP) console.log('dropped, reason', ev.subtype)
 */
export function decodeEvent(buf: Buffer): MbEvent {
  if (buf.length < MB_EVENT_SIZE) {
    throw new EventDecodeError(
      `decodeEvent: record is ${buf.length} bytes, expected ${MB_EVENT_SIZE} (struct mb_event)`,
    )
  }
  const flags = buf[FLAGS] as number
  const v6 = (flags & EventFlag.IPV6) !== 0
  const nat = (flags & EventFlag.NAT) !== 0
  return {
    type: buf[TYPE] as number,
    subtype: buf[SUBTYPE] as number,
    direction: buf[DIRECTION] as number,
    flags,
    matchType: buf[MATCH_TYPE] as number,
    action: buf[ACTION] as number,
    protocol: buf[PROTOCOL] as number,
    tcpFlags: buf[TCP_FLAGS] as number,
    endpointId: buf.readUInt16LE(ENDPOINT_ID),
    proxyPort: buf.readUInt16LE(PROXY_PORT),
    ifindex: buf.readUInt32LE(IFINDEX),
    srcIdentity: buf.readUInt32LE(SRC_IDENTITY),
    dstIdentity: buf.readUInt32LE(DST_IDENTITY),
    len: buf.readUInt32LE(LEN),
    extError: buf.readUInt32LE(EXT_ERROR),
    ktimeNs: buf.readUInt32LE(KTIME_NS) + buf.readUInt32LE(KTIME_NS + 4) * 0x1_0000_0000,
    // BigInt only when there is a cookie (socket events): most events carry 0.
    sockCookie:
      buf.readUInt32LE(SOCK_COOKIE) === 0 && buf.readUInt32LE(SOCK_COOKIE + 4) === 0
        ? 0n
        : buf.readBigUInt64LE(SOCK_COOKIE),
    sport: buf.readUInt16LE(SPORT),
    dport: buf.readUInt16LE(DPORT),
    origDport: buf.readUInt16LE(ORIG_DPORT),
    icmpTypeCode: buf.readUInt16LE(ICMP_TYPE_CODE),
    saddr: addrAt(buf, SADDR, v6),
    daddr: addrAt(buf, DADDR, v6),
    origDaddr: nat ? addrAt(buf, ORIG_DADDR, v6) : '',
    smac: macAt(buf, SMAC),
    dmac: macAt(buf, DMAC),
    ruleSet: buf.readUInt16LE(RULE_SET),
  }
}

/**
 * An address as the event's 16-byte address field holds it: network order, IPv4 in the first 4
 * bytes; '' is all zeros.
 *
 * @throws EventDecodeError when `ip` is not an address.
 */
export function parseIpBytes(ip: string): Uint8Array {
  const out = new Uint8Array(16)
  if (ip === '') return out
  if (writeIp(ip, out, 0) === undefined)
    throw new EventDecodeError(`invalid ${ip.includes(':') ? 'IPv6' : 'IPv4'} address '${ip}'`)
  return out
}

const NO_MAC = '00:00:00:00:00:00'

function ipBytes(ip = ''): Buffer {
  const b = parseIpBytes(ip)
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/**
 * Encode an event into a 120-byte `struct mb_event` record (the inverse of {@link decodeEvent};
 * used by tests, benchmarks and replay tools). Missing fields are zero.
 */
export function encodeEvent(ev: Partial<MbEvent>, into?: Buffer): Buffer {
  const buf = into ?? Buffer.alloc(MB_EVENT_SIZE)
  eventCodec.write(
    {
      type: ev.type ?? 0,
      subtype: ev.subtype ?? 0,
      direction: ev.direction ?? 0,
      flags: ev.flags ?? 0,
      matchType: ev.matchType ?? 0,
      action: ev.action ?? 0,
      protocol: ev.protocol ?? 0,
      tcpFlags: ev.tcpFlags ?? 0,
      endpointId: ev.endpointId ?? 0,
      proxyPort: ev.proxyPort ?? 0,
      ifindex: ev.ifindex ?? 0,
      srcIdentity: ev.srcIdentity ?? 0,
      dstIdentity: ev.dstIdentity ?? 0,
      len: ev.len ?? 0,
      extError: ev.extError ?? 0,
      ktimeNs: BigInt(ev.ktimeNs ?? 0),
      sockCookie: ev.sockCookie ?? 0n,
      sport: ev.sport ?? 0,
      dport: ev.dport ?? 0,
      origDport: ev.origDport ?? 0,
      icmpTypeCode: ev.icmpTypeCode ?? 0,
      saddr: ipBytes(ev.saddr),
      daddr: ipBytes(ev.daddr),
      origDaddr: ipBytes(ev.origDaddr),
      smac: ev.smac || NO_MAC,
      dmac: ev.dmac || NO_MAC,
      ruleSet: ev.ruleSet ?? 0,
    },
    buf,
    0,
  )
  return buf
}
