import { IdentityError, IdentityErrorCode } from './errors'
import { type Label, type LabelSource, Labels, type LabelsInput } from './labels'

/**
 * One rule of a label filter, in Cilium's `--label` syntax:
 * - `pattern` keeps labels whose key matches (a regular expression anchored at the start of the
 *   key, so it acts as a prefix: `app\.kubernetes\.io` keeps `app.kubernetes.io/name`);
 * - `!pattern` drops them;
 * - `source:pattern` (or `!source:pattern`) only applies to labels of that source; a leading
 *   `:` means any source.
 *
 * When several rules match a label, the rule with the longest pattern wins; on a tie, dropping
 * wins. `reserved:` labels are always kept.
 */
export interface LabelFilterRule {
  /** The rule as written (`!io\.kubernetes`). */
  readonly text: string
  readonly exclude: boolean
  readonly source: LabelSource | undefined
  readonly pattern: RegExp
  /** The weight of the rule: the length of its pattern text. */
  readonly weight: number
}

/**
 * Cilium's default identity-relevant label rules: keep the namespace, namespace labels,
 * `io.cilium.k8s.policy.*` (service account, cluster) and `app.kubernetes.io/*`; drop other
 * `io.kubernetes.*` and `*kubernetes.io/*` labels, `k8s.io`, `pod-template-hash`,
 * `pod-template-generation`, `controller-revision-hash`, `annotation.*` and `etcd_node`.
 */
export const DEFAULT_LABEL_FILTER_RULES: readonly string[] = Object.freeze([
  ':io\\.kubernetes\\.pod\\.namespace',
  ':io\\.cilium\\.k8s\\.namespace\\.labels',
  ':io\\.cilium\\.k8s\\.policy',
  ':app\\.kubernetes\\.io',
  '!:io\\.kubernetes',
  '!:.*kubernetes\\.io',
  '!:k8s\\.io',
  '!:pod-template-generation',
  '!:pod-template-hash',
  '!:controller-revision-hash',
  '!:annotation.*',
  '!:etcd_node',
])

/** Options of {@link createLabelFilter}. */
export interface LabelFilterOptions {
  /**
   * Extra rules in Cilium's syntax (see {@link LabelFilterRule}). When any user rule keeps
   * labels (has no `!`), only labels some keep-rule matches are kept.
   */
  rules?: readonly string[]
  /** Start from {@link DEFAULT_LABEL_FILTER_RULES}. Default true. */
  defaults?: boolean
}

/** Turns a workload's labels into the identity-relevant ones. */
export interface LabelFilter {
  readonly rules: readonly LabelFilterRule[]
  /** True when `label` takes part in the identity. */
  keep(label: Label): boolean
  /** The identity-relevant subset of `labels`. */
  filter(labels: LabelsInput): Labels
}

/**
 * Parse one filter rule.
 *
 * @throws IdentityError `INVALID_OPTION` naming the rule when its regular expression is invalid.
 */
export function parseLabelFilterRule(text: string): LabelFilterRule {
  let rest = text
  const exclude = rest.startsWith('!')
  if (exclude) rest = rest.slice(1)
  let source: LabelSource | undefined
  const colon = rest.indexOf(':')
  if (colon !== -1 && /^[a-z0-9-]*$/.test(rest.slice(0, colon))) {
    const s = rest.slice(0, colon)
    source = s === '' || s === 'any' ? undefined : (s as LabelSource)
    rest = rest.slice(colon + 1)
  }
  if (rest === '') {
    throw new IdentityError(
      IdentityErrorCode.INVALID_OPTION,
      `label filter rule ${JSON.stringify(text)}: empty pattern`,
      {
        input: text,
      },
    )
  }
  let pattern: RegExp
  try {
    pattern = new RegExp(`^(?:${rest})`)
  } catch (error) {
    throw new IdentityError(
      IdentityErrorCode.INVALID_OPTION,
      `label filter rule ${JSON.stringify(text)}: invalid regular expression: ${(error as Error).message}`,
      { input: text, cause: error },
    )
  }
  return Object.freeze({ text, exclude, source, pattern, weight: rest.length })
}

/**
 * Make a label filter (Cilium's defaults unless `defaults: false`, plus `rules`).
 *
 * @example
 * const f = createLabelFilter()
 * f.filter(['k8s:app=web', 'k8s:pod-template-hash=abc']).toStrings() // ['k8s:app=web']
 */
export function createLabelFilter(options: LabelFilterOptions = {}): LabelFilter {
  const defaults =
    options.defaults === false ? [] : DEFAULT_LABEL_FILTER_RULES.map(parseLabelFilterRule)
  const user = (options.rules ?? []).map(parseLabelFilterRule)
  const rules = [...defaults, ...user]
  const onlyIncluded = user.some((r) => !r.exclude)
  const keep = (label: Label): boolean => {
    if (label.source === 'reserved') return true
    let best: LabelFilterRule | undefined
    for (const rule of rules) {
      if (rule.source !== undefined && rule.source !== label.source) continue
      if (!rule.pattern.test(label.key)) continue
      if (!best || rule.weight > best.weight || (rule.weight === best.weight && rule.exclude))
        best = rule
    }
    if (best) return !best.exclude
    return !onlyIncluded
  }
  return {
    rules,
    keep,
    filter(labels) {
      return Labels.from([...Labels.from(labels)].filter(keep))
    },
  }
}
