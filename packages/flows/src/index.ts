// @membrane/flows: Hubble-compatible flows from datapath events: Observer gRPC API, observe CLI,
// Prometheus metrics, service map.

export type { L7Peer, L7Record } from '@membrane/types'
export type { ConvertOptions, MonotonicClock } from './convert'
export { eventToFlow, monotonicClock } from './convert'
export {
  dropReasonDescription,
  dropReasonFromName,
  dropReasonName,
  knownDropReasons,
} from './drop-reasons'
export type { EndpointInfo, Enricher } from './enrich'
export { RESERVED_IDENTITY_LABELS, StaticEnricher } from './enrich'
export type { MbEvent } from './event'
export {
  decodeEvent,
  EventDecodeError,
  EventFlag,
  EventType,
  encodeEvent,
  MB_EVENT_SIZE,
  PolicyAction,
  parseIpBytes,
  TracePoint,
} from './event'
export type { FlowFilter } from './filter'
export { compileFilters, FilterError } from './filter'
export type { OutputFormat } from './format'
export { flowToJSON } from './format'
export type { GrpcJsObserverServer, GrpcJsServerOptions, ObserverNode } from './grpc'
export {
  ObserverClient,
  observerServiceDefinition,
  observerServiceImpl,
  startGrpcJsObserverServer,
} from './grpc'
export { L7RecordError, l7RecordToFlow } from './l7'
export type { DatapathCounter, FlowMetricsOptions, MetricsServer } from './metrics'
export { FlowMetrics, serveMetrics } from './metrics'
export type { ObserveIO, ObserveOptions } from './observe'
export { OBSERVE_USAGE, ObserveUsageError, parseObserveArgs, runObserve } from './observe'
export type {
  FlowSink,
  GetFlowsRequest,
  ObserverOptions,
  ObserverStatus,
  StreamItem,
} from './observer'
export { FlowObserver } from './observer'
export { decodeFlow, encodeFlow, PROTO_DIR, PROTO_FILES } from './proto'
export type { RedactOptions } from './redact'
export { DEFAULT_REDACTED_HEADERS, REDACTED, redactFlow } from './redact'
export type { RingEntry } from './ring'
export type { ObserverServer, ObserverServerOptions } from './server'
export { GrpcStatus, startObserverServer } from './server'
export type { MapEdge, MapNode, ServiceMap, ServiceMapSvgOptions } from './servicemap'
export { buildServiceMap, renderServiceMapSvg } from './servicemap'
export type {
  DNS,
  Endpoint,
  Flow,
  FlowsResponse,
  HTTP,
  Kafka,
  Layer4,
  Layer7,
  LostEvent,
  Policy,
  Ports,
  Service,
  TCPFlags,
  Timestamp,
} from './types'
export {
  FlowType,
  IPVersion,
  L7FlowType,
  LostEventSource,
  SocketTranslationPoint,
  TraceObservationPoint,
  TrafficDirection,
  Verdict,
} from './types'
