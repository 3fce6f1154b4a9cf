/**
 * Codecs of every map key and value of bpf-src, one per C struct, with the C offsets. A test
 * reads the BTF of the compiled objects and checks each size and offset here against it.
 */
import { field as f, struct } from './codec'

/** Size of one Maglev table in the datapath (MB_MAGLEV_TABLE_SIZE in lib/lb.h). */
export const MAGLEV_TABLE_SIZE = 1021

/** `struct mb_config` (lib/common.h): the one global configuration record. */
export const configCodec = struct('mb_config', 64, {
  flags: f.u32(0),
  routerIp4: f.ipv4(4),
  hashSeed: f.u32(8),
  hairpinIp4: f.ipv4(12),
  routerIp6: f.ipv6(16),
  hashSeed6: f.u32(32),
  localNet4: f.ipv4(36),
  localMask4: f.ipv4(40),
  hairpinIp6: f.ipv6(48),
})

/** `struct mb_endpoint` (lib/common.h): value of mb_endpoints (by ifindex) and mb_lxc4 (by IP). */
export const endpointCodec = struct('mb_endpoint', 48, {
  endpointId: f.u32(0),
  identity: f.u32(4),
  ifindex: f.u32(8),
  ip4: f.ipv4(12),
  ip6: f.ipv6(16),
  mac: f.mac(32),
  nodeMac: f.mac(38),
  flags: f.u32(44),
})

/** Rows of `mb_metrics` (MB_METRICS_ENTRIES in lib/metrics.h). */
export const METRICS_ENTRIES = 1024

/** The `mb_metrics` row of a (reason, direction) pair: MB_METRICS_INDEX in lib/metrics.h. */
export function metricsIndex(reason: number, direction: number): number {
  return ((reason << 2) | (direction & 3)) >>> 0
}

/** `struct mb_metrics_value` (lib/metrics.h), one per CPU. */
export const metricsValueCodec = struct('mb_metrics_value', 16, {
  packets: f.u64(0),
  bytes: f.u64(8),
})

/** `struct mb_ct_tuple4` (lib/conntrack.h): conntrack key. */
export const ctTuple4Codec = struct('mb_ct_tuple4', 16, {
  daddr: f.ipv4(0),
  saddr: f.ipv4(4),
  dport: f.be16(8),
  sport: f.be16(10),
  nexthdr: f.u8(12),
  flags: f.u8(13),
})

/** `struct mb_ct_tuple6` (lib/ipv6.h): IPv6 conntrack key (value: mb_ct_entry). */
export const ctTuple6Codec = struct('mb_ct_tuple6', 40, {
  daddr: f.ipv6(0),
  saddr: f.ipv6(16),
  dport: f.be16(32),
  sport: f.be16(34),
  nexthdr: f.u8(36),
  flags: f.u8(37),
})

/** `struct mb_ct_entry` (lib/conntrack.h): conntrack value. */
export const ctEntryCodec = struct('mb_ct_entry', 56, {
  expiresNs: f.u64(0),
  packets: f.u64(8),
  bytes: f.u64(16),
  srcIdentity: f.u32(24),
  backendId: f.u32(28),
  revNatAddr: f.ipv4(32),
  revNatPort: f.be16(36),
  revNatIndex: f.u16(38),
  flags: f.u16(40),
  proxyPort: f.u16(42),
  endpointId: f.u16(44),
  txFlagsSeen: f.u8(46),
  rxFlagsSeen: f.u8(47),
  createdNs: f.u64(48),
})

/** `struct mb_ipcache_key` (lib/ipcache.h): LPM key, address bytes in network order. */
export const ipcacheKeyCodec = struct('mb_ipcache_key', 24, {
  prefixlen: f.u32(0),
  pad1: f.u16(4),
  clusterId: f.u8(6),
  family: f.u8(7),
  ip: f.bytes(8, 16),
})

/** `struct mb_ipcache_value` (lib/ipcache.h). */
export const ipcacheValueCodec = struct('mb_ipcache_value', 12, {
  identity: f.u32(0),
  tunnelEndpoint: f.ipv4(4),
  flags: f.u8(8),
})

