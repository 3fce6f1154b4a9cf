/**
 * Numbers shared with bpf-src (each object mirrors a family of `#define`s; a test parses the
 * headers and compares). Names drop the C prefix given in the comment.
 */

/** Reserved identities (Cilium's numbering). C: `MB_ID_*`. */
export const ReservedIdentity = {
  UNKNOWN: 0,
  HOST: 1,
  WORLD: 2,
  UNMANAGED: 3,
  HEALTH: 4,
  INIT: 5,
  REMOTE_NODE: 6,
} as const

/** mb_config.flags. C: `MB_CFG_*`. */
export const ConfigFlag = {
  /** A trace event for the first packet of every connection. */
  TRACE_NEW: 1 << 0,
  /** A trace event for every forwarded packet (costly). */
  TRACE_ALL: 1 << 1,
  /** Policy verdict events for new connections. */
  VERDICTS: 1 << 2,
  /** Events for socket-level translations. */
  SOCK_LB_EVENTS: 1 << 3,
} as const

/** mb_endpoint.flags. C: `MB_EP_F_*`. */
export const EndpointFlag = {
  ENFORCE_INGRESS: 1 << 0,
  ENFORCE_EGRESS: 1 << 1,
} as const

/** mb_ct_tuple4.flags. C: `MB_CT_TUPLE_F_*`. */
export const CtTupleFlag = {
  SERVICE: 1 << 0,
} as const

/** mb_ct_entry.flags. C: `MB_CT_F_*`. */
export const CtFlag = {
  REV_NAT: 1 << 0,
  PROXY_REDIRECT: 1 << 1,
  TX_CLOSING: 1 << 2,
  RX_CLOSING: 1 << 3,
  SEEN_REPLY: 1 << 4,
  SERVICE: 1 << 5,
  FROM_PROXY: 1 << 6,
  HAIRPIN: 1 << 7,
} as const

/** mb_policy_key.direction. C: `MB_POLICY_*` (INGRESS/EGRESS). */
export const PolicyDirection = {
  INGRESS: 0,
  EGRESS: 1,
} as const

/** mb_policy_entry.flags. C: `MB_POLICY_F_*`. */
export const PolicyEntryFlag = {
  WILDCARD_PROTO: 1 << 0,
  WILDCARD_PORT: 1 << 1,
} as const

/** mb_lb_service.algorithm. C: `MB_LB_ALG_*`. */
export const LbAlgorithm = {
  RANDOM: 1,
  MAGLEV: 2,
} as const

/** mb_lb_service.flags. C: `MB_SVC_F_*`. */
export const ServiceFlag = {
  SOCK_LB_SKIP: 1 << 0,
} as const

/** mb_lb4_backend.flags. C: `MB_BACKEND_F_*`. */
export const BackendFlag = {
  DRAINING: 1 << 0,
} as const

/** Traffic direction of events and metrics (Hubble's numbers). C: `MB_DIR_*`. */
export const TrafficDirection = {
  UNKNOWN: 0,
  INGRESS: 1,
  EGRESS: 2,
} as const

/** skb->mark magic of the L7 proxy's upstream sockets. C: `MB_MARK_MAGIC_PROXY`. */
export const MARK_MAGIC_PROXY = 0x0a00

/**
 * The SO_MARK the L7 proxy sets on its upstream connection for a client of `identity`
 * (`0x0A00 | identity << 16`, Cilium's magic mark layout): the destination's ingress policy
 * reads the source identity from it and does not redirect the flow to the proxy again.
 *
 * @example proxySocketMark(12345) // 0x30390a00
 */
export function proxySocketMark(identity: number): number {
  if (!Number.isInteger(identity) || identity < 0 || identity > 0xffff)
    throw new RangeError(`identity must be 0..65535 to fit the mark, got ${identity}`)
  return ((identity << 16) | MARK_MAGIC_PROXY) >>> 0
}

/** IP protocol numbers used in keys. */
export const IpProto = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const
