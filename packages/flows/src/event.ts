/**
 * The datapath event record (`struct mb_event` in bpf-src/lib/events.h): constants, a decoder and
 * an encoder. Offsets are checked against the C header by test/event-layout.test.ts.
 */
import { formatIpv4Bytes, formatIpv6Bytes, writeIp } from '@membrane/types'

/** Size in bytes of one `struct mb_event` record. */
export const MB_EVENT_SIZE = 120

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

/** Byte offsets of every field of `struct mb_event` (checked against the C header in tests). */
export const MB_EVENT_OFFSETS = {
  type: 0,
  subtype: 1,
  direction: 2,
  flags: 3,
  match_type: 4,
  action: 5,
  protocol: 6,
  tcp_flags: 7,
  endpoint_id: 8,
  proxy_port: 10,
  ifindex: 12,
  src_identity: 16,
  dst_identity: 20,
  len: 24,
  ext_error: 28,
  ktime_ns: 32,
  sock_cookie: 40,
  sport: 48,
  dport: 50,
  orig_dport: 52,
  icmp_type_code: 54,
  saddr: 56,
  daddr: 72,
  orig_daddr: 88,
  smac: 104,
  dmac: 110,
  _pad: 116,
} as const

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
  const flags = buf[3] as number
  const v6 = (flags & EventFlag.IPV6) !== 0
  const nat = (flags & EventFlag.NAT) !== 0
  return {
    type: buf[0] as number,
    subtype: buf[1] as number,
    direction: buf[2] as number,
    flags,
    matchType: buf[4] as number,
    action: buf[5] as number,
    protocol: buf[6] as number,
    tcpFlags: buf[7] as number,
    endpointId: buf.readUInt16LE(8),
    proxyPort: buf.readUInt16LE(10),
    ifindex: buf.readUInt32LE(12),
    srcIdentity: buf.readUInt32LE(16),
    dstIdentity: buf.readUInt32LE(20),
    len: buf.readUInt32LE(24),
    extError: buf.readUInt32LE(28),
    ktimeNs: buf.readUInt32LE(32) + buf.readUInt32LE(36) * 0x1_0000_0000,
    // BigInt only when there is a cookie (socket events): most events carry 0.
    sockCookie:
      buf.readUInt32LE(40) === 0 && buf.readUInt32LE(44) === 0 ? 0n : buf.readBigUInt64LE(40),
    sport: buf.readUInt16LE(48),
    dport: buf.readUInt16LE(50),
    origDport: buf.readUInt16LE(52),
    icmpTypeCode: buf.readUInt16LE(54),
    saddr: addrAt(buf, 56, v6),
    daddr: addrAt(buf, 72, v6),
    origDaddr: nat ? addrAt(buf, 88, v6) : '',
    smac: macAt(buf, 104),
    dmac: macAt(buf, 110),
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

function writeMac(buf: Buffer, off: number, mac: string): void {
  if (mac === '') return
  const parts = mac.split(':')
  if (parts.length !== 6) throw new EventDecodeError(`invalid MAC address '${mac}'`)
  parts.forEach((p, i) => {
    buf[off + i] = Number.parseInt(p, 16)
  })
}

/**
 * Encode an event into a 120-byte `struct mb_event` record (the inverse of {@link decodeEvent};
 * used by tests, benchmarks and replay tools). Missing fields are zero.
 */
export function encodeEvent(ev: Partial<MbEvent>, into?: Buffer): Buffer {
  const buf = into ?? Buffer.alloc(MB_EVENT_SIZE)
  if (into) buf.fill(0, 0, MB_EVENT_SIZE)
  buf[0] = ev.type ?? 0
  buf[1] = ev.subtype ?? 0
  buf[2] = ev.direction ?? 0
  buf[3] = ev.flags ?? 0
  buf[4] = ev.matchType ?? 0
  buf[5] = ev.action ?? 0
  buf[6] = ev.protocol ?? 0
  buf[7] = ev.tcpFlags ?? 0
  buf.writeUInt16LE(ev.endpointId ?? 0, 8)
  buf.writeUInt16LE(ev.proxyPort ?? 0, 10)
  buf.writeUInt32LE(ev.ifindex ?? 0, 12)
  buf.writeUInt32LE(ev.srcIdentity ?? 0, 16)
  buf.writeUInt32LE(ev.dstIdentity ?? 0, 20)
  buf.writeUInt32LE(ev.len ?? 0, 24)
  buf.writeUInt32LE(ev.extError ?? 0, 28)
  const kt = ev.ktimeNs ?? 0
  buf.writeUInt32LE(kt % 0x1_0000_0000, 32)
  buf.writeUInt32LE(Math.floor(kt / 0x1_0000_0000), 36)
  buf.writeBigUInt64LE(ev.sockCookie ?? 0n, 40)
  buf.writeUInt16LE(ev.sport ?? 0, 48)
  buf.writeUInt16LE(ev.dport ?? 0, 50)
  buf.writeUInt16LE(ev.origDport ?? 0, 52)
  buf.writeUInt16LE(ev.icmpTypeCode ?? 0, 54)
  buf.set(parseIpBytes(ev.saddr ?? ''), 56)
  buf.set(parseIpBytes(ev.daddr ?? ''), 72)
  buf.set(parseIpBytes(ev.origDaddr ?? ''), 88)
  writeMac(buf, 104, ev.smac ?? '')
  writeMac(buf, 110, ev.dmac ?? '')
  return buf
}
