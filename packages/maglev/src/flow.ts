import { describe, MaglevError, MaglevErrorCode } from './errors'
import { parseIp } from './internal/ip'
import { DEFAULT_SEED, decodeSeed } from './seed'

// Bob Jenkins' lookup3 final mix and mix, as the Linux kernel's jhash.h (and Cilium's
// bpf/lib/jhash.h) define them, in uint32 arithmetic.

const JHASH_INITVAL = 0xdeadbeef

function rol32(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0
}

let ja = 0
let jb = 0
let jc = 0

function jhashFinal(): void {
  jc = ((jc ^ jb) - rol32(jb, 14)) >>> 0
  ja = ((ja ^ jc) - rol32(jc, 11)) >>> 0
  jb = ((jb ^ ja) - rol32(ja, 25)) >>> 0
  jc = ((jc ^ jb) - rol32(jb, 16)) >>> 0
  ja = ((ja ^ jc) - rol32(jc, 4)) >>> 0
  jb = ((jb ^ ja) - rol32(ja, 14)) >>> 0
  jc = ((jc ^ jb) - rol32(jb, 24)) >>> 0
}

function jhashMix(): void {
  ja = (((ja - jc) >>> 0) ^ rol32(jc, 4)) >>> 0
  jc = (jc + jb) >>> 0
  jb = (((jb - ja) >>> 0) ^ rol32(ja, 6)) >>> 0
  ja = (ja + jc) >>> 0
  jc = (((jc - jb) >>> 0) ^ rol32(jb, 8)) >>> 0
  jb = (jb + ja) >>> 0
  ja = (((ja - jc) >>> 0) ^ rol32(jc, 16)) >>> 0
  jc = (jc + jb) >>> 0
  jb = (((jb - ja) >>> 0) ^ rol32(ja, 19)) >>> 0
  ja = (ja + jc) >>> 0
  jc = (((jc - jb) >>> 0) ^ rol32(jb, 4)) >>> 0
  jb = (jb + ja) >>> 0
}

/**
 * The kernel's `jhash_3words(a, b, c, initval)` (uint32 in, uint32 out).
 *
 * @example jhash3Words(0x0100000a, 0x50003930, 6, 0) // the IPv4 flow hash with seed 0
 */
export function jhash3Words(a: number, b: number, c: number, initval: number): number {
  const iv = (initval + JHASH_INITVAL + (3 << 2)) >>> 0
  ja = (a + iv) >>> 0
  jb = (b + iv) >>> 0
  jc = (c + iv) >>> 0
  jhashFinal()
  return jc
}

/** IP protocol numbers for the names {@link flowHash} accepts. */
export const IP_PROTOCOLS = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const

/** The part of a packet the Maglev flow hash reads. */
export interface Flow {
  /** Source (client) address, IPv4 or IPv6. The destination is deliberately not hashed. */
  saddr: string
  /** Source port (host order, 0..65535). */
  sport: number
  /** Destination (service) port (host order, 0..65535). */
  dport: number
  /** IP protocol number (0..255) or name ('TCP', 'UDP', 'SCTP', 'ICMP', 'ICMPV6'). Default 'TCP'. */
  protocol?: number | keyof typeof IP_PROTOCOLS | Lowercase<keyof typeof IP_PROTOCOLS>
}

/** Options of {@link flowHash}. */
export interface FlowHashOptions {
  /** The cluster-wide Maglev seed (bytes 4..7 seed IPv4, bytes 8..11 seed IPv6). Default 'JLfvgnHc2kaSUFaI'. */
  seed?: string
}

function bswap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8)
}

function le32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0
}

function checkFlow(flow: Flow): { bytes: Uint8Array; family: 4 | 6; proto: number } {
  if (typeof flow !== 'object' || flow === null)
    throw new MaglevError(
      MaglevErrorCode.INVALID_FLOW,
      `expected a flow object, got ${describe(flow)}`,
      {
        path: 'flow',
      },
    )
  const ip = parseIp(flow.saddr)
  if (!ip)
    throw new MaglevError(
      MaglevErrorCode.INVALID_FLOW,
      `expected an IPv4 or IPv6 address, got ${describe(flow.saddr)}`,
      {
        path: 'flow.saddr',
      },
    )
  for (const field of ['sport', 'dport'] as const) {
    const v = flow[field]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff)
      throw new MaglevError(
        MaglevErrorCode.INVALID_FLOW,
        `expected an integer 0..65535, got ${describe(v)}`,
        {
          path: `flow.${field}`,
        },
      )
  }
  const p = flow.protocol ?? 'TCP'
  const proto =
    typeof p === 'string' ? IP_PROTOCOLS[p.toUpperCase() as keyof typeof IP_PROTOCOLS] : p
  if (typeof proto !== 'number' || !Number.isInteger(proto) || proto < 0 || proto > 255)
    throw new MaglevError(
      MaglevErrorCode.INVALID_FLOW,
      `expected a protocol number 0..255 or one of ${Object.keys(IP_PROTOCOLS).join(', ')}, got ${describe(p)}`,
      { path: 'flow.protocol' },
    )
  return { bytes: ip.bytes, family: ip.family, proto }
}

/**
 * The datapath's per-packet Maglev hash, as Cilium's bpf/lib/hash.h computes it on a
 * little-endian host (x86_64, arm64). The slot is `flowHash(flow) % M`.
 *
 * The C side reads the addresses and ports straight from the packet (network byte order) as
 * host integers, so the words are byte-swapped relative to the numbers you write down:
 * - IPv4: `jhash_3words(saddr, ((u32)dport << 16) | sport, protocol, seed.jhash0)` with saddr a
 *   `__be32` and the ports `__be16` as loaded from the packet.
 * - IPv6: a, b, c = saddr words 0..2; mix; a += word 3; b += ports word as above; c += protocol;
 *   mix; a += seed.jhash1; final; the result is c.
 * The destination address is not hashed, so a client keeps its backend across service VIPs.
 *
 * @example flowHash({ saddr: '10.0.0.1', sport: 12345, dport: 80, protocol: 'TCP' })
 */
export function flowHash(flow: Flow, options: FlowHashOptions = {}): number {
  const { bytes, family, proto } = checkFlow(flow)
  const seed = decodeSeed(options.seed ?? DEFAULT_SEED)
  const ports = ((bswap16(flow.dport) << 16) | bswap16(flow.sport)) >>> 0
  if (family === 4) return jhash3Words(le32(bytes, 0), ports, proto, seed.jhash0)
  ja = le32(bytes, 0)
  jb = le32(bytes, 4)
  jc = le32(bytes, 8)
  jhashMix()
  ja = (ja + le32(bytes, 12)) >>> 0
  jb = (jb + ports) >>> 0
  jc = (jc + proto) >>> 0
  jhashMix()
  ja = (ja + seed.jhash1) >>> 0
  jhashFinal()
  return jc
}

/**
 * The backend id a flow gets from a table: `table[flowHash(flow) % table.length]`.
 *
 * @example lookupBackend(buildLookupTable(backends), { saddr: '10.0.0.9', sport: 40000, dport: 80 })
 */
export function lookupBackend(
  table: ArrayLike<number>,
  flow: Flow,
  options: FlowHashOptions = {},
): number {
  return table[flowHash(flow, options) % table.length]!
}
