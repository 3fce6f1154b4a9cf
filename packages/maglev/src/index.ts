// @membrane/maglev: Maglev consistent-hash lookup tables, identical to Cilium's, in O(N+M) memory.
// Pure TypeScript, no Node-only APIs: it runs in a browser as well.
export type { TableAnalysis, TableDiff } from './analysis'
export { analyze, applyDiff, diffTables, disruption } from './analysis'
export type { Backend, Protocol } from './backend'
export { backendHashString, PROTOCOLS } from './backend'
export { MaglevError, MaglevErrorCode } from './errors'
export type { Flow, FlowHashOptions } from './flow'
export { flowHash, IP_PROTOCOLS, jhash3Words, lookupBackend } from './flow'
export { murmur3x64_128 } from './murmur3'
export type { DecodedSeed } from './seed'
export { DEFAULT_SEED, decodeSeed } from './seed'
export type { LookupTableOptions, TableSize } from './table'
export { buildLookupTable, DEFAULT_TABLE_SIZE, permutationOf, TABLE_SIZES } from './table'
