/**
 * Drop reasons by Cilium's numbers (bpf-src/lib/drop_reasons.h carries them negated): the name of
 * Hubble's DropReason enum value and a one-line description for people.
 */

interface ReasonInfo {
  /** Hubble's DropReason enum name. */
  name: string
  /** Human-readable description. */
  description: string
}

const REASONS: Record<number, ReasonInfo> = {
  130: { name: 'INVALID_SOURCE_MAC', description: 'Invalid source mac' },
  131: { name: 'INVALID_DESTINATION_MAC', description: 'Invalid destination mac' },
  132: { name: 'INVALID_SOURCE_IP', description: 'Invalid source ip' },
  133: { name: 'POLICY_DENIED', description: 'Policy denied' },
  134: { name: 'INVALID_PACKET_DROPPED', description: 'Invalid packet' },
  135: { name: 'CT_TRUNCATED_OR_INVALID_HEADER', description: 'CT: Truncated or invalid header' },
  136: { name: 'CT_MISSING_TCP_ACK_FLAG', description: 'CT: Missing TCP ACK flag' },
  137: { name: 'CT_UNKNOWN_L4_PROTOCOL', description: 'CT: Unknown L4 protocol' },
  138: {
    name: 'CT_CANNOT_CREATE_ENTRY_FROM_PACKET',
    description: "CT: Can't create entry from packet",
  },
  139: { name: 'UNSUPPORTED_L3_PROTOCOL', description: 'Unsupported L3 protocol' },
  140: { name: 'MISSED_TAIL_CALL', description: 'Missed tail call' },
  141: { name: 'ERROR_WRITING_TO_PACKET', description: 'Error writing to packet' },
  142: { name: 'UNKNOWN_L4_PROTOCOL', description: 'Unknown L4 protocol' },
  143: { name: 'UNKNOWN_ICMPV4_CODE', description: 'Unknown ICMPv4 code' },
  144: { name: 'UNKNOWN_ICMPV4_TYPE', description: 'Unknown ICMPv4 type' },
  145: { name: 'UNKNOWN_ICMPV6_CODE', description: 'Unknown ICMPv6 code' },
  146: { name: 'UNKNOWN_ICMPV6_TYPE', description: 'Unknown ICMPv6 type' },
  150: { name: 'UNKNOWN_L3_TARGET_ADDRESS', description: 'Unknown L3 target address' },
  151: { name: 'STALE_OR_UNROUTABLE_IP', description: 'Stale or unroutable IP' },
  153: {
    name: 'ERROR_WHILE_CORRECTING_L3_CHECKSUM',
    description: 'Error while correcting L3 checksum',
  },
  154: {
    name: 'ERROR_WHILE_CORRECTING_L4_CHECKSUM',
    description: 'Error while correcting L4 checksum',
  },
  155: { name: 'CT_MAP_INSERTION_FAILED', description: 'CT: Map insertion failed' },
  156: { name: 'INVALID_IPV6_EXTENSION_HEADER', description: 'Invalid IPv6 extension header' },
  157: { name: 'IP_FRAGMENTATION_NOT_SUPPORTED', description: 'IP fragmentation not supported' },
  158: { name: 'SERVICE_BACKEND_NOT_FOUND', description: 'Service backend not found' },
  // Not in Hubble's DropReason enum (it skips 159): our own name; the number is Cilium's.
  159: {
    name: 'UNSUPPORTED_SERVICE_PROTOCOL',
    description: 'Service does not support this protocol',
  },
  162: {
    name: 'REACHED_EDT_RATE_LIMITING_DROP_HORIZON',
    description: 'Departure time beyond the bandwidth drop horizon',
  },
  163: {
    name: 'UNKNOWN_CONNECTION_TRACKING_STATE',
    description: 'Unknown connection tracking state',
  },
  164: { name: 'LOCAL_HOST_IS_UNREACHABLE', description: 'Local host is unreachable' },
  165: {
    name: 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION',
    description: 'No configuration available to perform policy decision',
  },
  166: { name: 'UNSUPPORTED_L2_PROTOCOL', description: 'Unsupported L2 protocol' },
  169: { name: 'FIB_LOOKUP_FAILED', description: 'Route lookup failed' },
  171: { name: 'INVALID_IDENTITY', description: 'Invalid security identity' },
  172: { name: 'UNKNOWN_SENDER', description: 'Sender is not a known endpoint' },
  175: {
    name: 'FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND',
    description: 'First logical datagram fragment not found',
  },
  178: { name: 'SOCKET_LOOKUP_FAILED', description: 'Proxy socket lookup failed' },
  179: { name: 'SOCKET_ASSIGN_FAILED', description: 'Proxy socket assignment failed' },
  180: {
    name: 'PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL',
    description: 'Proxy redirection not supported for this protocol',
  },
  181: { name: 'POLICY_DENY', description: 'Policy denied by denylist' },
  189: { name: 'AUTH_REQUIRED', description: 'Authentication required' },
  196: { name: 'TTL_EXCEEDED', description: 'TTL exceeded' },
  198: { name: 'RATE_LIMITED', description: 'Rate limited by the bandwidth token bucket' },
}

/** Hubble's DropReason enum name for a drop reason number (e.g. 133 -> 'POLICY_DENIED'). */
export function dropReasonName(reason: number): string {
  return REASONS[reason]?.name ?? (reason === 0 ? 'DROP_REASON_UNKNOWN' : `DROP_REASON_${reason}`)
}

/** Description of a drop reason number (e.g. 181 -> 'Policy denied by denylist'). */
export function dropReasonDescription(reason: number): string {
  return REASONS[reason]?.description ?? `Unknown drop reason ${reason}`
}

/** Drop reason number for a Hubble enum name or a number string ('POLICY_DENIED' -> 133). */
export function dropReasonFromName(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name)
  for (const [n, info] of Object.entries(REASONS)) if (info.name === name) return Number(n)
  return undefined
}

/** Every drop reason number that has a name, ascending. */
export function knownDropReasons(): number[] {
  return Object.keys(REASONS)
    .map(Number)
    .sort((a, b) => a - b)
}
