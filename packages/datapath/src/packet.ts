/**
 * A small packet builder and parser for BPF_PROG_TEST_RUN tests and benchmarks: Ethernet +
 * IPv4 + TCP/UDP/ICMP with correct checksums, and checksum verification of rewritten packets.
 */
import { formatIpv6Bytes, parseIp, parseIpv4 } from '@membrane/types'

/** What to put in a test packet. */
export interface PacketSpec {
  srcMac?: string
  dstMac?: string
  saddr: string
  daddr: string
  protocol: 'TCP' | 'UDP' | 'ICMP'
  sport?: number
  dport?: number
  /** TCP flags (default SYN). */
  tcpFlags?: number
  /** ICMP type (default 8, echo request) and id. */
  icmpType?: number
  icmpId?: number
  ttl?: number
  payload?: Buffer
  /** UDP only: send with checksum 0 (none). */
  udpNoChecksum?: boolean
}

/** TCP flag bits. */
export const TcpFlags = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 } as const

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)))
}

function ipBytes(ip: string): Buffer {
  const n = parseIpv4(ip)
  if (n === undefined) throw new TypeError(`not an IPv4 address: ${ip}`)
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

/** The Internet checksum (RFC 1071) of `buf`, seeded with `initial` (a partial sum). */
export function inetChecksum(buf: Buffer, initial = 0): number {
  let sum = initial
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i)
  if (buf.length % 2) sum += (buf[buf.length - 1] as number) << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

function pseudoSum(src: Buffer, dst: Buffer, proto: number, len: number): number {
  return (
    src.readUInt16BE(0) +
    src.readUInt16BE(2) +
    dst.readUInt16BE(0) +
    dst.readUInt16BE(2) +
    proto +
    len
  )
}

const PROTO = { TCP: 6, UDP: 17, ICMP: 1 } as const

/** Build an Ethernet frame carrying an IPv4 packet. */
export function buildPacket(spec: PacketSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0)
  const proto = PROTO[spec.protocol]
  let l4: Buffer
  if (spec.protocol === 'TCP') {
    l4 = Buffer.alloc(20 + payload.length)
    l4.writeUInt16BE(spec.sport ?? 40000, 0)
    l4.writeUInt16BE(spec.dport ?? 80, 2)
    l4.writeUInt32BE(1, 4)
    l4.writeUInt32BE(0, 8)
    l4[12] = 5 << 4
    l4[13] = spec.tcpFlags ?? TcpFlags.SYN
    l4.writeUInt16BE(65535, 14)
    payload.copy(l4, 20)
  } else if (spec.protocol === 'UDP') {
    l4 = Buffer.alloc(8 + payload.length)
    l4.writeUInt16BE(spec.sport ?? 40000, 0)
    l4.writeUInt16BE(spec.dport ?? 53, 2)
    l4.writeUInt16BE(l4.length, 4)
    payload.copy(l4, 8)
  } else {
    l4 = Buffer.alloc(8 + payload.length)
    l4[0] = spec.icmpType ?? 8
    l4.writeUInt16BE(spec.icmpId ?? 1, 4)
    l4.writeUInt16BE(1, 6)
    payload.copy(l4, 8)
  }
  const src = ipBytes(spec.saddr)
  const dst = ipBytes(spec.daddr)
  if (spec.protocol === 'TCP')
    l4.writeUInt16BE(inetChecksum(l4, pseudoSum(src, dst, proto, l4.length)), 16)
  else if (spec.protocol === 'UDP' && !spec.udpNoChecksum) {
    const c = inetChecksum(l4, pseudoSum(src, dst, proto, l4.length))
    l4.writeUInt16BE(c === 0 ? 0xffff : c, 6)
  } else if (spec.protocol === 'ICMP') l4.writeUInt16BE(inetChecksum(l4), 2)
  const ip = Buffer.alloc(20)
  ip[0] = 0x45
  ip.writeUInt16BE(20 + l4.length, 2)
  ip.writeUInt16BE(0x1234, 4)
  ip.writeUInt16BE(0x4000, 6) // DF
  ip[8] = spec.ttl ?? 64
  ip[9] = proto
  src.copy(ip, 12)
  dst.copy(ip, 16)
  ip.writeUInt16BE(inetChecksum(ip), 10)
  const eth = Buffer.alloc(14)
  macBytes(spec.dstMac ?? '02:00:00:00:00:01').copy(eth, 0)
  macBytes(spec.srcMac ?? '02:00:00:00:00:02').copy(eth, 6)
  eth.writeUInt16BE(0x0800, 12)
  return Buffer.concat([eth, ip, l4])
}

/** What {@link parsePacket} reads back, with checksum verdicts. */
export interface ParsedPacket {
  saddr: string
  daddr: string
  protocol: number
  sport: number
  dport: number
  tcpFlags: number
  ttl: number
  /** The IPv4 header checksum verifies. */
  ipChecksumOk: boolean
  /** The L4 checksum verifies (true for UDP without checksum). */
  l4ChecksumOk: boolean
  payload: Buffer
}

