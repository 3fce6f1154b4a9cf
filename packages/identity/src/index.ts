// @membrane/identity: labels -> security identities (Cilium numbering), the in-memory allocator
// and the ipcache model. Pure: no Node-only imports. The etcd backend lives in
// `@membrane/identity/etcd`.

// The shared vocabulary this package's API speaks, re-exported for the users who import it from
// here; its home is @membrane/types.
export type { Prefix } from '@membrane/types'
export {
  LOCAL_IDENTITY_FLAG,
  makePrefix,
  parsePrefix,
  prefixBytes,
  prefixContains,
  ReservedIdentity,
} from '@membrane/types'
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
export { createLabelFilter, DEFAULT_LABEL_FILTER_RULES } from './filter'
export type { Identity, IdentityRecord, IdentityScope } from './identity'
export {
  cidrLabels,
  clusterIdentityRange,
  identityScope,
  reservedIdentityList,
  toIdentityRecord,
} from './identity'
export type {
  IPCacheEntry,
  IPCacheEntryInput,
  IPCacheEvent,
  IPCacheListener,
  IPCacheMatch,
  IPCacheSource,
} from './ipcache'
export { IPCache } from './ipcache'
export type { PodLabelsInput } from './k8s'
export { podIdentityLabels } from './k8s'
export type { Label, LabelsInput } from './labels'
export {
  formatLabel,
  LabelSource,
  Labels,
  makeLabel,
  parseLabel,
} from './labels'
export type { MemoryAllocatorOptions } from './memory'
export { MemoryAllocator } from './memory'
