// @membrane/datapath: the Membrane eBPF datapath — map layouts mirroring bpf-src, loading and
// attaching the programs.

// Drop reasons are what the metrics map counts: re-exported for the users who import them from
// here; their home is @membrane/types (generated from bpf-src/lib/drop_reasons.h).
export type { DropReasonName, ProxyOrigin } from '@membrane/types'
export { DropReason, dropReasonName } from '@membrane/types'
export {
  BackendFlag,
  ConfigFlag,
  CtFlag,
  CtTupleFlag,
  EndpointFlag,
  IpProto,
  LbAlgorithm,
  PolicyDirection,
  PolicyEntryFlag,
  ServiceFlag,
  TrafficDirection,
} from './constants'
export type {
  AttachEndpointOptions,
  DatapathOptions,
  EventOptions,
  EventSubscription,
} from './datapath'
export { Datapath, DEFAULT_HAIRPIN_IP6 } from './datapath'
export { DatapathError, DatapathErrorCode } from './errors'
export { flowHash4 } from './hash'
export type { MapInfoLike, MapLike } from './internal/loader'
export {
  authKeyCodec,
  authValueCodec,
  configCodec,
  ctEntryCodec,
  ctTuple4Codec,
  ctTuple6Codec,
  endpointCodec,
  frag4KeyCodec,
  frag4L4Codec,
  ipcacheKeyCodec,
  ipcacheValueCodec,
  lb4BackendCodec,
  lb4KeyCodec,
  lb6BackendCodec,
  lb6KeyCodec,
  lb6RevnatCodec,
  lbServiceCodec,
  lbSlotKeyCodec,
  MAGLEV_TABLE_SIZE,
  METRICS_ENTRIES,
  maglevCodec,
  metricsIndex,
  metricsValueCodec,
  policyAnyCodec,
  policyEntryCodec,
  policyFastKeyCodec,
  policyKeyCodec,
  proxy4KeyCodec,
  proxy4ValueCodec,
  proxy6KeyCodec,
  proxy6ValueCodec,
  STRUCT_CODECS,
  sockRevnat4KeyCodec,
  sockRevnat4ValueCodec,
  sockRevnat6KeyCodec,
  sockRevnat6ValueCodec,
} from './layouts'
export type { CtEntry, CtGcResult } from './maps/ct'
export { CtMap } from './maps/ct'
export type { EndpointRecord } from './maps/endpoints'
export { EndpointMap } from './maps/endpoints'
export type { IpcacheEventInput, IpcacheMapEntry, PrefixInput } from './maps/ipcache'
export { IpcacheMap } from './maps/ipcache'
export type { Counter } from './maps/metrics'
export { MetricsMap } from './maps/metrics'
export type {
  PolicyDiffInput,
  PolicyKeyInput,
  PolicyMapEntry,
  PolicyProtocol,
  PolicyValueInput,
} from './maps/policy'
export { POLICY_SUMMARY, PolicyMap } from './maps/policy'
export { ProxyMap } from './maps/proxy'
export type {
  BackendInput,
  BackendState,
  ServiceInput,
  ServiceMapSet,
  ServiceProtocol,
  ServiceState,
} from './maps/services'
export { ServiceMaps } from './maps/services'
export type { RoutingMode } from './overlay'
export { podMtu, VXLAN_OVERHEAD, VXLAN_PORT } from './overlay'
export type { MapSpec } from './pins'
export { DEFAULT_PIN_ROOT, MAP_SPECS } from './pins'
