/**
 * Hubble's API as facts: message fields (name, type, number, repeated) and enum values
 * transcribed from Hubble's api/v1/flow/flow.proto and api/v1/observer/observer.proto
 * (cilium/cilium), independent of packages/flows/proto. Tests build an upstream-shaped client
 * from it (protobufjs, proto field names) and check our schema against it. Only wire facts are
 * here; messages Membrane never meets (Tunnel, FileInfo, relay status events...) are left out,
 * and so are the Flow fields of those types.
 *
 * Each message is a list of `name:type=number`, `*` in front for repeated fields.
 */
import protobuf from 'protobufjs'

const MESSAGES: Record<string, string> = {
  'flow.Flow': `time:google.protobuf.Timestamp=1 uuid:string=34 verdict:Verdict=2
    drop_reason:uint32=3 auth_type:AuthType=35 ethernet:Ethernet=4 IP:IP=5 l4:Layer4=6
    source:Endpoint=8 destination:Endpoint=9 Type:FlowType=10 node_name:string=11
    *node_labels:string=37 *source_names:string=13 *destination_names:string=14 l7:Layer7=15
    reply:bool=16 event_type:CiliumEventType=19 source_service:Service=20
    destination_service:Service=21 traffic_direction:TrafficDirection=22
    policy_match_type:uint32=23 trace_observation_point:TraceObservationPoint=24
    drop_reason_desc:DropReason=25 is_reply:google.protobuf.BoolValue=26
    interface:NetworkInterface=28 proxy_port:uint32=29 trace_context:TraceContext=30
    sock_xlate_point:SocketTranslationPoint=31 socket_cookie:uint64=32 cgroup_id:uint64=33
    *egress_allowed_by:Policy=21001 *ingress_allowed_by:Policy=21002
    *egress_denied_by:Policy=21004 *ingress_denied_by:Policy=21005 *policy_log:string=21006
    Summary:string=100000`,
  'flow.Policy': `name:string=1 namespace:string=2 *labels:string=3 revision:uint64=4
    kind:string=5`,
  'flow.TraceContext': 'parent:TraceParent=1',
  'flow.TraceParent': 'trace_id:string=1',
  'flow.Layer4': 'TCP:TCP=1 UDP:UDP=2 ICMPv4:ICMPv4=3 ICMPv6:ICMPv6=4 SCTP:SCTP=5',
  'flow.Layer7': 'type:L7FlowType=1 latency_ns:uint64=2 dns:DNS=100 http:HTTP=101 kafka:Kafka=102',
  'flow.Endpoint': `ID:uint32=1 identity:uint32=2 cluster_name:string=7 namespace:string=3
    *labels:string=4 pod_name:string=5 *workloads:Workload=6`,
  'flow.Workload': 'name:string=1 kind:string=2',
  'flow.TCP': 'source_port:uint32=1 destination_port:uint32=2 flags:TCPFlags=3',
  'flow.IP': `source:string=1 source_xlated:string=5 destination:string=2 ipVersion:IPVersion=3
    encrypted:bool=4`,
  'flow.Ethernet': 'source:string=1 destination:string=2',
  'flow.TCPFlags': `FIN:bool=1 SYN:bool=2 RST:bool=3 PSH:bool=4 ACK:bool=5 URG:bool=6 ECE:bool=7
    CWR:bool=8 NS:bool=9`,
  'flow.UDP': 'source_port:uint32=1 destination_port:uint32=2',
  'flow.SCTP': 'source_port:uint32=1 destination_port:uint32=2',
  'flow.ICMPv4': 'type:uint32=1 code:uint32=2',
  'flow.ICMPv6': 'type:uint32=1 code:uint32=2',
  'flow.EventTypeFilter': 'type:int32=1 match_sub_type:bool=2 sub_type:int32=3',
  'flow.CiliumEventType': 'type:int32=1 sub_type:int32=2',
  'flow.FlowFilter': `*uuid:string=29 *source_ip:string=1 *source_ip_xlated:string=34
    *source_pod:string=2 *source_fqdn:string=7 *source_label:string=10
    *source_service:string=16 *source_workload:Workload=26 *source_cluster_name:string=37
    *destination_ip:string=3 *destination_pod:string=4 *destination_fqdn:string=8
    *destination_label:string=11 *destination_service:string=17
    *destination_workload:Workload=27 *destination_cluster_name:string=38
    *traffic_direction:TrafficDirection=30 *verdict:Verdict=5 *drop_reason_desc:DropReason=33
    *interface:NetworkInterface=35 *event_type:EventTypeFilter=6 *http_status_code:string=9
    *protocol:string=12 *source_port:string=13 *destination_port:string=14 *reply:bool=15
    *dns_query:string=18 *source_identity:uint32=19 *destination_identity:uint32=20
    *http_method:string=21 *http_path:string=22 *http_url:string=31
    *http_header:HTTPHeader=32 *tcp_flags:TCPFlags=23 *node_name:string=24
    *node_labels:string=36 *ip_version:IPVersion=25 *trace_id:string=28
    *ip_trace_id:uint64=39 *encrypted:bool=40 experimental:FlowFilter.Experimental=999`,
  'flow.FlowFilter.Experimental': '*cel_expression:string=1',
  'flow.DNS': `query:string=1 *ips:string=2 ttl:uint32=3 *cnames:string=4
    observation_source:string=5 rcode:uint32=6 *qtypes:string=7 *rrtypes:string=8`,
  'flow.HTTPHeader': 'key:string=1 value:string=2',
  'flow.HTTP': `code:uint32=1 method:string=2 url:string=3 protocol:string=4
    *headers:HTTPHeader=5`,
  'flow.Kafka': `error_code:int32=1 api_version:int32=2 api_key:string=3 correlation_id:int32=4
    topic:string=5`,
  'flow.Service': 'name:string=1 namespace:string=2',
  'flow.LostEvent':
    'source:LostEventSource=1 num_events_lost:uint64=2 cpu:google.protobuf.Int32Value=3',
  'flow.NetworkInterface': 'index:uint32=1 name:string=2',
  'flow.AgentEvent': `type:AgentEventType=1 unknown:AgentEventUnknown=100
    agent_start:TimeNotification=101 policy_update:PolicyUpdateNotification=102
    endpoint_regenerate:EndpointRegenNotification=103
    endpoint_update:EndpointUpdateNotification=104 ipcache_update:IPCacheNotification=105
    service_upsert:ServiceUpsertNotification=106 service_delete:ServiceDeleteNotification=107`,
  'flow.AgentEventUnknown': 'type:string=1 notification:string=2',
  'flow.TimeNotification': 'time:google.protobuf.Timestamp=1',
  'flow.PolicyUpdateNotification': '*labels:string=1 revision:uint64=2 rule_count:int64=3',
  'flow.EndpointRegenNotification': 'id:uint64=1 *labels:string=2 error:string=3',
  'flow.EndpointUpdateNotification': `id:uint64=1 *labels:string=2 error:string=3
    pod_name:string=4 namespace:string=5`,
  'flow.IPCacheNotification': `cidr:string=1 identity:uint32=2
    old_identity:google.protobuf.UInt32Value=3 host_ip:string=4 old_host_ip:string=5
    encrypt_key:uint32=6 namespace:string=7 pod_name:string=8`,
  'flow.ServiceUpsertNotificationAddr': 'ip:string=1 port:uint32=2',
  'flow.ServiceUpsertNotification': `id:uint32=1
    frontend_address:ServiceUpsertNotificationAddr=2
    *backend_addresses:ServiceUpsertNotificationAddr=3 type:string=4 traffic_policy:string=5
    name:string=6 namespace:string=7 ext_traffic_policy:string=8 int_traffic_policy:string=9`,
  'flow.ServiceDeleteNotification': 'id:uint32=1',
  'observer.ServerStatusRequest': '',
  'observer.ServerStatusResponse': `num_flows:uint64=1 max_flows:uint64=2 seen_flows:uint64=3
    uptime_ns:uint64=4 num_connected_nodes:google.protobuf.UInt32Value=5
    num_unavailable_nodes:google.protobuf.UInt32Value=6 *unavailable_nodes:string=7
    version:string=8 flows_rate:double=9`,
  'observer.GetFlowsRequest': `number:uint64=1 first:bool=9 follow:bool=3
    *blacklist:flow.FlowFilter=5 *whitelist:flow.FlowFilter=6
    since:google.protobuf.Timestamp=7 until:google.protobuf.Timestamp=8
    field_mask:google.protobuf.FieldMask=10 experimental:GetFlowsRequest.Experimental=999
    extensions:google.protobuf.Any=150000`,
  'observer.GetFlowsRequest.Experimental': '',
  'observer.GetFlowsResponse': `flow:flow.Flow=1 lost_events:flow.LostEvent=3
    node_name:string=1000 time:google.protobuf.Timestamp=1001`,
  'observer.GetAgentEventsRequest': `number:uint64=1 first:bool=9 follow:bool=2
    since:google.protobuf.Timestamp=7 until:google.protobuf.Timestamp=8`,
  'observer.GetAgentEventsResponse': `agent_event:flow.AgentEvent=1 node_name:string=1000
    time:google.protobuf.Timestamp=1001`,
  'observer.GetDebugEventsRequest': `number:uint64=1 first:bool=9 follow:bool=2
    since:google.protobuf.Timestamp=7 until:google.protobuf.Timestamp=8`,
  'observer.GetNodesRequest': '',
  'observer.GetNodesResponse': '*nodes:Node=1',
  'observer.Node': `name:string=1 version:string=2 address:string=3 state:NodeState=4 tls:TLS=5
    uptime_ns:uint64=6 num_flows:uint64=7 max_flows:uint64=8 seen_flows:uint64=9`,
  'observer.TLS': 'enabled:bool=1 server_name:string=2',
  'observer.GetNamespacesRequest': '',
  'observer.GetNamespacesResponse': '*namespaces:Namespace=1',
  'observer.Namespace': 'cluster:string=1 namespace:string=2',
}

