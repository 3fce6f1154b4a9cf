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

/** Is a datapath flow a policy decision (a policy verdict, or a drop for a policy reason)? */
export function isPolicyDecision(eventType: number, dropReason: number | undefined): boolean {
  return eventType === 5 || (eventType === 1 && POLICY_DROPS.has(dropReason ?? 0))
}
