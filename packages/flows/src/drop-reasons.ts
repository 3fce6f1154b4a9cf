/**
 * Drop reasons by Cilium's numbers (from @membrane/types, derived from bpf-src/lib/drop_reasons.h):
 * the name of Hubble's DropReason enum value and a one-line description for people.
 */
import { DropReason, type DropReasonName } from '@membrane/types'

interface ReasonInfo {
  /** Hubble's DropReason enum name. */
  name: string
  /** Human-readable description. */
  description: string
}

// Hubble's name and description of every reason the datapath has (keyed by the header's name:
// a reason added to bpf-src/lib/drop_reasons.h without an entry here fails the type check).
const BY_NAME: Record<DropReasonName, ReasonInfo> = {
  INVALID_SIP: { name: 'INVALID_SOURCE_IP', description: 'Invalid source ip' },
  POLICY: { name: 'POLICY_DENIED', description: 'Policy denied' },
  INVALID: { name: 'INVALID_PACKET_DROPPED', description: 'Invalid packet' },
  CT_INVALID_HDR: {
    name: 'CT_TRUNCATED_OR_INVALID_HEADER',
    description: 'CT: Truncated or invalid header',
  },
  FRAG_NEEDED: { name: 'CT_MISSING_TCP_ACK_FLAG', description: 'CT: Missing TCP ACK flag' },
  CT_UNKNOWN_PROTO: { name: 'CT_UNKNOWN_L4_PROTOCOL', description: 'CT: Unknown L4 protocol' },
  UNKNOWN_L3: { name: 'UNSUPPORTED_L3_PROTOCOL', description: 'Unsupported L3 protocol' },
  MISSED_TAIL_CALL: { name: 'MISSED_TAIL_CALL', description: 'Missed tail call' },
  WRITE_ERROR: { name: 'ERROR_WRITING_TO_PACKET', description: 'Error writing to packet' },
  UNKNOWN_L4: { name: 'UNKNOWN_L4_PROTOCOL', description: 'Unknown L4 protocol' },
  UNKNOWN_ICMP_CODE: { name: 'UNKNOWN_ICMPV4_CODE', description: 'Unknown ICMPv4 code' },
  UNKNOWN_ICMP_TYPE: { name: 'UNKNOWN_ICMPV4_TYPE', description: 'Unknown ICMPv4 type' },
  UNKNOWN_ICMP6_CODE: { name: 'UNKNOWN_ICMPV6_CODE', description: 'Unknown ICMPv6 code' },
  UNKNOWN_ICMP6_TYPE: { name: 'UNKNOWN_ICMPV6_TYPE', description: 'Unknown ICMPv6 type' },
  NO_TUNNEL_KEY: {
    name: 'ERROR_RETRIEVING_TUNNEL_KEY',
    description: 'Error retrieving tunnel key',
  },
  UNKNOWN_TARGET: { name: 'UNKNOWN_L3_TARGET_ADDRESS', description: 'Unknown L3 target address' },
  UNROUTABLE: { name: 'STALE_OR_UNROUTABLE_IP', description: 'Stale or unroutable IP' },
  CSUM_L3: {
    name: 'ERROR_WHILE_CORRECTING_L3_CHECKSUM',
    description: 'Error while correcting L3 checksum',
  },
  CSUM_L4: {
    name: 'ERROR_WHILE_CORRECTING_L4_CHECKSUM',
    description: 'Error while correcting L4 checksum',
  },
  CT_CREATE_FAILED: { name: 'CT_MAP_INSERTION_FAILED', description: 'CT: Map insertion failed' },
  INVALID_EXTHDR: {
    name: 'INVALID_IPV6_EXTENSION_HEADER',
    description: 'Invalid IPv6 extension header',
  },
  FRAG_NOSUPPORT: {
    name: 'IP_FRAGMENTATION_NOT_SUPPORTED',
    description: 'IP fragmentation not supported',
  },
  NO_SERVICE: { name: 'SERVICE_BACKEND_NOT_FOUND', description: 'Service backend not found' },
  NO_TUNNEL_ENDPOINT: {
    name: 'NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT',
    description: 'No tunnel or encapsulation endpoint',
  },
  // Not in Hubble's DropReason enum (it skips 159): our own name; the number is Cilium's.
  UNSUPP_SERVICE_PROTO: {
    name: 'UNSUPPORTED_SERVICE_PROTOCOL',
    description: 'Service does not support this protocol',
  },
  EDT_HORIZON: {
    name: 'REACHED_EDT_RATE_LIMITING_DROP_HORIZON',
    description: 'Departure time beyond the bandwidth drop horizon',
  },
  UNKNOWN_CT: {
    name: 'UNKNOWN_CONNECTION_TRACKING_STATE',
    description: 'Unknown connection tracking state',
  },
  HOST_UNREACHABLE: { name: 'LOCAL_HOST_IS_UNREACHABLE', description: 'Local host is unreachable' },
  NO_CONFIG: {
    name: 'NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION',
    description: 'No configuration available to perform policy decision',
  },
  UNSUPPORTED_L2: { name: 'UNSUPPORTED_L2_PROTOCOL', description: 'Unsupported L2 protocol' },
  NO_FIB: { name: 'FIB_LOOKUP_FAILED', description: 'Route lookup failed' },
  INVALID_IDENTITY: { name: 'INVALID_IDENTITY', description: 'Invalid security identity' },
  UNKNOWN_SENDER: { name: 'UNKNOWN_SENDER', description: 'Sender is not a known endpoint' },
  FRAG_NOT_FOUND: {
    name: 'FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND',
    description: 'First logical datagram fragment not found',
  },
  PROXY_LOOKUP_FAILED: { name: 'SOCKET_LOOKUP_FAILED', description: 'Proxy socket lookup failed' },
  PROXY_SET_FAILED: { name: 'SOCKET_ASSIGN_FAILED', description: 'Proxy socket assignment failed' },
  PROXY_UNKNOWN_PROTO: {
    name: 'PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL',
    description: 'Proxy redirection not supported for this protocol',
  },
  POLICY_DENY: { name: 'POLICY_DENY', description: 'Policy denied by denylist' },
  POLICY_AUTH_REQUIRED: { name: 'AUTH_REQUIRED', description: 'Authentication required' },
  TTL_EXCEEDED: { name: 'TTL_EXCEEDED', description: 'TTL exceeded' },
  RATE_LIMITED: {
    name: 'DROP_RATE_LIMITED',
    description: 'Rate limited by the bandwidth token bucket',
  },
}

