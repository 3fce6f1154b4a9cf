/** Minimal decoding of `struct mb_event` for assertions (@membrane/flows owns the real decoder). */
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
}

const ip = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`

export function decodeRawEvent(b: Buffer): RawEvent {
  if (b.length !== 120) throw new Error(`event of ${b.length} bytes`)
  return {
    type: b[0] as number,
    subtype: b[1] as number,
    direction: b[2] as number,
    flags: b[3] as number,
    matchType: b[4] as number,
    action: b[5] as number,
    protocol: b[6] as number,
    endpointId: b.readUInt16LE(8),
    proxyPort: b.readUInt16LE(10),
    srcIdentity: b.readUInt32LE(16),
    dstIdentity: b.readUInt32LE(20),
    sport: b.readUInt16LE(48),
    dport: b.readUInt16LE(50),
    origDport: b.readUInt16LE(52),
    saddr: ip(b, 56),
    daddr: ip(b, 72),
    origDaddr: ip(b, 88),
  }
}
