/**
 * Protocol numbers, port ranges as masked prefixes, ICMP type names.
 */

/** IP protocol numbers used in map state keys (0 = any). */
export const Protocol = { ANY: 0, ICMP: 1, TCP: 6, UDP: 17, ICMPv6: 58, SCTP: 132 } as const

/** Protocol names accepted by the policy API in `toPorts[].ports[].protocol`. */
export type L4ProtocolName = 'TCP' | 'UDP' | 'SCTP' | 'ANY'

/** Protocol numbers that the name stands for (ANY = TCP + UDP + SCTP, as Cilium). */
export function protocolNumbers(name: L4ProtocolName): number[] {
  switch (name) {
    case 'TCP':
      return [6]
    case 'UDP':
      return [17]
    case 'SCTP':
      return [132]
    case 'ANY':
      return [6, 17, 132]
  }
}

/** Protocol name or number -> number. Accepts 'TCP', 'tcp', 6, 'ICMP', 'ICMPv6', ... */
export function protocolNumber(p: string | number): number | undefined {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 0 && p <= 255 ? p : undefined
  switch (p.toUpperCase()) {
    case 'ANY':
      return 0
    case 'TCP':
      return 6
    case 'UDP':
      return 17
    case 'SCTP':
      return 132
    case 'ICMP':
      return 1
    case 'ICMPV6':
      return 58
    default:
      return /^\d+$/.test(p) ? protocolNumber(Number(p)) : undefined
  }
}

/** Name of a protocol number for display. */
export function protocolName(n: number): string {
  return (
    (
      { 0: 'ANY', 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' } as Record<
        number,
        string
      >
    )[n] ?? String(n)
  )
}

/** A port prefix: `port` with the low `16 - prefixLen` bits clear covers 2^(16-prefixLen) ports. */
export interface PortPrefix {
  port: number
  prefixLen: number
}

/**
 * Split the inclusive range [from, to] into the fewest aligned prefixes, Cilium-style.
 * `portRangeToPrefixes(80, 80)` -> [{80,16}]; `(0, 65535)` -> [{0,0}].
 *
 * @example portRangeToPrefixes(8080, 8083) // [{ port: 8080, prefixLen: 14 }]
 */
export function portRangeToPrefixes(from: number, to: number): PortPrefix[] {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > 65535 || from > to) {
    throw new RangeError(`invalid port range ${from}-${to}`)
  }
  const out: PortPrefix[] = []
  let lo = from
  while (lo <= to) {
    // Largest block aligned at lo that stays inside [lo, to].
    let size = lo === 0 ? 65536 : lo & -lo
    while (lo + size - 1 > to) size >>= 1
    out.push({ port: lo, prefixLen: 16 - Math.log2(size) })
    lo += size
  }
  return out
}

/** Does the prefix cover `port`? */
export function prefixCovers(p: PortPrefix, port: number): boolean {
  const shift = 16 - p.prefixLen
  return p.prefixLen === 0 || port >>> shift === p.port >>> shift
}

/** ICMPv4 type names accepted by Cilium's `icmps[].fields[].type`. */
export const ICMPV4_TYPES: Record<string, number> = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  Redirect: 5,
  Echo: 8,
  EchoRequest: 8,
  RouterAdvertisement: 9,
  RouterSelection: 10,
  TimeExceeded: 11,
  ParameterProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
  Photuris: 40,
  ExtendedEchoRequest: 42,
  ExtendedEchoReply: 43,
}

/** ICMPv6 type names accepted by Cilium's `icmps[].fields[].type`. */
export const ICMPV6_TYPES: Record<string, number> = {
  DestinationUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParameterProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
  MulticastListenerQuery: 130,
  MulticastListenerReport: 131,
  MulticastListenerDone: 132,
  RouterSolicitation: 133,
  RouterAdvertisement: 134,
  NeighborSolicitation: 135,
  NeighborAdvertisement: 136,
  RedirectMessage: 137,
  RouterRenumbering: 138,
  ICMPNodeInformationQuery: 139,
  ICMPNodeInformationResponse: 140,
  InverseNeighborDiscoverySolicitation: 141,
  InverseNeighborDiscoveryAdvertisement: 142,
  HomeAgentAddressDiscoveryRequest: 144,
  HomeAgentAddressDiscoveryReply: 145,
  MobilePrefixSolicitation: 146,
  MobilePrefixAdvertisement: 147,
  DuplicateAddressRequestCodeSuffix: 157,
  DuplicateAddressConfirmationCodeSuffix: 158,
  ExtendedEchoRequest: 160,
  ExtendedEchoReply: 161,
}

/** Is `name` a valid Kubernetes port name (IANA_SVC_NAME)? */
export function isValidPortName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= 15 &&
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name) &&
    !name.includes('--') &&
    /[a-z]/.test(name)
  )
}
