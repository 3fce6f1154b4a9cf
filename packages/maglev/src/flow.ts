import { parseIp } from '@membrane/types'
import { describe, MaglevError, MaglevErrorCode } from './errors'
import { DEFAULT_SEED, decodeSeed } from './seed'

// Bob Jenkins' lookup3 final mix and mix, as the Linux kernel's jhash.h (and Cilium's
// bpf/lib/jhash.h) define them, in uint32 arithmetic.

const JHASH_INITVAL = 0xdeadbeef

function rol32(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0
}

// The three lanes live in a Uint32Array: a module-level `let` holding a uint32 above 2^31
// would be boxed (one allocation per write).
const J = new Uint32Array(3)

function jhashFinal(): void {
  J[2] = ((J[2]! ^ J[1]!) - rol32(J[1]!, 14)) >>> 0
  J[0] = ((J[0]! ^ J[2]!) - rol32(J[2]!, 11)) >>> 0
  J[1] = ((J[1]! ^ J[0]!) - rol32(J[0]!, 25)) >>> 0
  J[2] = ((J[2]! ^ J[1]!) - rol32(J[1]!, 16)) >>> 0
  J[0] = ((J[0]! ^ J[2]!) - rol32(J[2]!, 4)) >>> 0
  J[1] = ((J[1]! ^ J[0]!) - rol32(J[0]!, 14)) >>> 0
  J[2] = ((J[2]! ^ J[1]!) - rol32(J[1]!, 24)) >>> 0
}

function jhashMix(): void {
  J[0] = (((J[0]! - J[2]!) >>> 0) ^ rol32(J[2]!, 4)) >>> 0
  J[2] = (J[2]! + J[1]!) >>> 0
  J[1] = (((J[1]! - J[0]!) >>> 0) ^ rol32(J[0]!, 6)) >>> 0
  J[0] = (J[0]! + J[2]!) >>> 0
  J[2] = (((J[2]! - J[1]!) >>> 0) ^ rol32(J[1]!, 8)) >>> 0
  J[1] = (J[1]! + J[0]!) >>> 0
  J[0] = (((J[0]! - J[2]!) >>> 0) ^ rol32(J[2]!, 16)) >>> 0
  J[2] = (J[2]! + J[1]!) >>> 0
  J[1] = (((J[1]! - J[0]!) >>> 0) ^ rol32(J[0]!, 19)) >>> 0
  J[0] = (J[0]! + J[2]!) >>> 0
  J[2] = (((J[2]! - J[1]!) >>> 0) ^ rol32(J[1]!, 4)) >>> 0
  J[1] = (J[1]! + J[0]!) >>> 0
}

/**
 * The kernel's `jhash_3words(a, b, c, initval)` (uint32 in, uint32 out).
 *
 * @example jhash3Words(0x0100000a, 0x50003930, 6, 0) // the IPv4 flow hash with seed 0
 */
export function jhash3Words(a: number, b: number, c: number, initval: number): number {
  const iv = (initval + JHASH_INITVAL + (3 << 2)) >>> 0
  J[0] = (a + iv) >>> 0
  J[1] = (b + iv) >>> 0
  J[2] = (c + iv) >>> 0
  jhashFinal()
  return J[2]!
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
  /**
   * A raw uint32 jhash seed (the `initval` the datapath was configured with), used instead of
   * the one derived from `seed` for both address families.
   */
  initval?: number
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
  let seed4: number
  let seed6: number
  if (options.initval !== undefined) {
    const iv = options.initval
    if (typeof iv !== 'number' || !Number.isInteger(iv) || iv < 0 || iv > 0xffffffff)
      throw new MaglevError(
        MaglevErrorCode.INVALID_FLOW,
        `expected an integer 0..4294967295, got ${describe(iv)}`,
        {
          path: 'options.initval',
        },
      )
    seed4 = iv
    seed6 = iv
  } else {
    const seed = decodeSeed(options.seed ?? DEFAULT_SEED)
    seed4 = seed.jhash0
    seed6 = seed.jhash1
  }
  const ports = ((bswap16(flow.dport) << 16) | bswap16(flow.sport)) >>> 0
  if (family === 4) return jhash3Words(le32(bytes, 0), ports, proto, seed4)
  J[0] = le32(bytes, 0)
  J[1] = le32(bytes, 4)
  J[2] = le32(bytes, 8)
  jhashMix()
  J[0] = (J[0]! + le32(bytes, 12)) >>> 0
  J[1] = (J[1]! + ports) >>> 0
  J[2] = (J[2]! + proto) >>> 0
  jhashMix()
  J[0] = (J[0]! + seed6) >>> 0
  jhashFinal()
  return J[2]!
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