/** Oneofs (so a client encodes one member only). */
const ONEOFS: Record<string, Record<string, string[]>> = {
  'flow.Layer4': { protocol: ['TCP', 'UDP', 'ICMPv4', 'ICMPv6', 'SCTP'] },
  'flow.Layer7': { record: ['dns', 'http', 'kafka'] },
  'flow.AgentEvent': {
    notification: [
      'unknown',
      'agent_start',
      'policy_update',
      'endpoint_regenerate',
      'endpoint_update',
      'ipcache_update',
      'service_upsert',
      'service_delete',
    ],
  },
  'observer.GetFlowsResponse': { response_types: ['flow', 'lost_events'] },
}

/** Enum values, `NAME=number`. */
const ENUMS: Record<string, string> = {
  'flow.FlowType': 'UNKNOWN_TYPE=0 L3_L4=1 L7=2 SOCK=3',
  'flow.AuthType': 'DISABLED=0 SPIRE=1 TEST_ALWAYS_FAIL=2',
  'flow.Verdict': `VERDICT_UNKNOWN=0 FORWARDED=1 DROPPED=2 ERROR=3 AUDIT=4 REDIRECTED=5 TRACED=6
    TRANSLATED=7`,
  'flow.TrafficDirection': 'TRAFFIC_DIRECTION_UNKNOWN=0 INGRESS=1 EGRESS=2',
  'flow.IPVersion': 'IP_NOT_USED=0 IPv4=1 IPv6=2',
  'flow.L7FlowType': 'UNKNOWN_L7_TYPE=0 REQUEST=1 RESPONSE=2 SAMPLE=3',
  'flow.LostEventSource': `UNKNOWN_LOST_EVENT_SOURCE=0 PERF_EVENT_RING_BUFFER=1
    OBSERVER_EVENTS_QUEUE=2 HUBBLE_RING_BUFFER=3`,
  'flow.TraceObservationPoint': `UNKNOWN_POINT=0 TO_PROXY=1 TO_HOST=2 TO_STACK=3 TO_OVERLAY=4
    TO_ENDPOINT=101 FROM_ENDPOINT=5 FROM_PROXY=6 FROM_HOST=7 FROM_STACK=8 FROM_OVERLAY=9
    FROM_NETWORK=10 TO_NETWORK=11 FROM_CRYPTO=12 TO_CRYPTO=13`,
  'flow.SocketTranslationPoint': `SOCK_XLATE_POINT_UNKNOWN=0 SOCK_XLATE_POINT_PRE_DIRECTION_FWD=1
    SOCK_XLATE_POINT_POST_DIRECTION_FWD=2 SOCK_XLATE_POINT_PRE_DIRECTION_REV=3
    SOCK_XLATE_POINT_POST_DIRECTION_REV=4`,
  'flow.AgentEventType': `AGENT_EVENT_UNKNOWN=0 AGENT_STARTED=2 POLICY_UPDATED=3
    POLICY_DELETED=4 ENDPOINT_REGENERATE_SUCCESS=5 ENDPOINT_REGENERATE_FAILURE=6
    ENDPOINT_CREATED=7 ENDPOINT_DELETED=8 IPCACHE_UPSERTED=9 IPCACHE_DELETED=10
    SERVICE_UPSERTED=11 SERVICE_DELETED=12`,
  'flow.DropReason': `DROP_REASON_UNKNOWN=0 INVALID_SOURCE_MAC=130 INVALID_DESTINATION_MAC=131
    INVALID_SOURCE_IP=132 POLICY_DENIED=133 INVALID_PACKET_DROPPED=134
    CT_TRUNCATED_OR_INVALID_HEADER=135 CT_MISSING_TCP_ACK_FLAG=136 CT_UNKNOWN_L4_PROTOCOL=137
    CT_CANNOT_CREATE_ENTRY_FROM_PACKET=138 UNSUPPORTED_L3_PROTOCOL=139 MISSED_TAIL_CALL=140
    ERROR_WRITING_TO_PACKET=141 UNKNOWN_L4_PROTOCOL=142 UNKNOWN_ICMPV4_CODE=143
    UNKNOWN_ICMPV4_TYPE=144 UNKNOWN_ICMPV6_CODE=145 UNKNOWN_ICMPV6_TYPE=146
    ERROR_RETRIEVING_TUNNEL_KEY=147 ERROR_RETRIEVING_TUNNEL_OPTIONS=148
    INVALID_GENEVE_OPTION=149 UNKNOWN_L3_TARGET_ADDRESS=150 STALE_OR_UNROUTABLE_IP=151
    NO_MATCHING_LOCAL_CONTAINER_FOUND=152 ERROR_WHILE_CORRECTING_L3_CHECKSUM=153
    ERROR_WHILE_CORRECTING_L4_CHECKSUM=154 CT_MAP_INSERTION_FAILED=155
    INVALID_IPV6_EXTENSION_HEADER=156 IP_FRAGMENTATION_NOT_SUPPORTED=157
    SERVICE_BACKEND_NOT_FOUND=158 NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT=160
    FAILED_TO_INSERT_INTO_PROXYMAP=161 REACHED_EDT_RATE_LIMITING_DROP_HORIZON=162
    UNKNOWN_CONNECTION_TRACKING_STATE=163 LOCAL_HOST_IS_UNREACHABLE=164
    NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION=165 UNSUPPORTED_L2_PROTOCOL=166
    NO_MAPPING_FOR_NAT_MASQUERADE=167 UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE=168
    FIB_LOOKUP_FAILED=169 ENCAPSULATION_TRAFFIC_IS_PROHIBITED=170 INVALID_IDENTITY=171
    UNKNOWN_SENDER=172 NAT_NOT_NEEDED=173 IS_A_CLUSTERIP=174
    FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND=175 FORBIDDEN_ICMPV6_MESSAGE=176
    DENIED_BY_LB_SRC_RANGE_CHECK=177 SOCKET_LOOKUP_FAILED=178 SOCKET_ASSIGN_FAILED=179
    PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL=180 POLICY_DENY=181 VLAN_FILTERED=182
    INVALID_VNI=183 INVALID_TC_BUFFER=184 NO_SID=185 MISSING_SRV6_STATE=186 NAT46=187 NAT64=188
    AUTH_REQUIRED=189 CT_NO_MAP_FOUND=190 SNAT_NO_MAP_FOUND=191 INVALID_CLUSTER_ID=192
    UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP=193 NO_EGRESS_GATEWAY=194 UNENCRYPTED_TRAFFIC=195
    TTL_EXCEEDED=196 NO_NODE_ID=197 DROP_RATE_LIMITED=198 IGMP_HANDLED=199 IGMP_SUBSCRIBED=200
    MULTICAST_HANDLED=201 DROP_HOST_NOT_READY=202 DROP_EP_NOT_READY=203 DROP_NO_EGRESS_IP=204
    DROP_PUNT_PROXY=205 DROP_NO_DEVICE=206`,
  'observer.NodeState': `UNKNOWN_NODE_STATE=0 NODE_CONNECTED=1 NODE_UNAVAILABLE=2 NODE_GONE=3
    NODE_ERROR=4`,
}

