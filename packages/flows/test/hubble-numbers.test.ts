import { describe, expect, it } from 'vitest'
import { protoRoot } from '../src/proto'

// Field and enum numbers transcribed from Hubble's api/v1/flow/flow.proto and
// api/v1/observer/observer.proto (cilium/cilium). Numbers are wire facts; the .proto text is ours.
const HUBBLE_FIELDS: Record<string, Record<string, number>> = {
  'flow.Flow': {
    time: 1,
    uuid: 34,
    verdict: 2,
    drop_reason: 3,
    ethernet: 4,
    IP: 5,
    l4: 6,
    source: 8,
    destination: 9,
    Type: 10,
    node_name: 11,
    source_names: 13,
    destination_names: 14,
    l7: 15,
    event_type: 19,
    source_service: 20,
    destination_service: 21,
    traffic_direction: 22,
    policy_match_type: 23,
    trace_observation_point: 24,
    drop_reason_desc: 25,
    is_reply: 26,
    interface: 28,
    proxy_port: 29,
    sock_xlate_point: 31,
    socket_cookie: 32,
    egress_allowed_by: 21001,
    ingress_allowed_by: 21002,
    egress_denied_by: 21004,
    ingress_denied_by: 21005,
  },
  'flow.Policy': { name: 1, namespace: 2, labels: 3, revision: 4, kind: 5 },
  'flow.Layer4': { TCP: 1, UDP: 2, ICMPv4: 3, ICMPv6: 4, SCTP: 5 },
  'flow.Layer7': { type: 1, latency_ns: 2, dns: 100, http: 101, kafka: 102 },
  'flow.Endpoint': { ID: 1, identity: 2, namespace: 3, labels: 4, pod_name: 5, workloads: 6 },
  'flow.Workload': { name: 1, kind: 2 },
  'flow.TCP': { source_port: 1, destination_port: 2, flags: 3 },
  'flow.IP': { source: 1, destination: 2, ipVersion: 3, encrypted: 4 },
  'flow.Ethernet': { source: 1, destination: 2 },
  'flow.TCPFlags': { FIN: 1, SYN: 2, RST: 3, PSH: 4, ACK: 5, URG: 6, ECE: 7, CWR: 8, NS: 9 },
  'flow.UDP': { source_port: 1, destination_port: 2 },
  'flow.SCTP': { source_port: 1, destination_port: 2 },
  'flow.ICMPv4': { type: 1, code: 2 },
  'flow.ICMPv6': { type: 1, code: 2 },
  'flow.EventTypeFilter': { type: 1, match_sub_type: 2, sub_type: 3 },
  'flow.CiliumEventType': { type: 1, sub_type: 2 },
  'flow.FlowFilter': {
    uuid: 29,
    source_ip: 1,
    source_pod: 2,
    source_fqdn: 7,
    source_label: 10,
    source_service: 16,
    destination_ip: 3,
    destination_pod: 4,
    destination_fqdn: 8,
    destination_label: 11,
    destination_service: 17,
    traffic_direction: 30,
    verdict: 5,
    event_type: 6,
    http_status_code: 9,
    protocol: 12,
    source_port: 13,
    destination_port: 14,
    reply: 15,
    dns_query: 18,
    source_identity: 19,
    destination_identity: 20,
    http_method: 21,
    http_path: 22,
    tcp_flags: 23,
    node_name: 24,
    ip_version: 25,
  },
  'flow.DNS': {
    query: 1,
    ips: 2,
    ttl: 3,
    cnames: 4,
    observation_source: 5,
    rcode: 6,
    qtypes: 7,
    rrtypes: 8,
  },
  'flow.HTTPHeader': { key: 1, value: 2 },
  'flow.HTTP': { code: 1, method: 2, url: 3, protocol: 4, headers: 5 },
  'flow.Kafka': { error_code: 1, api_version: 2, api_key: 3, correlation_id: 4, topic: 5 },
  'flow.Service': { name: 1, namespace: 2 },
  'flow.LostEvent': { source: 1, num_events_lost: 2, cpu: 3 },
  'flow.NetworkInterface': { index: 1, name: 2 },
  'observer.ServerStatusResponse': {
    num_flows: 1,
    max_flows: 2,
    seen_flows: 3,
    uptime_ns: 4,
    num_connected_nodes: 5,
    num_unavailable_nodes: 6,
    unavailable_nodes: 7,
    version: 8,
  },
  'observer.GetFlowsRequest': {
    number: 1,
    first: 9,
    follow: 3,
    blacklist: 5,
    whitelist: 6,
    since: 7,
    until: 8,
  },
  'observer.GetFlowsResponse': { flow: 1, lost_events: 3, node_name: 1000, time: 1001 },
  'observer.GetNodesResponse': { nodes: 1 },
  'observer.Node': {
    name: 1,
    version: 2,
    address: 3,
    state: 4,
    tls: 5,
    uptime_ns: 6,
    num_flows: 7,
    max_flows: 8,
    seen_flows: 9,
  },
  'observer.TLS': { enabled: 1, server_name: 2 },
}

