/**
 * Drop reasons of the datapath, numbered like Cilium's (the positive value a drop event carries).
 * Derived from bpf-src/lib/drop_reasons.h; a test parses the header and compares both ways.
 */
export const DropReason = {
  INVALID_SIP: 132,
  POLICY: 133,
  INVALID: 134,
  CT_INVALID_HDR: 135,
  FRAG_NEEDED: 136,
  CT_UNKNOWN_PROTO: 137,
  UNKNOWN_L3: 139,
  MISSED_TAIL_CALL: 140,
  WRITE_ERROR: 141,
  UNKNOWN_L4: 142,
  UNKNOWN_ICMP_CODE: 143,
  UNKNOWN_ICMP_TYPE: 144,
  UNKNOWN_ICMP6_CODE: 145,
  UNKNOWN_ICMP6_TYPE: 146,
  UNKNOWN_TARGET: 150,
  UNROUTABLE: 151,
  CSUM_L3: 153,
  CSUM_L4: 154,
  CT_CREATE_FAILED: 155,
  INVALID_EXTHDR: 156,
  FRAG_NOSUPPORT: 157,
  NO_SERVICE: 158,
  UNSUPP_SERVICE_PROTO: 159,
  EDT_HORIZON: 162,
  UNKNOWN_CT: 163,
  HOST_UNREACHABLE: 164,
  NO_CONFIG: 165,
  UNSUPPORTED_L2: 166,
  NO_FIB: 169,
  INVALID_IDENTITY: 171,
  UNKNOWN_SENDER: 172,
  FRAG_NOT_FOUND: 175,
  PROXY_LOOKUP_FAILED: 178,
  PROXY_SET_FAILED: 179,
  PROXY_UNKNOWN_PROTO: 180,
  POLICY_DENY: 181,
  POLICY_AUTH_REQUIRED: 189,
  TTL_EXCEEDED: 196,
  RATE_LIMITED: 198,
} as const

/** A drop reason name. */
export type DropReasonName = keyof typeof DropReason

const NAMES = new Map<number, DropReasonName>(
  (Object.entries(DropReason) as [DropReasonName, number][]).map(([k, v]) => [v, k]),
)

/** The name of a drop reason number (133 -> 'POLICY'), or undefined when unknown. */
export function dropReasonName(reason: number): DropReasonName | undefined {
  return NAMES.get(reason < 0 ? -reason : reason)
}