/** One field of the fact table. */
export interface FieldFact {
  name: string
  type: string
  id: number
  repeated: boolean
}

/** Fields of every transcribed message, by full name ('flow.FlowFilter'). */
export const HUBBLE_FIELDS: Record<string, FieldFact[]> = Object.fromEntries(
  Object.entries(MESSAGES).map(([msg, spec]) => [
    msg,
    spec
      .split(/\s+/)
      .filter(Boolean)
      .map((tok) => {
        const m = /^(\*?)(\w+):([\w.]+)=(\d+)$/.exec(tok)
        if (!m) throw new Error(`bad fact '${tok}' in ${msg}`)
        return { name: m[2] as string, type: m[3] as string, id: Number(m[4]), repeated: !!m[1] }
      }),
  ]),
)

/** Enum values by full name ('flow.DropReason'). */
export const HUBBLE_ENUMS: Record<string, Record<string, number>> = Object.fromEntries(
  Object.entries(ENUMS).map(([e, spec]) => [
    e,
    Object.fromEntries(
      spec
        .split(/\s+/)
        .filter(Boolean)
        .map((tok) => {
          const [k, v] = tok.split('=')
          return [k as string, Number(v)]
        }),
    ),
  ]),
)

/** The upstream Observer service methods (name, request, response, server streaming). */
const HUBBLE_METHODS = {
  GetFlows: ['GetFlowsRequest', 'GetFlowsResponse', true],
  GetAgentEvents: ['GetAgentEventsRequest', 'GetAgentEventsResponse', true],
  GetDebugEvents: ['GetDebugEventsRequest', 'GetAgentEventsResponse', true],
  GetNodes: ['GetNodesRequest', 'GetNodesResponse', false],
  GetNamespaces: ['GetNamespacesRequest', 'GetNamespacesResponse', false],
  ServerStatus: ['ServerStatusRequest', 'ServerStatusResponse', false],
} as const

