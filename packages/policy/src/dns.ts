/**
 * DNS names and Cilium's matchPattern wildcards, matched without regular expressions.
 *
 * `*` alone matches every name. Elsewhere `*` matches zero or more characters of one DNS label
 * (`[-a-z0-9_]`), so `*.cilium.io` matches `sub.cilium.io` but not `cilium.io` or `a.b.cilium.io`.
 * A leading `**.` matches one or more whole labels (`**.cilium.io` matches `a.b.cilium.io`).
 */

/** Lower-case and strip one trailing dot. */
export function normalizeDnsName(name: string): string {
  const n = name.trim().toLowerCase()
  return n.endsWith('.') && n.length > 1 ? n.slice(0, -1) : n
}

/** Is `p` a syntactically valid name or pattern (after normalizing)? */
export function isValidDnsPattern(p: string): boolean {
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
