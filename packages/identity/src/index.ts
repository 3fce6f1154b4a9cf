// @membrane/identity: labels -> security identities (Cilium numbering), the in-memory allocator
// and the ipcache model. Pure: no Node-only imports. The etcd backend lives in
// `@membrane/identity/etcd`.
export type {
  AllocateResult,
  IdentityAllocator,
  IdentityEvent,
  IdentityListener,
  WatchOptions,
} from './allocator'
export { CIDRIdentities } from './cidr-identities'
export { IdentityError, IdentityErrorCode } from './errors'
export type { LabelFilter, LabelFilterOptions, LabelFilterRule } from './filter'
export { createLabelFilter, DEFAULT_LABEL_FILTER_RULES, parseLabelFilterRule } from './filter'
export type { Identity, IdentityRecord, IdentityScope } from './identity'
export {
  cidrLabels,
  clusterIdentityRange,
  clusterIdOf,
  identityScope,
  isCIDRLabelSet,
  isLocalIdentity,
  LOCAL_IDENTITY_FLAG,
  MAX_CLUSTER_ID,
  MAX_CLUSTER_IDENTITY,
  MAX_LOCAL_IDENTITY_INDEX,
  MIN_CLUSTER_IDENTITY,
  makeIdentity,
  RESERVED_IDENTITY_BY_LABEL,
  ReservedIdentity,
  reservedIdentity,
  reservedIdentityList,
  reservedIdentityOf,
  toIdentityRecord,
} from './identity'
export type { IPFamily, Prefix } from './ip'
export {
  formatIP,
  makePrefix,
  parseIP,
  parsePrefix,
  prefixBytes,
  prefixContains,
} from './ip'
export type {
  IPCacheEntry,
  IPCacheEntryInput,
  IPCacheEvent,
  IPCacheListener,
  IPCacheMatch,
  IPCacheSource,
} from './ipcache'
export { IPCACHE_SOURCES, IPCache } from './ipcache'
export type { PodLabelsInput } from './k8s'
export {
  CLUSTER_LABEL,
  NAMESPACE_LABELS_PREFIX,
  POD_NAMESPACE_LABEL,
  podIdentityLabels,
  SERVICE_ACCOUNT_LABEL,
} from './k8s'
export type { Label, LabelsInput } from './labels'
export {
  cidrFromLabelKey,
  cidrLabelKey,
  formatLabel,
  LabelSource,
  Labels,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  makeLabel,
  parseLabel,
  parseLabels,
  RESERVED_LABEL_KEYS,
} from './labels'
export type { MemoryAllocatorOptions } from './memory'
export { MemoryAllocator } from './memory'