/** `struct mb_policy_key` (lib/policy.h): LPM key of the global policy map. */
export const policyKeyCodec = struct('mb_policy_key', 20, {
  prefixlen: f.u32(0),
  endpointId: f.u32(4),
  identity: f.u32(8),
  direction: f.u8(12),
  protocol: f.u8(13),
  dport: f.be16(14),
})

/**
 * `struct mb_policy_fast_key` (lib/policy.h): key of `mb_policy_fast`, the exact-match index
 * in front of the policy trie (full-port entries, and per identity/direction summary records
 * with `direction | POLICY_SUMMARY`).
 */
export const policyFastKeyCodec = struct('mb_policy_fast_key', 12, {
  endpointId: f.u32(0),
  identity: f.u32(4),
  direction: f.u8(8),
  protocol: f.u8(9),
  dport: f.be16(10),
})

/** `struct mb_policy_entry` (lib/policy.h). */
export const policyEntryCodec = struct('mb_policy_entry', 24, {
  proxyPort: f.u16(0),
  deny: f.u8(2),
  authType: f.u8(3),
  flags: f.u8(4),
  prefixLen: f.u8(5),
  packets: f.u64(8),
  bytes: f.u64(16),
})

/** `struct mb_auth_key` (lib/policy.h). */
export const authKeyCodec = struct('mb_auth_key', 12, {
  localIdentity: f.u32(0),
  remoteIdentity: f.u32(4),
  authType: f.u8(8),
})

/** `struct mb_auth_value` (lib/policy.h). */
export const authValueCodec = struct('mb_auth_value', 8, {
  expiresNs: f.u64(0),
})

/** `struct mb_lb4_key` (lib/lb.h): service frontend. */
export const lb4KeyCodec = struct('mb_lb4_key', 8, {
  address: f.ipv4(0),
  dport: f.be16(4),
  proto: f.u8(6),
  scope: f.u8(7),
})

/** `struct mb_lb4_service` (lib/lb.h). */
export const lb4ServiceCodec = struct('mb_lb4_service', 8, {
  count: f.u32(0),
  revNatIndex: f.u16(4),
  algorithm: f.u8(6),
  flags: f.u8(7),
})

/** `struct mb_lb4_backend` (lib/lb.h), keyed by a u32 backend id. */
export const lb4BackendCodec = struct('mb_lb4_backend', 8, {
  address: f.ipv4(0),
  port: f.be16(4),
  proto: f.u8(6),
  flags: f.u8(7),
})

/** `struct mb_lb6_key` (lib/ipv6.h): IPv6 service frontend (value: mb_lb4_service). */
export const lb6KeyCodec = struct('mb_lb6_key', 24, {
  address: f.ipv6(0),
  dport: f.be16(16),
  proto: f.u8(18),
  scope: f.u8(19),
})

/** `struct mb_lb6_backend` (lib/ipv6.h), keyed by a u32 backend id. */
export const lb6BackendCodec = struct('mb_lb6_backend', 24, {
  address: f.ipv6(0),
  port: f.be16(16),
  proto: f.u8(18),
  flags: f.u8(19),
})

/** `struct mb_lb6_revnat` (lib/ipv6.h), keyed by u32 rev_nat_index. */
export const lb6RevnatCodec = struct('mb_lb6_revnat', 24, {
  address: f.ipv6(0),
  port: f.be16(16),
})

/** `struct mb_lb_slot_key` (lib/lb.h), value: u32 backend id. */
export const lbSlotKeyCodec = struct('mb_lb_slot_key', 4, {
  revNatIndex: f.u16(0),
  slot: f.u16(2),
})

/** `struct mb_lb_maglev` (lib/lb.h), keyed by u32 rev_nat_index. */
export const maglevCodec = struct('mb_lb_maglev', MAGLEV_TABLE_SIZE * 4, {
  backendIds: f.u32array(0, MAGLEV_TABLE_SIZE),
})

/** `struct mb_proxy4_key` (lib/proxy.h). */
export const proxy4KeyCodec = struct('mb_proxy4_key', 8, {
  clientIp: f.ipv4(0),
  clientPort: f.be16(4),
  proto: f.u8(6),
})