// Reasons of Hubble's enum that the datapath never emits, kept so that every value Hubble names
// reads by its name (flow.proto's DropReason enum lists the same names: tested).
const HUBBLE_ONLY: Record<number, ReasonInfo> = {
  130: { name: 'INVALID_SOURCE_MAC', description: 'Invalid source mac' },
  131: { name: 'INVALID_DESTINATION_MAC', description: 'Invalid destination mac' },
  138: {
    name: 'CT_CANNOT_CREATE_ENTRY_FROM_PACKET',
    description: "CT: Can't create entry from packet",
  },
  148: { name: 'ERROR_RETRIEVING_TUNNEL_OPTIONS', description: 'Error retrieving tunnel options' },
  149: { name: 'INVALID_GENEVE_OPTION', description: 'Invalid Geneve option' },
  152: {
    name: 'NO_MATCHING_LOCAL_CONTAINER_FOUND',
    description: 'No matching local container found',
  },
  161: { name: 'FAILED_TO_INSERT_INTO_PROXYMAP', description: 'Failed to insert into proxy map' },
  167: { name: 'NO_MAPPING_FOR_NAT_MASQUERADE', description: 'No mapping for NAT masquerade' },
  168: {
    name: 'UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE',
    description: 'Unsupported protocol for NAT masquerade',
  },
  170: {
    name: 'ENCAPSULATION_TRAFFIC_IS_PROHIBITED',
    description: 'Encapsulation traffic is prohibited',
  },
  173: { name: 'NAT_NOT_NEEDED', description: 'NAT not needed' },
  174: { name: 'IS_A_CLUSTERIP', description: 'Traffic to a ClusterIP from outside the cluster' },
  176: { name: 'FORBIDDEN_ICMPV6_MESSAGE', description: 'Forbidden ICMPv6 message' },
  177: {
    name: 'DENIED_BY_LB_SRC_RANGE_CHECK',
    description: 'Denied by the load balancer source range check',
  },
  182: { name: 'VLAN_FILTERED', description: 'VLAN traffic filtered' },
  183: { name: 'INVALID_VNI', description: 'Invalid VXLAN network identifier' },
  184: { name: 'INVALID_TC_BUFFER', description: 'Invalid tc buffer' },
  185: { name: 'NO_SID', description: 'No SRv6 segment identifier' },
  186: { name: 'MISSING_SRV6_STATE', description: 'Missing SRv6 state' },
  187: { name: 'NAT46', description: 'NAT 4 to 6 failed' },
  188: { name: 'NAT64', description: 'NAT 6 to 4 failed' },
  190: { name: 'CT_NO_MAP_FOUND', description: 'Connection tracking map not found' },
  191: { name: 'SNAT_NO_MAP_FOUND', description: 'SNAT map not found' },
  192: { name: 'INVALID_CLUSTER_ID', description: 'Invalid cluster id' },
  193: {
    name: 'UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP',
    description: 'Unsupported protocol for DSR encapsulation',
  },
  194: { name: 'NO_EGRESS_GATEWAY', description: 'No egress gateway' },
  195: { name: 'UNENCRYPTED_TRAFFIC', description: 'Traffic is not encrypted' },
  197: { name: 'NO_NODE_ID', description: 'No node id' },
  199: { name: 'IGMP_HANDLED', description: 'IGMP handled' },
  200: { name: 'IGMP_SUBSCRIBED', description: 'IGMP subscribed' },
  201: { name: 'MULTICAST_HANDLED', description: 'Multicast handled' },
  202: { name: 'DROP_HOST_NOT_READY', description: 'Host datapath not ready' },
  203: { name: 'DROP_EP_NOT_READY', description: 'Endpoint policy program not ready' },
  204: { name: 'DROP_NO_EGRESS_IP', description: 'No egress IP' },
  205: { name: 'DROP_PUNT_PROXY', description: 'Punted to the proxy' },
  206: { name: 'DROP_NO_DEVICE', description: 'No device' },
}

const REASONS: Record<number, ReasonInfo> = { ...HUBBLE_ONLY }
for (const [name, info] of Object.entries(BY_NAME))
  REASONS[DropReason[name as DropReasonName]] = info

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
