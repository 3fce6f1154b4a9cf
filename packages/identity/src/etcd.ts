// @membrane/identity/etcd: the etcd backend of the identity allocator and the ipcache sync.
// Node-only (gRPC through the etcd3 client); the core package stays pure.
export type { EtcdAllocatorOptions, GarbageCollectionResult } from './_etcd/allocator'
export { DEFAULT_IDENTITY_PREFIX, EtcdAllocator } from './_etcd/allocator'
export type { EtcdConnectionOptions } from './_etcd/client'
export { createEtcdClient } from './_etcd/client'
export type { EtcdIPCacheSyncOptions, SharedIPCacheEntry } from './_etcd/ipcache-sync'
export { DEFAULT_IPCACHE_PREFIX, EtcdIPCacheSync } from './_etcd/ipcache-sync'
