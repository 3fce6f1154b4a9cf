/**
 * Label keys that more than one package writes or reads (Cilium's and Kubernetes' names). The
 * label algorithms stay with their owners (@membrane/identity builds label sets,
 * @membrane/policy matches selectors); only the shared names live here.
 */

/** The key (source `k8s`) under which every pod identity carries its namespace. */
export const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace'

/** Prefix of the keys (source `k8s`) that carry the labels of the pod's namespace. */
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.'

/** The key (source `k8s`) that carries the pod's service account. */
export const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount'
