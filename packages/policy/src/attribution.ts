/**
 * Policy attribution ids: each distinct set of policies that produced map-state entries gets a
 * small id, which the datapath stores in its policy entries and copies into its events, and the
 * flow layer resolves back to the policies.
 */
import type { MapStateValue } from './mapstate'
import type { L7Policy } from './repository'

/** Sorted distinct policy refs. */
export function refsOf(refs: readonly string[]): string[] {
  return [...new Set(refs)].sort()
}

/** The policy ref of a rule id (`Kind/ns/name:specs[0].ingress[1]` -> `Kind/ns/name`). */
function policyOfRule(id: string): string {
  const i = id.indexOf(':')
  return i < 0 ? id : id.slice(0, i)
}

/**
 * The policies (refs, sorted, distinct) of a map-state entry's `derivedFrom` rule ids or refs;
 * pseudo ids such as `<no default deny>` name no policy.
 *
 * @example policiesOfDerivedFrom(['CiliumNetworkPolicy/default/a:spec.ingress[0]']) // ['CiliumNetworkPolicy/default/a']
 */
export function policiesOfDerivedFrom(derivedFrom: readonly string[]): string[] {
  return refsOf(derivedFrom.filter((d) => !d.startsWith('<')).map(policyOfRule))
}

const byRule = new Map<string, readonly string[]>()
const deniedBy = new WeakMap<L7Policy, readonly string[]>()
const NONE: readonly string[] = Object.freeze([])

/**
 * The policies (refs) that decided an L7 verdict, as trace() and the proxy's records name them:
 * allowed by a rule, that rule's policy; allowed because some allowing rule has no L7 rules,
 * the policies allowing the port; denied, every policy with L7 rules on the port. The arrays
 * are shared (memoized): do not mutate them.
 *
 * @example l7Attribution(policy, evaluateHttp(policy, request))
 */
export function l7Attribution(
  policy: L7Policy | undefined,
  verdict: { allowed: boolean; ruleId?: string },
): readonly string[] {
  if (!policy) return NONE
  if (verdict.allowed) {
    if (verdict.ruleId === undefined) return policy.policies ?? NONE
    let refs = byRule.get(verdict.ruleId)
    if (!refs) {
      if (byRule.size >= 4096) byRule.clear()
      refs = Object.freeze([policyOfRule(verdict.ruleId)])
      byRule.set(verdict.ruleId, refs)
    }
    return refs
  }
  let refs = deniedBy.get(policy)
  if (!refs) {
    refs = Object.freeze(refsOf(policy.rules.map((r) => policyOfRule(r.id))))
    deniedBy.set(policy, refs)
  }
  return refs
}

/** Largest id: the datapath field is 16 bits; 0 means "no policy". */
const MAX_ID = 0xffff

/** Options of {@link RuleSetTable}. */
export interface RuleSetTableOptions {
  /**
   * How long an id no map state uses stays resolvable (flows in flight name it) before it can
   * be given to another set, in ms. Default 60 000.
   */
  graceMs?: number
  /** Clock in ms. Default `Date.now`. */
  now?: () => number
}

/**
 * Ids of policy sets (`derivedFrom` reduced to policy refs). Ids are stable while in use;
 * {@link RuleSetTable.sweep} retires the ids no map state uses, and a retired id is given out
 * again only after the grace period, so an event emitted before a policy change still resolves
 * to the policies that decided it. With every id taken, new sets get 0 (no attribution).
 *
 * @example
 * const ids = new RuleSetTable()
 * const id = ids.idOf(entry.value) // store it with the entry in the datapath
 * ids.refs(id) // ['CiliumNetworkPolicy/default/rule1']
 */
export class RuleSetTable {
  private readonly byKey = new Map<string, number>()
  private readonly byId = new Map<number, { key: string; refs: readonly string[] }>()
  private readonly retired = new Map<number, number>()
  private readonly free: number[] = []
  private readonly keys = new WeakMap<readonly string[], string>()
  private next = 1
  private readonly graceMs: number
  private readonly now: () => number
  /** Ids handed out since the last sweep. */
  private fresh = 0

  constructor(options: RuleSetTableOptions = {}) {
    this.graceMs = options.graceMs ?? 60_000
    this.now = options.now ?? Date.now
  }

  /** Ids currently resolvable (in use or in their grace period). */
  get size(): number {
    return this.byId.size
  }

  /** Ids handed out since the last {@link RuleSetTable.sweep}. */
  get sinceSweep(): number {
    return this.fresh
  }

  /** The id of the policies behind a map-state value (0 when none: e.g. no default deny). */
  idOf(value: Pick<MapStateValue, 'derivedFrom'>): number {
    let key = this.keys.get(value.derivedFrom)
    if (key === undefined) {
      key = policiesOfDerivedFrom(value.derivedFrom).join('\n')
      this.keys.set(value.derivedFrom, key)
    }
    if (key === '') return 0
    const known = this.byKey.get(key)
    if (known !== undefined) {
      this.retired.delete(known)
      return known
    }
    const id = this.allocate()
    if (id === 0) return 0
    this.byKey.set(key, id)
    this.byId.set(id, { key, refs: Object.freeze(key.split('\n')) })
    this.fresh++
    return id
  }

  /** The policy refs of an id (undefined for 0 or an id never given out or long freed). */
  refs(id: number): readonly string[] | undefined {
    return this.byId.get(id)?.refs
  }

  /**
   * Retire the ids not in `live` (the ids of every entry the datapath holds) and free those
   * retired for longer than the grace period. Returns how many were freed.
   */
  sweep(live: Iterable<number>): number {
    const now = this.now()
    const keep = new Set(live)
    let freed = 0
    for (const [id, entry] of this.byId) {
      if (keep.has(id)) {
        this.retired.delete(id)
        continue
      }
      const since = this.retired.get(id)
      if (since === undefined) this.retired.set(id, now)
      else if (now - since >= this.graceMs) {
        this.retired.delete(id)
        this.byId.delete(id)
        this.byKey.delete(entry.key)
        this.free.push(id)
        freed++
      }
    }
    this.fresh = 0
    return freed
  }

  private allocate(): number {
    if (this.next <= MAX_ID) return this.next++
    return this.free.shift() ?? 0
  }
}