/** Parse an Ethernet + IPv4 frame and verify its checksums. */
export function parsePacket(frame: Buffer): ParsedPacket {
  const ip = frame.subarray(14)
  const ihl = ((ip[0] as number) & 0x0f) * 4
  const total = ip.readUInt16BE(2)
  const proto = ip[9] as number
  const src = ip.subarray(12, 16)
  const dst = ip.subarray(16, 20)
  const l4 = ip.subarray(ihl, total)
  const fmt = (b: Buffer) => `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  let l4ok = true
  let sport = 0
  let dport = 0
  let tcpFlags = 0
  let payload: Buffer = Buffer.alloc(0)
  if (proto === 6 || proto === 17) {
    sport = l4.readUInt16BE(0)
    dport = l4.readUInt16BE(2)
    const skip = proto === 17 && l4.readUInt16BE(6) === 0
    if (!skip) l4ok = inetChecksum(l4, pseudoSum(src, dst, proto, l4.length)) === 0
    if (proto === 6) {
      tcpFlags = l4[13] as number
      payload = l4.subarray(((l4[12] as number) >> 4) * 4)
    } else payload = l4.subarray(8)
  } else if (proto === 1) {
    l4ok = inetChecksum(l4) === 0
    payload = l4.subarray(8)
  }
  return {
    saddr: fmt(src),
    daddr: fmt(dst),
    protocol: proto,
    sport,
    dport,
    tcpFlags,
    ttl: ip[8] as number,
    ipChecksumOk: inetChecksum(ip.subarray(0, ihl)) === 0,
    l4ChecksumOk: l4ok,
    payload,
  }
}

/**
 * A `struct __sk_buff` for BPF_PROG_TEST_RUN's ctx_in (192 bytes): only the fields the
 * kernel accepts from user space are set (mark at 8, ifindex at 40).
 */
export function skbContext(fields: { mark?: number; ifindex?: number } = {}): Buffer {
  const ctx = Buffer.alloc(192)
  ctx.writeUInt32LE(fields.mark ?? 0, 8)
  ctx.writeUInt32LE(fields.ifindex ?? 0, 40)
  return ctx
}

/** What to put in an IPv6 test packet. */
export interface PacketSpec6 {
  srcMac?: string
  dstMac?: string
  saddr: string
  daddr: string
  protocol: 'TCP' | 'UDP' | 'ICMPV6'
  sport?: number
  dport?: number
  tcpFlags?: number
  /** ICMPv6 type (default 128, echo request) and id. */
  icmpType?: number
  icmpId?: number
  payload?: Buffer
}

function ip6Bytes(ip: string): Buffer {
  const a = parseIp(ip)
  if (a?.family !== 6) throw new TypeError(`not an IPv6 address: ${ip}`)
  return Buffer.from(a.bytes)
}

function pseudoSum6(src: Buffer, dst: Buffer, proto: number, len: number): number {
  let sum = 0
  for (let i = 0; i < 16; i += 2) sum += src.readUInt16BE(i) + dst.readUInt16BE(i)
  return sum + (len >>> 16) + (len & 0xffff) + proto
}

const PROTO6 = { TCP: 6, UDP: 17, ICMPV6: 58 } as const

/** Build an Ethernet frame carrying an IPv6 packet (no extension headers). */
export function buildPacket6(spec: PacketSpec6): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0)
  const proto = PROTO6[spec.protocol]
  let l4: Buffer
  if (spec.protocol === 'TCP') {
    l4 = Buffer.alloc(20 + payload.length)
    l4.writeUInt16BE(spec.sport ?? 40000, 0)
    l4.writeUInt16BE(spec.dport ?? 80, 2)
    l4.writeUInt32BE(1, 4)
    l4[12] = 5 << 4
    l4[13] = spec.tcpFlags ?? TcpFlags.SYN
    l4.writeUInt16BE(65535, 14)
    payload.copy(l4, 20)
  } else if (spec.protocol === 'UDP') {
    l4 = Buffer.alloc(8 + payload.length)
    l4.writeUInt16BE(spec.sport ?? 40000, 0)
    l4.writeUInt16BE(spec.dport ?? 53, 2)
    l4.writeUInt16BE(l4.length, 4)
    payload.copy(l4, 8)
  } else {
    l4 = Buffer.alloc(8 + payload.length)
    l4[0] = spec.icmpType ?? 128
    l4.writeUInt16BE(spec.icmpId ?? 1, 4)
    l4.writeUInt16BE(1, 6)
    payload.copy(l4, 8)
  }
  const src = ip6Bytes(spec.saddr)
  const dst = ip6Bytes(spec.daddr)
  const csumOff = spec.protocol === 'TCP' ? 16 : spec.protocol === 'UDP' ? 6 : 2
  const c = inetChecksum(l4, pseudoSum6(src, dst, proto, l4.length))
  l4.writeUInt16BE(spec.protocol === 'UDP' && c === 0 ? 0xffff : c, csumOff)
  const ip = Buffer.alloc(40)
  ip[0] = 0x60
  ip.writeUInt16BE(l4.length, 4)
  ip[6] = proto
  ip[7] = 64
  src.copy(ip, 8)
  dst.copy(ip, 24)
  const eth = Buffer.alloc(14)
  macBytes(spec.dstMac ?? '02:00:00:00:00:01').copy(eth, 0)
  macBytes(spec.srcMac ?? '02:00:00:00:00:02').copy(eth, 6)
  eth.writeUInt16BE(0x86dd, 12)
  return Buffer.concat([eth, ip, l4])
}

/** Parse an Ethernet + IPv6 frame (no extension headers) and verify the L4 checksum. */
export function parsePacket6(frame: Buffer): Omit<ParsedPacket, 'ttl' | 'ipChecksumOk'> {
  const ip = frame.subarray(14)
  const proto = ip[6] as number
  const src = Buffer.from(ip.subarray(8, 24))
  const dst = Buffer.from(ip.subarray(24, 40))
  const l4 = ip.subarray(40, 40 + ip.readUInt16BE(4))
  const sport = proto === 6 || proto === 17 ? l4.readUInt16BE(0) : 0
  const dport = proto === 6 || proto === 17 ? l4.readUInt16BE(2) : 0
  return {
    saddr: formatIpv6Bytes(src),
    daddr: formatIpv6Bytes(dst),
    protocol: proto,
    sport,
    dport,
    tcpFlags: proto === 6 ? (l4[13] as number) : 0,
    l4ChecksumOk: inetChecksum(l4, pseudoSum6(src, dst, proto, l4.length)) === 0,
    payload: l4.subarray(proto === 6 ? 20 : 8),
  }
}

/**
 * Split an Ethernet + IPv4 frame (from {@link buildPacket}) into IPv4 fragments whose payloads
 * hold at most `maxPayload` bytes (rounded down to a multiple of 8), as a sender's stack would:
 * same id, DF cleared, MF on all but the last, offsets in 8-byte units, header checksums
 * recomputed. A frame that fits is returned alone, unchanged.
 */
export function fragmentPacket(frame: Buffer, maxPayload: number, id = 0x4242): Buffer[] {
  const eth = frame.subarray(0, 14)
  const ip = frame.subarray(14)
  const ihl = ((ip[0] as number) & 0x0f) * 4
  const data = ip.subarray(ihl, ip.readUInt16BE(2))
  const step = Math.floor(maxPayload / 8) * 8
  if (step < 8) throw new RangeError(`maxPayload ${maxPayload}: fragments carry at least 8 bytes`)
  if (data.length <= step) return [frame]
  const out: Buffer[] = []
  for (let off = 0; off < data.length; off += step) {
    const chunk = data.subarray(off, off + step)
    const hdr = Buffer.from(ip.subarray(0, ihl))
    hdr.writeUInt16BE(ihl + chunk.length, 2)
    hdr.writeUInt16BE(id, 4)
    const more = off + step < data.length
    hdr.writeUInt16BE((more ? 0x2000 : 0) | (off / 8), 6)
    hdr.writeUInt16BE(0, 10)
    hdr.writeUInt16BE(inetChecksum(hdr), 10)
    out.push(Buffer.concat([eth, hdr, chunk]))
  }
  return out
}

/**
 * Put IPv4 fragments (Ethernet frames, any order) back together into one frame; throws when
 * one is missing or they disagree on id, addresses or protocol.
 */
export function reassemblePacket(frames: readonly Buffer[]): Buffer {
  const parts = frames.map((f) => {
    const ip = f.subarray(14)
    const ihl = ((ip[0] as number) & 0x0f) * 4
    const fo = ip.readUInt16BE(6)
    return {
      eth: f.subarray(0, 14),
      hdr: ip.subarray(0, ihl),
      key: `${ip.readUInt16BE(4)}/${ip.subarray(12, 20).toString('hex')}/${ip[9]}`,
      offset: (fo & 0x1fff) * 8,
      more: (fo & 0x2000) !== 0,
      data: ip.subarray(ihl, ip.readUInt16BE(2)),
    }
  })
  parts.sort((a, b) => a.offset - b.offset)
  const first = parts[0]
  if (first?.offset !== 0) throw new Error('no first fragment')
  let next = 0
  for (const p of parts) {
    if (p.key !== first.key) throw new Error('fragments of different datagrams')
    if (p.offset !== next) throw new Error(`fragment missing at offset ${next}`)
    next += p.data.length
  }
  if (parts[parts.length - 1]?.more) throw new Error('last fragment missing')
  const hdr = Buffer.from(first.hdr)
  const data = Buffer.concat(parts.map((p) => p.data))
  hdr.writeUInt16BE(hdr.length + data.length, 2)
  hdr.writeUInt16BE(0, 6)
  hdr.writeUInt16BE(0, 10)
  hdr.writeUInt16BE(inetChecksum(hdr), 10)
  return Buffer.concat([first.eth, hdr, data])
}
