import type { L7Dns, L7Http, L7Kafka } from '@membrane/types'
/**
 * The Flow record in memory. Field names are the protobufjs (camelCase) names of Hubble's
 * flow.proto fields, so a Flow encodes with our .proto as-is and its JSON reads like Hubble's.
 * Enum values are numbers; see the `as const` maps below.
 */

/** Hubble's Verdict numbers. */
export const Verdict = {
  VERDICT_UNKNOWN: 0,
  FORWARDED: 1,
  DROPPED: 2,
  ERROR: 3,
  AUDIT: 4,
  REDIRECTED: 5,
  TRACED: 6,
  TRANSLATED: 7,
} as const
export type Verdict = (typeof Verdict)[keyof typeof Verdict]

/** Hubble's FlowType numbers. */
export const FlowType = { UNKNOWN_TYPE: 0, L3_L4: 1, L7: 2, SOCK: 3 } as const
export type FlowType = (typeof FlowType)[keyof typeof FlowType]

/** Hubble's TrafficDirection numbers (the datapath uses the same). */
export const TrafficDirection = { TRAFFIC_DIRECTION_UNKNOWN: 0, INGRESS: 1, EGRESS: 2 } as const
export type TrafficDirection = (typeof TrafficDirection)[keyof typeof TrafficDirection]

/** Hubble's TraceObservationPoint numbers. */
export const TraceObservationPoint = {
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
  FROM_CRYPTO: 12,
  TO_CRYPTO: 13,
} as const
export type TraceObservationPoint =
  (typeof TraceObservationPoint)[keyof typeof TraceObservationPoint]

/** Hubble's IPVersion numbers. */
export const IPVersion = { IP_NOT_USED: 0, IPv4: 1, IPv6: 2 } as const
export type IPVersion = (typeof IPVersion)[keyof typeof IPVersion]

/** Hubble's L7FlowType numbers. */
export const L7FlowType = { UNKNOWN_L7_TYPE: 0, REQUEST: 1, RESPONSE: 2, SAMPLE: 3 } as const
export type L7FlowType = (typeof L7FlowType)[keyof typeof L7FlowType]

/** Hubble's LostEventSource numbers. */
export const LostEventSource = {
  UNKNOWN_LOST_EVENT_SOURCE: 0,
  /** The datapath ring buffer was full (mb_events_lost). */
  PERF_EVENT_RING_BUFFER: 1,
  /** The observer's intake was over its limit. */
  OBSERVER_EVENTS_QUEUE: 2,
  /** The flow ring overwrote flows before this reader got to them. */
  HUBBLE_RING_BUFFER: 3,
} as const
export type LostEventSource = (typeof LostEventSource)[keyof typeof LostEventSource]

/** Hubble's SocketTranslationPoint numbers. */
export const SocketTranslationPoint = {
  SOCK_XLATE_POINT_UNKNOWN: 0,
  SOCK_XLATE_POINT_PRE_DIRECTION_FWD: 1,
  SOCK_XLATE_POINT_POST_DIRECTION_FWD: 2,
  SOCK_XLATE_POINT_PRE_DIRECTION_REV: 3,
  SOCK_XLATE_POINT_POST_DIRECTION_REV: 4,
} as const

/** google.protobuf.Timestamp. */
export interface Timestamp {
  seconds: number
  nanos: number
}

export interface Endpoint {
  ID?: number
  identity?: number
  namespace?: string
  /** `source:key=value` strings. */
  labels?: string[]
  podName?: string
  workloads?: { name: string; kind: string }[]
  clusterName?: string
}

export interface TCPFlags {
  FIN?: boolean
  SYN?: boolean
  RST?: boolean
  PSH?: boolean
  ACK?: boolean
  URG?: boolean
  ECE?: boolean
  CWR?: boolean
  NS?: boolean
}

export interface Ports {
  sourcePort: number
  destinationPort: number
}

export interface Layer4 {
  TCP?: Ports & { flags?: TCPFlags }
  UDP?: Ports
  ICMPv4?: { type: number; code: number }
  ICMPv6?: { type: number; code: number }
  SCTP?: Ports
}

/** Hubble's `HTTP` message (the shape is owned by @membrane/types). */
export type HTTP = L7Http

/** Hubble's `Kafka` message (the shape is owned by @membrane/types). */
export type Kafka = L7Kafka

/** Hubble's `DNS` message (the shape is owned by @membrane/types). */
export type DNS = L7Dns

export interface Layer7 {
  type?: L7FlowType
  /** Nanoseconds (a number: latencies stay far below 2^53). */
  latencyNs?: number
  dns?: DNS
  http?: HTTP
  kafka?: Kafka
}

export interface Service {
  name: string
  namespace?: string
}

/** Hubble's `Policy` message: a policy a flow names as having decided its verdict. */
export interface Policy {
  name: string
  /** '' for a clusterwide policy. */
  namespace: string
  /** `source:key=value` labels of the policy. */
  labels: string[]
  /** The policy revision that computed the verdict. */
  revision: number
  /** `NetworkPolicy`, `CiliumNetworkPolicy` or `CiliumClusterwideNetworkPolicy`. */
  kind: string
}

/** A flow: one observed packet verdict or L7 record. */
export interface Flow {
  time?: Timestamp
  uuid?: string
  verdict: Verdict
  /** Deprecated field 3; same number as dropReasonDesc. */
  dropReason?: number
  ethernet?: { source: string; destination: string }
  IP?: { source: string; destination: string; ipVersion: IPVersion; encrypted?: boolean }
  l4?: Layer4
  source?: Endpoint
  destination?: Endpoint
  Type: FlowType
  nodeName?: string
  sourceNames?: string[]
  destinationNames?: string[]
  l7?: Layer7
  eventType?: { type: number; subType: number }
  sourceService?: Service
  destinationService?: Service
  trafficDirection?: TrafficDirection
  policyMatchType?: number
  traceObservationPoint?: TraceObservationPoint
  dropReasonDesc?: number
  isReply?: { value: boolean }
  interface?: { index: number; name?: string }
  proxyPort?: number
  sockXlatePoint?: number
  /** uint64 as a decimal string (socket cookies can exceed 2^53). */
  socketCookie?: string
  /** The capturing node's labels (`key=value`). */
  nodeLabels?: string[]
  /** Policies that allowed the flow at the source's egress. */
  egressAllowedBy?: Policy[]
  /** Policies that allowed the flow at the destination's ingress. */
  ingressAllowedBy?: Policy[]
  /** Policies that denied the flow at egress (an AUDIT flow: that would have denied it). */
  egressDeniedBy?: Policy[]
  /** Policies that denied the flow at ingress (an AUDIT flow: that would have denied it). */
  ingressDeniedBy?: Policy[]
  /** Log values of the rules that asked for this flow to be logged. */
  policyLog?: string[]
}

/** A loss notice delivered in a flow stream. */
export interface LostEvent {
  source: LostEventSource
  numEventsLost: number
  cpu?: { value: number }
}

/** One GetFlows response: a flow or a loss notice, with the node name and time. */
export interface FlowsResponse {
  flow?: Flow
  lostEvents?: LostEvent
  nodeName: string
  time?: Timestamp
}