const HUBBLE_ENUMS: Record<string, Record<string, number>> = {
  'flow.FlowType': { UNKNOWN_TYPE: 0, L3_L4: 1, L7: 2, SOCK: 3 },
  'flow.Verdict': {
    VERDICT_UNKNOWN: 0,
    FORWARDED: 1,
    DROPPED: 2,
    ERROR: 3,
    AUDIT: 4,
    REDIRECTED: 5,
    TRACED: 6,
    TRANSLATED: 7,
  },
  'flow.TrafficDirection': { TRAFFIC_DIRECTION_UNKNOWN: 0, INGRESS: 1, EGRESS: 2 },
  'flow.IPVersion': { IP_NOT_USED: 0, IPv4: 1, IPv6: 2 },
  'flow.L7FlowType': { UNKNOWN_L7_TYPE: 0, REQUEST: 1, RESPONSE: 2, SAMPLE: 3 },
  'flow.LostEventSource': {
    UNKNOWN_LOST_EVENT_SOURCE: 0,
    PERF_EVENT_RING_BUFFER: 1,
    OBSERVER_EVENTS_QUEUE: 2,
    HUBBLE_RING_BUFFER: 3,
  },
  'flow.TraceObservationPoint': {
    UNKNOWN_POINT: 0,
    TO_PROXY: 1,
    TO_HOST: 2,
    TO_STACK: 3,
    TO_OVERLAY: 4,
    TO_ENDPOINT: 101,
    FROM_ENDPOINT: 5,
    FROM_PROXY: 6,
    FROM_HOST: 7,
    FROM_STACK: 8,
    FROM_OVERLAY: 9,
    FROM_NETWORK: 10,
    TO_NETWORK: 11,
  },
  'flow.SocketTranslationPoint': {
    SOCK_XLATE_POINT_UNKNOWN: 0,
    SOCK_XLATE_POINT_PRE_DIRECTION_FWD: 1,
    SOCK_XLATE_POINT_POST_DIRECTION_FWD: 2,
    SOCK_XLATE_POINT_PRE_DIRECTION_REV: 3,
    SOCK_XLATE_POINT_POST_DIRECTION_REV: 4,
  },
  'flow.DropReason': {
    DROP_REASON_UNKNOWN: 0,
    INVALID_SOURCE_IP: 132,
    POLICY_DENIED: 133,
    INVALID_PACKET_DROPPED: 134,
    CT_TRUNCATED_OR_INVALID_HEADER: 135,
    UNSUPPORTED_L3_PROTOCOL: 139,
    MISSED_TAIL_CALL: 140,
    UNKNOWN_L4_PROTOCOL: 142,
    STALE_OR_UNROUTABLE_IP: 151,
    SERVICE_BACKEND_NOT_FOUND: 158,
    REACHED_EDT_RATE_LIMITING_DROP_HORIZON: 162,
    NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION: 165,
    FIB_LOOKUP_FAILED: 169,
    INVALID_IDENTITY: 171,
    UNKNOWN_SENDER: 172,
    POLICY_DENY: 181,
    AUTH_REQUIRED: 189,
    TTL_EXCEEDED: 196,
  },
}

// protobufjs camel-cases names; map them back (flow.IP spells its field `ipVersion` in the .proto).
const snake = (message: string, camel: string) =>
  message === 'flow.IP' && camel === 'ipVersion'
    ? camel
    : camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()

describe("our .proto agrees with Hubble's numbers", () => {
  const root = protoRoot()
  it.each(Object.entries(HUBBLE_FIELDS))('%s field numbers', (name, fields) => {
    const t = root.lookupType(name)
    const ours = Object.fromEntries(
      Object.values(t.fields).map((f) => [
        /^[A-Z]/.test(f.name) ? f.name : snake(name, f.name),
        f.id,
      ]),
    )
    // every field we declare exists in Hubble with the same number, and vice versa for this table
    expect(ours).toEqual(fields)
  })

  it.each(Object.entries(HUBBLE_ENUMS))('%s enum numbers', (name, values) => {
    const e = root.lookupEnum(name)
    for (const [k, v] of Object.entries(values)) expect({ [k]: e.values[k] }).toEqual({ [k]: v })
  })
})
