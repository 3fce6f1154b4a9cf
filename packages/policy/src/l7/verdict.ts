/**
 * The verdict shape every L7 rule kind gives, and the steps they share: a flow without an L7
 * policy is denied (the proxy fails closed), a policy of another parser is denied, a wildcard
 * policy allows everything; otherwise the first matching rule decides.
 */
import type { L7Rules } from '../model'
import type { L7Policy } from '../repository'

/** Why an L7 request was denied. */
export type L7DenyReason = 'no-policy' | 'no-rule-matched' | 'parser-mismatch'

/** The verdict on one L7 request; `ruleId`/`index` name the rule that allowed it. */
export type L7Verdict =
  | { allowed: true; ruleId?: string; index?: number }
  | { allowed: false; reason: L7DenyReason }

/** Denied because no rule matched. */
export const NO_RULE_MATCHED = { allowed: false, reason: 'no-rule-matched' } as const

/** The verdict decided before looking at the rules, or undefined when the rules decide. */
export function precheck(
  policy: L7Policy | undefined,
  parser: L7Rules['parser'],
): L7Verdict | undefined {
  if (!policy) return { allowed: false, reason: 'no-policy' }
  if (policy.parser !== parser) return { allowed: false, reason: 'parser-mismatch' }
  if (policy.wildcard) return { allowed: true }
  return undefined
}

/** Rules of the given parser, with the id of the policy rule each list came from. */
export function* ruleLists<P extends L7Rules['parser']>(
  policy: L7Policy,
  parser: P,
): Generator<{ id: string; rules: Extract<L7Rules, { parser: P }> }> {
  for (const r of policy.rules)
    if (r.rules.parser === parser)
      yield { id: r.id, rules: r.rules as Extract<L7Rules, { parser: P }> }
}
