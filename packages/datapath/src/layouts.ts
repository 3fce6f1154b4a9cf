/**
 * Codecs of the map keys and values only the datapath reads, one per C struct, declared with
 * @membrane/types' struct codecs (offsets computed by the C layout rules). The repository's BTF
 * check (test/btf-layouts.test.ts) compares every one with the compiled objects.
 */
import {
  aligned,
  be16,
  bytes,
  ipv4,
  ipv6,
  mac,
  pad,
  struct,
  u8,
  u16,
  u32,
  u32array,
  u64,
} from '@membrane/types'

/** `union mb_v6addr` (lib/common.h): 16 address bytes, aligned like its `__u64[2]` member. */
const v6addr = aligned(ipv6, 8)

/** Size of one Maglev table in the datapath (MB_MAGLEV_TABLE_SIZE in lib/lb.h). */
export const MAGLEV_TABLE_SIZE = 1021

/** `struct mb_config` (lib/common.h): the one global configuration record. */
export const configCodec = struct('mb_config', {
  flags: u32,
  routerIp4: ipv4,
  hashSeed: u32,
  hairpinIp4: ipv4,
  routerIp6: ipv6,
  hashSeed6: u32,
  localNet4: ipv4,
  localMask4: ipv4,
  tunnelIfindex: u32,
  hairpinIp6: ipv6,
})

/** `struct mb_endpoint` (lib/common.h): value of mb_endpoints (by ifindex) and mb_lxc4 (by IP). */
export const endpointCodec = struct('mb_endpoint', {
  endpointId: u32,
  identity: u32,
  ifindex: u32,
  ip4: ipv4,
  ip6: ipv6,
  mac: mac,
  nodeMac: mac,
  flags: u32,
})

/** Rows of `mb_metrics` (MB_METRICS_ENTRIES in lib/metrics.h). */
export const METRICS_ENTRIES = 1024

/** The `mb_metrics` row of a (reason, direction) pair: MB_METRICS_INDEX in lib/metrics.h. */
export function metricsIndex(reason: number, direction: number): number {
  return ((reason << 2) | (direction & 3)) >>> 0
}

/** `struct mb_metrics_value` (lib/metrics.h), one per CPU. */
export const metricsValueCodec = struct('mb_metrics_value', {
  packets: u64,
  bytes: u64,
})

/** `struct mb_ct_tuple4` (lib/conntrack.h): conntrack key. */
export const ctTuple4Codec = struct('mb_ct_tuple4', {
  daddr: ipv4,
  saddr: ipv4,
  dport: be16,
  sport: be16,
  nexthdr: u8,
  flags: u8,
  pad: pad(2, 2),
})

/** `struct mb_ct_tuple6` (lib/conntrack.h): IPv6 conntrack key (value: mb_ct_entry). */
export const ctTuple6Codec = struct('mb_ct_tuple6', {
  daddr: v6addr,
  saddr: v6addr,
  dport: be16,
  sport: be16,
  nexthdr: u8,
  flags: u8,
  pad: pad(2, 2),
})

/** `struct mb_ct_entry` (lib/conntrack.h): conntrack value. */
export const ctEntryCodec = struct('mb_ct_entry', {
  expiresNs: u64,
  packets: u64,
  bytes: u64,
  srcIdentity: u32,
  backendId: u32,
  revNatAddr: ipv4,
  revNatPort: be16,
  revNatIndex: u16,
  flags: u16,
  proxyPort: u16,
  endpointId: u16,
  txFlagsSeen: u8,
  rxFlagsSeen: u8,
  createdNs: u64,
})

/** `struct mb_ipcache_key` (lib/ipcache.h): LPM key, address bytes in network order. */
export const ipcacheKeyCodec = struct('mb_ipcache_key', {
  prefixlen: u32,
  pad1: pad(2, 2),
  clusterId: u8,
  family: u8,
  ip: bytes(16),
})

/** `struct mb_ipcache_value` (lib/ipcache.h). */
export const ipcacheValueCodec = struct('mb_ipcache_value', {
  identity: u32,
  tunnelEndpoint: ipv4,
  flags: u8,
  pad: pad(3),
})

/** `struct mb_policy_key` (lib/policy.h): LPM key of the global policy map. */
export const policyKeyCodec = struct('mb_policy_key', {
  prefixlen: u32,
  endpointId: u32,
  identity: u32,
  direction: u8,
  protocol: u8,
  dport: be16,
  pad: pad(4, 4),
})

/**
 * `struct mb_policy_fast_key` (lib/policy.h): key of `mb_policy_fast`, the exact-match index
 * in front of the policy trie (full-port entries, and per identity/direction summary records
 * with `direction | POLICY_SUMMARY`).
 */
export const policyFastKeyCodec = struct('mb_policy_fast_key', {
  endpointId: u32,
  identity: u32,
  direction: u8,
  protocol: u8,
  dport: be16,
})

/** `struct mb_policy_entry` (lib/policy.h). */
export const policyEntryCodec = struct('mb_policy_entry', {
  proxyPort: u16,
  deny: u8,
  authType: u8,
  flags: u8,
  prefixLen: u8,
  ruleSet: u16,
  packets: u64,
  bytes: u64,
})

/** `struct mb_auth_key` (lib/policy.h). */
export const authKeyCodec = struct('mb_auth_key', {
  localIdentity: u32,
  remoteIdentity: u32,
  authType: u8,
  pad: pad(3),
})

