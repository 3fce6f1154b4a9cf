import { eventCodec, ipv4 } from '@membrane/types'

/** `struct mb_event` as the datapath tests assert on it (IPv4 addresses as text). */
export interface RawEvent {
  type: number
  subtype: number
  direction: number
  flags: number
  matchType: number
  action: number
  protocol: number
  endpointId: number
  proxyPort: number
  srcIdentity: number
  dstIdentity: number
  sport: number
  dport: number
  origDport: number
  saddr: string
  daddr: string
  origDaddr: string
  ruleSet: number
}

/** Decode a ring-buffer record with the one event layout (@membrane/types' eventCodec). */
export function decodeRawEvent(b: Buffer): RawEvent {
  if (b.length !== eventCodec.size) throw new Error(`event of ${b.length} bytes`)
  const e = eventCodec.decode(b)
  return {
    type: e.type,
    subtype: e.subtype,
    direction: e.direction,
    flags: e.flags,
    matchType: e.matchType,
    action: e.action,
    protocol: e.protocol,
    endpointId: e.endpointId,
    proxyPort: e.proxyPort,
    srcIdentity: e.srcIdentity,
    dstIdentity: e.dstIdentity,
    sport: e.sport,
    dport: e.dport,
    origDport: e.origDport,
    saddr: ipv4.decode(e.saddr),
    daddr: ipv4.decode(e.daddr),
    origDaddr: ipv4.decode(e.origDaddr),
    ruleSet: e.ruleSet,
  }
}
