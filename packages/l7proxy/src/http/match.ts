/**
 * HTTP rule evaluation for the proxy. Regexes run on RE2 (re2-wasm): linear time, no
 * catastrophic backtracking; each must match the whole value, as Cilium (Envoy) requires.
 */
import type { HttpRule, L7Policy } from '@membrane/policy'
import { RE2 } from 're2-wasm'
import { L7ProxyError, L7ProxyErrorCode } from '../errors'

/** The parts of a request the rules look at. */
export interface HttpRequestView {
  method: string
  /** The request target as sent (`/path?query`). */
  path: string
  /** Host header (or authority). */
  host: string
  /** Header names (any case) -> values; a repeated header is joined with `, `. */
  headers: ReadonlyMap<string, string>
}

/** A compiled full-match RE2 pattern. */
export interface FullMatcher {
  readonly source: string
  test(value: string): boolean
}

const MAX_CACHE = 4096
const cache = new Map<string, FullMatcher>()

/**
 * Compile `pattern` for whole-value matching (`^(?:pattern)$`) on RE2. Cached.
 * @throws L7ProxyError(INVALID_ARGUMENT) naming the pattern when RE2 rejects it.
 */
export function compileFullMatch(pattern: string): FullMatcher {
  const hit = cache.get(pattern)
  if (hit) return hit
  let re: RE2
  try {
    re = new RE2(`^(?:${pattern})$`, 'u')
  } catch (cause) {
    throw new L7ProxyError(
      L7ProxyErrorCode.INVALID_ARGUMENT,
      `not an RE2 regular expression: ${JSON.stringify(pattern)} (${(cause as Error).message})`,
      { path: 'http.rule', cause },
    )
  }
  // re2-wasm costs ~10 us a call (string copies into wasm memory); request methods, hosts and
  // paths repeat, so results are memoized per pattern (bounded, values up to 256 chars).
  const memo = new Map<string, boolean>()
  const m: FullMatcher = {
    source: pattern,
    test: (v) => {
      const hit = memo.get(v)
      if (hit !== undefined) return hit
      const r = re.test(v)
      if (v.length <= 256) {
        if (memo.size >= 1024) memo.clear()
        memo.set(v, r)
      }
      return r
    },
  }
  // re2-wasm objects are never freed by the GC (wasm heap): keep the cache bounded.
  if (cache.size >= MAX_CACHE) cache.clear()
  cache.set(pattern, m)
  return m
}

/** Build the header view of a request from Node's `rawHeaders` (name, value, name, value...). */
export function headerView(rawHeaders: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const k = (rawHeaders[i] as string).toLowerCase()
    const v = rawHeaders[i + 1] as string
    const prev = out.get(k)
    out.set(k, prev === undefined ? v : `${prev}, ${v}`)
  }
  return out
}

/**
 * Does the request satisfy one rule? Method, path and host full-match their RE2 patterns;
 * each `headers` entry (`Name` or `Name: value`) must be present (with that value);
 * each `headerMatches` entry without a mismatch action must be present with its value
 * (a secret-valued one cannot be resolved here and fails closed). Mismatch actions (LOG, ADD,
 * DELETE, REPLACE) never deny.
 */
export function httpRuleAllows(rule: HttpRule, req: HttpRequestView): boolean {
  if (rule.method !== undefined && !compileFullMatch(rule.method).test(req.method)) return false
  if (rule.path !== undefined && !compileFullMatch(rule.path).test(req.path)) return false
  if (rule.host !== undefined && !compileFullMatch(rule.host).test(req.host)) return false
  for (const h of rule.headers ?? []) {
    const colon = h.indexOf(':')
    const name = (colon < 0 ? h : h.slice(0, colon)).trim().toLowerCase()
    const value = colon < 0 ? '' : h.slice(colon + 1).trim()
    const got = req.headers.get(name)
    if (got === undefined) return false
    if (value !== '' && got !== value) return false
  }
  for (const m of rule.headerMatches ?? []) {
    if (m.mismatch) continue
    if (m.secret) return false
    const got = req.headers.get(m.name.toLowerCase())
    if (got === undefined) return false
    if (m.value !== undefined && got !== m.value) return false
  }
  return true
}

/** A header edit of a `headerMatches` mismatch action (Cilium: ADD, DELETE, REPLACE). */
export interface HeaderEdit {
  op: 'add' | 'delete' | 'replace'
  name: string
  value?: string
}

/**
 * The edits a rule's `headerMatches` mismatch actions ask for on this request: ADD appends the
 * header with the rule's value, DELETE removes the header, REPLACE sets it to the rule's value —
 * each only when the header's value does not match. LOG only reports (no edit).
 */
export function headerEdits(rule: HttpRule, req: HttpRequestView): HeaderEdit[] {
  const out: HeaderEdit[] = []
  for (const m of rule.headerMatches ?? []) {
    if (!m.mismatch || m.mismatch === 'LOG' || m.secret) continue
    const got = req.headers.get(m.name.toLowerCase())
    if (got !== undefined && (m.value === undefined || got === m.value)) continue
    if (m.mismatch === 'ADD') out.push({ op: 'add', name: m.name, value: m.value ?? '' })
    else if (m.mismatch === 'DELETE') out.push({ op: 'delete', name: m.name })
    else out.push({ op: 'replace', name: m.name, value: m.value ?? '' })
  }
  return out
}

/** Apply header edits to name/value pairs (a new array). */
export function applyHeaderEdits(raw: readonly string[], edits: readonly HeaderEdit[]): string[] {
  let out = [...raw]
  for (const e of edits) {
    const lower = e.name.toLowerCase()
    if (e.op === 'add') {
      out.push(e.name, e.value ?? '')
      continue
    }
    const kept: string[] = []
    for (let i = 0; i + 1 < out.length; i += 2)
      if ((out[i] as string).toLowerCase() !== lower)
        kept.push(out[i] as string, out[i + 1] as string)
    if (e.op === 'replace') kept.push(e.name, e.value ?? '')
    out = kept
  }
  return out
}

/** The verdict of one request: allowed (by which rule, with which header edits) or denied. */
export type HttpVerdict =
  | { allowed: true; ruleId?: string; index?: number; edits?: HeaderEdit[] }
  | { allowed: false; reason: 'no-policy' | 'no-rule-matched' | 'parser-mismatch' }

/**
 * Evaluate a request against the L7 policy of its flow. `undefined` policy denies (fail closed).
 */
export function evaluateHttp(policy: L7Policy | undefined, req: HttpRequestView): HttpVerdict {
  if (!policy) return { allowed: false, reason: 'no-policy' }
  if (policy.parser !== 'http') return { allowed: false, reason: 'parser-mismatch' }
  if (policy.wildcard) return { allowed: true }
  for (const r of policy.rules) {
    if (r.rules.parser !== 'http') continue
    const i = r.rules.http.findIndex((rule) => httpRuleAllows(rule, req))
    if (i >= 0) {
      const edits = headerEdits(r.rules.http[i] as HttpRule, req)
      return edits.length
        ? { allowed: true, ruleId: r.id, index: i, edits }
        : { allowed: true, ruleId: r.id, index: i }
    }
  }
  return { allowed: false, reason: 'no-rule-matched' }
}
