/**
 * DNS L7 rules (and toFQDNs selectors): the rule type, its validation and its matching. This
 * one module decides DNS verdicts for `PolicyRepository.trace`, for toFQDNs selection and for
 * the @membrane/l7proxy DNS proxy.
 *
 * Names are compared lower-case without a trailing dot. `matchName` is an exact name.
 * `matchPattern`: `*` alone matches every name. Elsewhere `*` matches zero or more characters
 * of one DNS label (`[-a-z0-9_]`), so `*.cilium.io` matches `sub.cilium.io` but not `cilium.io`
 * or `a.b.cilium.io`. A leading `**.` matches one or more whole labels (`**.cilium.io` matches
 * `a.b.cilium.io`). Matching uses no regular expressions.
 */
import { type Ctx, join, obj, str } from '../internal/fields'
import type { L7Policy } from '../repository'
import { type L7Verdict, NO_RULE_MATCHED, precheck, ruleLists } from './verdict'

/** One DNS L7 rule (egress only), or a toFQDNs selector: exactly one of the two. */
export interface DnsRule {
  matchName?: string
  matchPattern?: string
}

/** A DNS query as trace() takes it. */
export interface DnsQuery {
  name: string
}

/** Lower-case and strip one trailing dot. */
export function normalizeDnsName(name: string): string {
  const n = name.trim().toLowerCase()
  return n.endsWith('.') && n.length > 1 ? n.slice(0, -1) : n
}

/** Is `p` a syntactically valid name or pattern (after normalizing)? */
function isValidDnsPattern(p: string): boolean {
  if (p === '*') return true
  if (p.length === 0 || p.length > 253) return false
  const body = p.startsWith('**.') ? p.slice(3) : p
  return /^[-a-z0-9_*]+(\.[-a-z0-9_*]+)*$/.test(body)
}

function labelChar(c: string): boolean {
  return /[-a-z0-9_]/.test(c)
}

/** Glob match inside a string where `*` may not cross a dot. O(n*m), no backtracking blowup. */
function globNoDot(pattern: string, name: string): boolean {
  const n = name.length
  let prev = new Array<boolean>(n + 1).fill(false)
  prev[0] = true
  for (let i = 0; i < pattern.length; i++) {
    const pc = pattern[i]
    const cur = new Array<boolean>(n + 1).fill(false)
    if (pc === '*') {
      cur[0] = prev[0] as boolean
      for (let j = 1; j <= n; j++)
        cur[j] =
          (prev[j] as boolean) || ((cur[j - 1] as boolean) && labelChar(name[j - 1] as string))
    } else {
      for (let j = 1; j <= n; j++) cur[j] = (prev[j - 1] as boolean) && name[j - 1] === pc
    }
    prev = cur
  }
  return prev[n] as boolean
}

/**
 * Does `name` match the Cilium DNS pattern (already normalized)?
 *
 * @example matchDnsPattern('*.cilium.io', 'docs.cilium.io') // true
 */
export function matchDnsPattern(pattern: string, name: string): boolean {
  const n = normalizeDnsName(name)
  if (pattern === '*') return true
  if (pattern.startsWith('**.')) {
    const rest = pattern.slice(3)
    const labels = n.split('.')
    for (let k = 1; k < labels.length; k++) {
      if (globNoDot(rest, labels.slice(k).join('.'))) return true
    }
    return false
  }
  return globNoDot(pattern, n)
}

/** Does `name` match a DNS rule / FQDN selector? */
export function matchFqdn(
  sel: { matchName?: string; matchPattern?: string },
  name: string,
): boolean {
  if (sel.matchName !== undefined) return normalizeDnsName(name) === sel.matchName
  if (sel.matchPattern !== undefined) return matchDnsPattern(sel.matchPattern, name)
  return false
}

/**
 * Does the query satisfy one DNS rule?
 *
 * @example dnsRuleMatches({ matchPattern: '*.cilium.io' }, { name: 'docs.cilium.io.' }) // true
 */
export function dnsRuleMatches(rule: DnsRule, q: DnsQuery): boolean {
  return matchFqdn(rule, q.name)
}

/**
 * Evaluate a query name against the L7 policy of its flow: allowed when any rule matches;
 * `undefined` policy denies (fail closed); a `wildcard` policy allows every name.
 *
 * @example evaluateDns(policy, 'api.github.com').allowed
 */
export function evaluateDns(policy: L7Policy | undefined, name: string): L7Verdict {
  const pre = precheck(policy, 'dns')
  if (pre) return pre
  for (const r of ruleLists(policy as L7Policy, 'dns')) {
    const index = r.rules.dns.findIndex((rule) => matchFqdn(rule, name))
    if (index >= 0) return { allowed: true, ruleId: r.id, index }
  }
  return NO_RULE_MATCHED
}

/** Parse and validate a DNS rule or toFQDNs selector; `p` is its field path. Internal. */
export function parseDnsRule(ctx: Ctx, v: unknown, p: string): DnsRule {
  const ro = obj(ctx, v, p, ['matchName', 'matchPattern'])
  const matchName = str(ctx, ro.matchName, join(p, 'matchName'))
  const matchPattern = str(ctx, ro.matchPattern, join(p, 'matchPattern'))
  if ((matchName === undefined) === (matchPattern === undefined))
    ctx.fail(
      'INVALID_COMBINATION',
      p,
      'exactly one of matchName and matchPattern',
      'matchName or matchPattern',
    )
  if (matchName !== undefined) {
    const n = normalizeDnsName(matchName)
    if (!isValidDnsPattern(n) || n.includes('*'))
      ctx.fail(
        'INVALID_VALUE',
        join(p, 'matchName'),
        'invalid DNS name',
        'a DNS name of [-a-zA-Z0-9_.]',
        matchName,
      )
    return { matchName: n }
  }
  const n = normalizeDnsName(matchPattern as string)
  if (!isValidDnsPattern(n))
    ctx.fail(
      'INVALID_VALUE',
      join(p, 'matchPattern'),
      'invalid DNS pattern',
      'a DNS name of [-a-zA-Z0-9_.] with * wildcards',
      matchPattern,
    )
  return { matchPattern: n }
}
