/** A minimal Ethernet + IPv4 + UDP frame of exactly `len` bytes (len >= 42) for test runs. */
export function udpFrame(len: number): Buffer {
  const b = Buffer.alloc(len)
  b.fill(0x02, 0, 6) // dst mac
  b.fill(0x04, 6, 12) // src mac
  b.writeUInt16BE(0x0800, 12)
  const ip = 14
  b.writeUInt8(0x45, ip)
  b.writeUInt16BE(len - 14, ip + 2)
  b.writeUInt8(64, ip + 8)
  b.writeUInt8(17, ip + 9)
  b.set([10, 0, 0, 1], ip + 12)
  b.set([10, 0, 0, 2], ip + 16)
  let sum = 0
  for (let i = 0; i < 20; i += 2) sum += b.readUInt16BE(ip + i)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  b.writeUInt16BE(~sum & 0xffff, ip + 10)
  const udp = ip + 20
  b.writeUInt16BE(40000, udp)
  b.writeUInt16BE(5201, udp + 2)
  b.writeUInt16BE(len - 34, udp + 4)
  return b
}

/** `struct __sk_buff` for BPF_PROG_TEST_RUN's ctx_in (192 bytes on 6.x). */
const SKB_CTX_SIZE = 192
/** Offsets of the `struct __sk_buff` fields the bandwidth tests use. */
export const SKB = {
  tstamp: 152,
  wire_len: 160,
  gso_segs: 164,
  gso_size: 176,
  tstamp_type: 180,
} as const

/** A ctx_in with `tstamp` (ns) and optionally GSO segment count/size set, everything else zero. */
export function skbCtx(tstamp: bigint = 0n, gso?: { segs: number; size: number }): Buffer {
  const b = Buffer.alloc(SKB_CTX_SIZE)
  b.writeBigUInt64LE(tstamp, SKB.tstamp)
  if (gso) {
    b.writeUInt32LE(gso.segs, SKB.gso_segs)
    b.writeUInt32LE(gso.size, SKB.gso_size)
  }
  return b
}