/** `struct mb_auth_value` (lib/policy.h). */
export const authValueCodec = struct('mb_auth_value', {
  expiresNs: u64,
})

/** `struct mb_lb4_key` (lib/lb.h): service frontend. */
export const lb4KeyCodec = struct('mb_lb4_key', {
  address: ipv4,
  dport: be16,
  proto: u8,
  scope: u8,
})

/** `struct mb_lb_service` (lib/lb.h): value of mb_lb4_services and mb_lb6_services. */
export const lbServiceCodec = struct('mb_lb_service', {
  count: u32,
  revNatIndex: u16,
  algorithm: u8,
  flags: u8,
})

/** `struct mb_lb4_backend` (lib/lb.h), keyed by a u32 backend id. */
export const lb4BackendCodec = struct('mb_lb4_backend', {
  address: ipv4,
  port: be16,
  proto: u8,
  flags: u8,
})

/** `struct mb_lb6_key` (lib/lb.h): IPv6 service frontend (value: mb_lb_service). */
export const lb6KeyCodec = struct('mb_lb6_key', {
  address: v6addr,
  dport: be16,
  proto: u8,
  scope: u8,
})

/** `struct mb_lb6_backend` (lib/lb.h), keyed by a u32 backend id. */
export const lb6BackendCodec = struct('mb_lb6_backend', {
  address: v6addr,
  port: be16,
  proto: u8,
  flags: u8,
})

/** `struct mb_lb6_revnat` (lib/lb.h), keyed by u32 rev_nat_index. */
export const lb6RevnatCodec = struct('mb_lb6_revnat', {
  address: v6addr,
  port: be16,
  pad: pad(2, 2),
})

/** `struct mb_lb_slot_key` (lib/lb.h), value: u32 backend id. */
export const lbSlotKeyCodec = struct('mb_lb_slot_key', {
  revNatIndex: u16,
  slot: u16,
})

/** `struct mb_lb_maglev` (lib/lb.h), keyed by u32 rev_nat_index. */
export const maglevCodec = struct('mb_lb_maglev', {
  backendIds: u32array(MAGLEV_TABLE_SIZE),
})

/** `struct mb_proxy4_key` (lib/proxy.h). */
export const proxy4KeyCodec = struct('mb_proxy4_key', {
  clientIp: ipv4,
  clientPort: be16,
  proto: u8,
  pad: pad(1),
})

/** `struct mb_proxy4_value` (lib/proxy.h). */
export const proxy4ValueCodec = struct('mb_proxy4_value', {
  origDaddr: ipv4,
  origDport: be16,
  endpointId: u16,
  srcIdentity: u32,
  dstIdentity: u32,
  direction: u8,
  pad: pad(3),
})

/** `struct mb_proxy6_key` (lib/proxy.h): an IPv6 client of the L7 proxy. */
export const proxy6KeyCodec = struct('mb_proxy6_key', {
  clientIp: ipv6,
  clientPort: be16,
  proto: u8,
  pad: pad(1),
})

/** `struct mb_proxy6_value` (lib/proxy.h): where an IPv6 client's connection was going. */
export const proxy6ValueCodec = struct('mb_proxy6_value', {
  origDaddr: v6addr,
  origDport: be16,
  endpointId: u16,
  srcIdentity: u32,
  dstIdentity: u32,
  direction: u8,
  pad: pad(3),
})

/** `struct mb_sock_revnat4_key` (lib/sock_lb.h). */
export const sockRevnat4KeyCodec = struct('mb_sock_revnat4_key', {
  cookie: u64,
  address: ipv4,
  port: be16,
  pad: pad(2, 2),
})

/** `struct mb_sock_revnat4_value` (lib/sock_lb.h). */
export const sockRevnat4ValueCodec = struct('mb_sock_revnat4_value', {
  address: ipv4,
  port: be16,
  revNatIndex: u16,
})

/** `struct mb_sock_revnat6_key` (lib/sock_lb.h). */
export const sockRevnat6KeyCodec = struct('mb_sock_revnat6_key', {
  cookie: u64,
  address: v6addr,
  port: be16,
  pad: pad(6, 2),
})

/** `struct mb_sock_revnat6_value` (lib/sock_lb.h). */
export const sockRevnat6ValueCodec = struct('mb_sock_revnat6_value', {
  address: v6addr,
  port: be16,
  revNatIndex: u16,
  pad: pad(4, 4),
})

/** `struct mb_frag4_key` (lib/parse.h): an IPv4 datagram being fragmented. */
export const frag4KeyCodec = struct('mb_frag4_key', {
  daddr: ipv4,
  saddr: ipv4,
  id: be16,
  proto: u8,
  pad: pad(1),
})

/** `struct mb_frag4_l4` (lib/parse.h): the first fragment's L4 fields. */
export const frag4L4Codec = struct('mb_frag4_l4', {
  sport: be16,
  dport: be16,
  icmpTypeCode: u16,
  pad: pad(2, 2),
})

/** `struct mb_policy_any` (lib/policy.h): an identity-0 summary slot. */
export const policyAnyCodec = struct('mb_policy_any', {
  shorter: u32,
  full: u32,
})

/** Every struct codec this package declares (the BTF check requires each to be listed). */
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
  lbServiceCodec,
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
