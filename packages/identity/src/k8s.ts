import {
  NAMESPACE_LABELS_PREFIX,
  POD_NAMESPACE_LABEL,
  SERVICE_ACCOUNT_LABEL,
} from '@membrane/types'
import type { LabelFilter } from './filter'
import { type Label, Labels } from './labels'

/** The cluster name. */
const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster'

/** What {@link podIdentityLabels} builds a pod's identity labels from. */
export interface PodLabelsInput {
  /** The pod's own labels (`metadata.labels`). */
  labels?: Readonly<Record<string, string>>
  namespace: string
  /** The namespace's labels (`io.cilium.k8s.namespace.labels.<key>`). */
  namespaceLabels?: Readonly<Record<string, string>>
  serviceAccount?: string
  /** Cluster name (`io.cilium.k8s.policy.cluster`), when set. */
  cluster?: string
}

/**
 * A pod's identity labels the way Cilium builds them, all of source `k8s`: its own labels, the
 * namespace, the namespace's labels, the service account and the cluster. Pass a
 * {@link LabelFilter} to keep only the identity-relevant ones.
 *
 * @example
 * podIdentityLabels({ labels: { app: 'web' }, namespace: 'default', serviceAccount: 'web' }).toStrings()
 * // ['k8s:app=web', 'k8s:io.cilium.k8s.policy.serviceaccount=web', 'k8s:io.kubernetes.pod.namespace=default']
 */
export function podIdentityLabels(pod: PodLabelsInput, filter?: LabelFilter): Labels {
  const out: Label[] = []
  const k8s = (key: string, value: string) => out.push({ source: 'k8s', key, value })
  for (const [k, v] of Object.entries(pod.labels ?? {})) k8s(k, v)
  k8s(POD_NAMESPACE_LABEL, pod.namespace)
  for (const [k, v] of Object.entries(pod.namespaceLabels ?? {}))
    k8s(`${NAMESPACE_LABELS_PREFIX}${k}`, v)
  if (pod.serviceAccount !== undefined) k8s(SERVICE_ACCOUNT_LABEL, pod.serviceAccount)
  if (pod.cluster !== undefined) k8s(CLUSTER_LABEL, pod.cluster)
  const labels = Labels.from(out)
  return filter ? filter.filter(labels) : labels
}
