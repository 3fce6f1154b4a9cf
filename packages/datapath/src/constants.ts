/**
 * Numbers shared with bpf-src (each object mirrors a family of `#define`s; a test parses the
 * headers and compares). Names drop the C prefix given in the comment. Reserved identities, the
 * proxy mark and drop reasons, which other packages share, live in @membrane/types.
 */

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
  /** The peer is behind another node's tunnel endpoint (the flow goes through the overlay). */
  OVERLAY: 1 << 8,
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
  /** Allowed, but an audit policy would deny it (events carry MB_EVF_AUDIT). */
  AUDIT: 1 << 2,
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

/** IP protocol numbers used in keys. */
export const IpProto = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const
