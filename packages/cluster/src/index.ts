// @membrane/cluster: the cluster control plane on etcd — the node registry (leased node
// records, pod CIDRs claimed from a cluster pool) and cluster-wide document sets (policies,
// services) changed all or nothing. Identities and the shared ipcache live in
// `@membrane/identity/etcd`; the agent wires both.
export type { ClusterDocumentsOptions, DocumentChange, DocumentSet } from './documents'
export { ClusterDocuments } from './documents'
export { ClusterError, ClusterErrorCode } from './errors'
export type {
  NodeEvent,
  NodeRecord,
  NodeRegistryOptions,
  RoutingMode,
} from './node-registry'
export { DEFAULT_CLUSTER_PREFIX, NodeRegistry } from './node-registry'
export type { ClusterPool } from './pod-cidr'
export { checkPodCidr, firstFreePodCidr, parseClusterPool } from './pod-cidr'