/** `struct mb_proxy4_value` (lib/proxy.h). */
export const proxy4ValueCodec = struct('mb_proxy4_value', 20, {
  origDaddr: f.ipv4(0),
  origDport: f.be16(4),
  endpointId: f.u16(6),
  srcIdentity: f.u32(8),
  dstIdentity: f.u32(12),
  direction: f.u8(16),
})

/** `struct mb_proxy6_key` (lib/proxy.h): an IPv6 client of the L7 proxy. */
export const proxy6KeyCodec = struct('mb_proxy6_key', 20, {
  clientIp: f.ipv6(0),
  clientPort: f.be16(16),
  proto: f.u8(18),
})

/** `struct mb_proxy6_value` (lib/proxy.h): where an IPv6 client's connection was going. */
export const proxy6ValueCodec = struct('mb_proxy6_value', 32, {
  origDaddr: f.ipv6(0),
  origDport: f.be16(16),
  endpointId: f.u16(18),
  srcIdentity: f.u32(20),
  dstIdentity: f.u32(24),
  direction: f.u8(28),
})

/** `struct mb_sock_revnat4_key` (lib/sock_lb.h). */
export const sockRevnat4KeyCodec = struct('mb_sock_revnat4_key', 16, {
  cookie: f.u64(0),
  address: f.ipv4(8),
  port: f.be16(12),
})

/** `struct mb_sock_revnat4_value` (lib/sock_lb.h). */
export const sockRevnat4ValueCodec = struct('mb_sock_revnat4_value', 8, {
  address: f.ipv4(0),
  port: f.be16(4),
  revNatIndex: f.u16(6),
})

/** `struct mb_sock_revnat6_key` (lib/sock_lb.h). */
export const sockRevnat6KeyCodec = struct('mb_sock_revnat6_key', 32, {
  cookie: f.u64(0),
  address: f.ipv6(8),
  port: f.be16(24),
})

/** `struct mb_sock_revnat6_value` (lib/sock_lb.h). */
export const sockRevnat6ValueCodec = struct('mb_sock_revnat6_value', 24, {
  address: f.ipv6(0),
  port: f.be16(16),
  revNatIndex: f.u16(18),
})

/** Every struct codec, for the layout test and for tools. */
/** `struct mb_frag4_key` (lib/parse.h): an IPv4 datagram being fragmented. */
export const frag4KeyCodec = struct('mb_frag4_key', 12, {
  daddr: f.ipv4(0),
  saddr: f.ipv4(4),
  id: f.be16(8),
  proto: f.u8(10),
})

/** `struct mb_frag4_l4` (lib/parse.h): the first fragment's L4 fields. */
export const frag4L4Codec = struct('mb_frag4_l4', 8, {
  sport: f.be16(0),
  dport: f.be16(2),
  icmpTypeCode: f.u16(4),
})

/** `struct mb_policy_any` (lib/policy.h): an identity-0 summary slot. */
export const policyAnyCodec = struct('mb_policy_any', 8, {
  shorter: f.u32(0),
  full: f.u32(4),
})

export const STRUCT_CODECS = [
  configCodec,
  endpointCodec,
  metricsValueCodec,
  ctTuple4Codec,
  ctTuple6Codec,
  ctEntryCodec,
  ipcacheKeyCodec,
  ipcacheValueCodec,
  policyKeyCodec,
  policyFastKeyCodec,
  policyEntryCodec,
  authKeyCodec,
  authValueCodec,
  lb4KeyCodec,
  lb4ServiceCodec,
  lb4BackendCodec,
  lb6KeyCodec,
  lb6BackendCodec,
  lb6RevnatCodec,
  lbSlotKeyCodec,
  maglevCodec,
  proxy4KeyCodec,
  proxy4ValueCodec,
  proxy6KeyCodec,
  proxy6ValueCodec,
  sockRevnat4KeyCodec,
  sockRevnat4ValueCodec,
  sockRevnat6KeyCodec,
  sockRevnat6ValueCodec,
  frag4KeyCodec,
  frag4L4Codec,
  policyAnyCodec,
] as const
