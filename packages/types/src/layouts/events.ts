/**
 * Layouts of the structs several packages read: the datapath's event record, decoded by
 * @membrane/flows and built by the datapath tests. Datapath-only structs live in
 * @membrane/datapath's layouts.
 */
import { bytes, mac, pad, struct, u8, u16, u32, u64 } from '../codec'

/**
 * `struct mb_event` (bpf-src/lib/events.h): one ring-buffer record. Ports are host order
 * (`__u16`); the three addresses are 16 bytes each, IPv4 in the first 4 unless the IPv6 flag is
 * set, so they are raw bytes here and the reader formats them by family.
 */
export const eventCodec = struct('mb_event', {
  type: u8,
  subtype: u8,
  direction: u8,
  flags: u8,
  matchType: u8,
  action: u8,
  protocol: u8,
  tcpFlags: u8,
  endpointId: u16,
  proxyPort: u16,
  ifindex: u32,
  srcIdentity: u32,
  dstIdentity: u32,
  len: u32,
  extError: u32,
  ktimeNs: u64,
  sockCookie: u64,
  sport: u16,
  dport: u16,
  origDport: u16,
  icmpTypeCode: u16,
  saddr: bytes(16),
  daddr: bytes(16),
  origDaddr: bytes(16),
  smac: mac,
  dmac: mac,
  ruleSet: u16,
  _pad: pad(2, 2),
})

/** The struct codecs this package declares, for the BTF check. */
export const EVENT_STRUCT_CODECS = [eventCodec] as const