/**
 * A protobufjs Root built from the facts alone (proto field names kept: `source_pod`), with the
 * google.protobuf well-known types. GetDebugEvents' response is stood in for by
 * GetAgentEventsResponse: DebugEvent is not transcribed, and the call is only expected to fail.
 */
export function hubbleRootFromFacts(): protobuf.Root {
  const root = new protobuf.Root()
  // well-known types (Timestamp, wrappers, FieldMask, Any) from protobufjs' bundled definitions
  for (const wk of ['timestamp', 'wrappers', 'field_mask', 'any'] as const)
    root.addJSON(protobuf.common.get(`google/protobuf/${wk}.proto`)?.nested ?? {})
  const ns = (pkg: string) => root.lookup(pkg) ?? root.define(pkg)
  for (const [full, values] of Object.entries(HUBBLE_ENUMS)) {
    const [pkg, name] = full.split('.') as [string, string]
    ;(ns(pkg) as protobuf.Namespace).add(new protobuf.Enum(name, values))
  }
  // parents before nested messages (flow.FlowFilter before flow.FlowFilter.Experimental)
  const names = Object.keys(HUBBLE_FIELDS).sort((a, b) => a.split('.').length - b.split('.').length)
  for (const full of names) {
    const parts = full.split('.')
    const parent = root.lookup(parts.slice(0, -1).join('.')) ?? ns(parts[0] as string)
    const t = new protobuf.Type(parts[parts.length - 1] as string)
    for (const f of HUBBLE_FIELDS[full] ?? [])
      t.add(new protobuf.Field(f.name, f.id, f.type, f.repeated ? 'repeated' : undefined))
    for (const [oneof, members] of Object.entries(ONEOFS[full] ?? {}))
      t.add(new protobuf.OneOf(oneof, members))
    ;(parent as protobuf.Namespace).add(t)
  }
  const svc = new protobuf.Service('Observer')
  for (const [m, [req, res, stream]] of Object.entries(HUBBLE_METHODS))
    svc.add(new protobuf.Method(m, 'rpc', req, res, false, stream))
  ;(ns('observer') as protobuf.Namespace).add(svc)
  root.resolveAll()
  return root
}
