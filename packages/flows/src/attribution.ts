/**
 * Policy attribution: the Flow fields that name the policies which decided a verdict
 * (Hubble's egress_allowed_by / ingress_allowed_by / egress_denied_by / ingress_denied_by).
 */
import type { Flow, Policy } from './types'
import { TrafficDirection, Verdict } from './types'

/** Hubble's DropReason numbers of policy drops. */
const POLICY_DROPS: ReadonlySet<number> = new Set([133, 181, 189])

/** Does this verdict name the deciding policies in a `*DeniedBy` field (drops and audits)? */
function denied(verdict: number): boolean {
  return verdict === Verdict.DROPPED || verdict === Verdict.AUDIT
}

/**
 * Put `policies` into the Flow field their verdict and direction call for: allowed_by for a
 * forwarded or redirected verdict, denied_by for a drop or an audit (what would have denied it).
 * Nothing for an unknown direction or an empty list.
 *
 * @example setPolicyAttribution(flow, [{ name: 'rule1', namespace: 'default', labels: [], revision: 3, kind: 'CiliumNetworkPolicy' }])
 */
export function setPolicyAttribution(flow: Flow, policies: readonly Policy[] | undefined): void {
  if (!policies?.length) return
  const list = policies as Policy[]
  const d = flow.trafficDirection
  if (d === TrafficDirection.EGRESS) {
    if (denied(flow.verdict)) flow.egressDeniedBy = list
    else flow.egressAllowedBy = list
  } else if (d === TrafficDirection.INGRESS) {
    if (denied(flow.verdict)) flow.ingressDeniedBy = list
    else flow.ingressAllowedBy = list
  }
}

const names = new WeakMap<readonly Policy[], string>()

/**
 * The policies as text, `namespace/name` (a clusterwide policy: its name), comma-separated;
 * memoized per list (the lists flows carry are shared).
 *
 * @example policyNames(flow.ingressDeniedBy ?? []) // 'default/rule1'
 */
export function policyNames(list: readonly Policy[]): string {
  let s = names.get(list)
  if (s === undefined) {
    s = list.map((p) => (p.namespace ? `${p.namespace}/${p.name}` : p.name)).join(',')
    names.set(list, s)
  }
  return s
}

/** `allowed by a/b` / `denied by a/b` (audit: `would be denied by`), or '' when none named. */
export function attributionText(flow: Flow): string {
  const allowed = flow.egressAllowedBy ?? flow.ingressAllowedBy
  const denied = flow.egressDeniedBy ?? flow.ingressDeniedBy
  const parts: string[] = []
  if (flow.egressAllowedBy && flow.ingressAllowedBy)
    parts.push(
      `allowed by ${policyNames(flow.egressAllowedBy)} (egress), ${policyNames(flow.ingressAllowedBy)} (ingress)`,
    )
  else if (allowed) parts.push(`allowed by ${policyNames(allowed)}`)
  if (denied)
    parts.push(
      `${flow.verdict === Verdict.AUDIT ? 'would be denied by' : 'denied by'} ${policyNames(denied)}`,
    )
  return parts.join('; ')
}

/** Is a datapath flow a policy decision (a policy verdict, or a drop for a policy reason)? */
export function isPolicyDecision(eventType: number, dropReason: number | undefined): boolean {
  return eventType === 5 || (eventType === 1 && POLICY_DROPS.has(dropReason ?? 0))
}
