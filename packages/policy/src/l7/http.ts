/**
 * HTTP L7 rules: the rule type, its validation and its matching. This one module decides HTTP
 * verdicts for `PolicyRepository.trace` (and `membrane policy trace`) and for the
 * @membrane/l7proxy HTTP proxy, so the two cannot disagree.
 *
 * Semantics (Cilium's `PortRuleHTTP`, as Cilium hands it to Envoy):
 * - `method`, `path`, `host`: RE2 patterns matched against the whole value ({@link compileRe2}).
 *   `path` is the request target as sent (path and query); `host` the Host header.
 * - `headers` entries are split at the first space: `Name` (or `Name:`) requires the header to
 *   be present; `Name value` and `Name: value` require it with exactly that value (everything
 *   after the first space, so `Name:  v` wants ` v`). Header names compare case-insensitively,
 *   values exactly. A name that is not an HTTP token (`X-Key:v`) is rejected when parsing.
 * - `headerMatches`: without a `mismatch` action the header must be present, and equal to
 *   `value` when a value is given (an empty value means presence). A `secret` cannot be read
 *   here: as Cilium does when the secret is missing, `value` is used when given, otherwise the
 *   match fails. A `mismatch` action (LOG, ADD, DELETE, REPLACE) never denies; ADD, DELETE and
 *   REPLACE become header edits ({@link headerEdits}).
 * - A request is allowed when any rule matches (all fields of a rule must match).
 * - A header sent several times is seen as its values joined with `, `.
 */
import { PolicyError } from '../errors'
import { arr, type Ctx, join, obj, str } from '../internal/fields'
import { compileRe2, type Re2Pattern, re2SyntaxError } from '../re2'
import type { L7Policy } from '../repository'
import { type L7DenyReason, NO_RULE_MATCHED, precheck, ruleLists } from './verdict'

/** HTTP header match of an L7 rule (`headerMatches`). */
export interface HeaderMatch {
  name: string
  value?: string
  mismatch?: 'LOG' | 'ADD' | 'DELETE' | 'REPLACE'
  /** A secret reference: its value cannot be read here; `value` is the fallback, if any. */
  secret?: { namespace?: string; name: string }
}

/** One HTTP L7 rule. method/path/host are RE2 regular expressions, matched in full. */
export interface HttpRule {
  method?: string
  path?: string
  host?: string
  /** `Name` (presence), `Name value` or `Name: value` strings (split at the first space). */
  headers?: string[]
  headerMatches?: HeaderMatch[]
}

/** An HTTP request as trace() takes it: every field optional, header names in any case. */
export interface HttpRequest {
  method?: string
  /** The request target (path and query). */
  path?: string
  /** Defaults to the `host` header. */
  host?: string
  /**
   * Header name -> value. Names that differ only in case are one header, their values joined
   * with `, ` (as the proxy joins a repeated header).
   */
  headers?: Readonly<Record<string, string>>
}

/**
 * Request header lines as a client sends them (`Name: value`) -> the `headers` of an
 * {@link HttpRequest}: names lower-cased, a repeated name's values joined with `, ` (as the
 * proxy joins them). The policy and agent CLIs' `--http-header` flags use it.
 *
 * @throws PolicyError `INVALID_INPUT` for a line without `Name:`.
 * @example parseRequestHeaderLines(['X-Token: a', 'x-token: b']) // { 'x-token': 'a, b' }
 */
export function parseRequestHeaderLines(lines: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = colon < 0 ? '' : line.slice(0, colon).trim().toLowerCase()
    if (!name)
      throw new PolicyError('INVALID_INPUT', `invalid --http-header ${JSON.stringify(line)}`, {
        path: 'http-header',
        expected: '"Name: value", as an HTTP request sends it',
        got: line,
      })
    const value = line.slice(colon + 1).trim()
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`
  }
  return out
}

/** The parts of a request the rules look at, as the proxy sees them. */
export interface HttpRequestView {
  method: string
  /** The request target as sent (`/path?query`). */
  path: string
  /** Host header (or authority). */
  host: string
  /** Header value by lower-case name (repeated headers joined with `, `). */
  headers: { get(lowerCaseName: string): string | undefined }
}

/**
 * The view of a trace() request: missing fields are empty, the host defaults to the `host`
 * header, header names are lower-cased.
 *
 * @example httpRequestView({ method: 'GET', path: '/', headers: { Host: 'a' } }).host // 'a'
 */
export function httpRequestView(req: HttpRequest): HttpRequestView {
  const headers = new Map<string, string>()
  for (const [k, v] of Object.entries(req.headers ?? {})) {
    const name = k.toLowerCase()
    const prev = headers.get(name)
    headers.set(name, prev === undefined ? v : `${prev}, ${v}`)
  }
  return {
    method: req.method ?? '',
    path: req.path ?? '',
    host: req.host ?? headers.get('host') ?? '',
    headers,
  }
}

/** What one `headers` entry requires: the header (lower-case name), with `value` when given. */
export interface HeaderRequirement {
  name: string
  value?: string
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Split a `headers` entry as Cilium does: at the first space; the name loses trailing colons.
 * Returns undefined when the name is not an HTTP token (such an entry can never match).
 *
 * @example parseHeaderEntry('X-Token: s3cr3t') // { name: 'x-token', value: 's3cr3t' }
 * @example parseHeaderEntry('X-Present') // { name: 'x-present' }
 */
export function parseHeaderEntry(entry: string): HeaderRequirement | undefined {
  const space = entry.indexOf(' ')
  const name = (space < 0 ? entry : entry.slice(0, space)).replace(/:+$/, '')
  if (!TOKEN.test(name)) return undefined
  return space < 0
    ? { name: name.toLowerCase() }
    : { name: name.toLowerCase(), value: entry.slice(space + 1) }
}

/** Parse and validate one `http[]` rule; `path` is its field path. Internal to the parser. */
export function parseHttpRule(ctx: Ctx, r: unknown, p: string): HttpRule {
  const ro = obj(ctx, r, p, ['method', 'path', 'host', 'headers', 'headerMatches'])
  const rule: HttpRule = {}
  const method = regexField(ctx, ro.method, join(p, 'method'))
  if (method !== undefined) rule.method = method
  const hp = regexField(ctx, ro.path, join(p, 'path'))
  if (hp !== undefined) rule.path = hp
  const host = regexField(ctx, ro.host, join(p, 'host'))
  if (host !== undefined) rule.host = host
  const headers = arr(ctx, ro.headers, join(p, 'headers'))
  if (headers) {
    rule.headers = headers.map((h, j) => {
      const at = join(join(p, 'headers'), j)
      const hs = str(ctx, h, at)
      if (!hs || !parseHeaderEntry(hs))
        ctx.fail(
          'INVALID_L7',
          at,
          hs ? 'invalid header name' : 'empty header',
          'a "Name", "Name value" or "Name: value" string (Name an HTTP token)',
          h,
        )
      return hs
    })
  }
  const hm = arr(ctx, ro.headerMatches, join(p, 'headerMatches'))
  if (hm)
    rule.headerMatches = hm.map((h, j) =>
      parseHeaderMatch(ctx, h, join(join(p, 'headerMatches'), j)),
    )
  return rule
}

function regexField(ctx: Ctx, v: unknown, path: string): string | undefined {
  const s = str(ctx, v, path)
  if (s === undefined) return undefined
  const err = re2SyntaxError(s)
  if (err)
    ctx.fail('INVALID_REGEX', path, `invalid RE2 regular expression: ${err}`, 'an RE2 pattern', s)
  return s
}

const MISMATCH = ['LOG', 'ADD', 'DELETE', 'REPLACE'] as const

function parseHeaderMatch(ctx: Ctx, h: unknown, p: string): HeaderMatch {
  const ho = obj(ctx, h, p, ['name', 'value', 'secret', 'mismatch'])
  const name = str(ctx, ho.name, join(p, 'name'))
  if (!name) ctx.fail('MISSING_FIELD', join(p, 'name'), 'missing header name', 'a header name')
  if (!TOKEN.test(name))
    ctx.fail('INVALID_L7', join(p, 'name'), 'invalid header name', 'an HTTP token', name)
  const m: HeaderMatch = { name }
  const value = str(ctx, ho.value, join(p, 'value'))
  if (value !== undefined) m.value = value
  const mm = str(ctx, ho.mismatch, join(p, 'mismatch'))
  if (mm !== undefined) {
    if (!(MISMATCH as readonly string[]).includes(mm))
      ctx.fail(
        'INVALID_L7',
        join(p, 'mismatch'),
        'invalid mismatch action',
        'LOG, ADD, DELETE or REPLACE',
        mm,
      )
    m.mismatch = mm as NonNullable<HeaderMatch['mismatch']>
  }
  if (ho.secret !== undefined && ho.secret !== null) {
    const sp = join(p, 'secret')
    const so = obj(ctx, ho.secret, sp, ['namespace', 'name'])
    const sn = str(ctx, so.name, join(sp, 'name'))
    if (!sn) ctx.fail('MISSING_FIELD', join(sp, 'name'), 'missing secret name', 'a secret name')
    const sns = str(ctx, so.namespace, join(sp, 'namespace'))
    m.secret = sns === undefined ? { name: sn } : { namespace: sns, name: sn }
  }
  return m
}

/** A rule with its patterns compiled and its header entries split, built once per rule. */
interface Compiled {
  method?: Re2Pattern
  path?: Re2Pattern
  host?: Re2Pattern
  headers: HeaderRequirement[]
  /** False when an entry can never match (a name that is not a token). */
  headersValid: boolean
}

const compiled = new WeakMap<HttpRule, Compiled>()
const patterns = new Map<string, Re2Pattern>()

function pattern(p: string): Re2Pattern {
  let c = patterns.get(p)
  if (!c) {
    c = compileRe2(p)
    if (patterns.size >= 4096) patterns.clear()
    patterns.set(p, c)
  }
  return c
}

function compile(rule: HttpRule): Compiled {
  let c = compiled.get(rule)
  if (c) return c
  const headers: HeaderRequirement[] = []
  let headersValid = true
  for (const h of rule.headers ?? []) {
    const req = parseHeaderEntry(h)
    if (req) headers.push(req)
    else headersValid = false
  }
  c = { headers, headersValid }
  if (rule.method !== undefined) c.method = pattern(rule.method)
  if (rule.path !== undefined) c.path = pattern(rule.path)
  if (rule.host !== undefined) c.host = pattern(rule.host)
  compiled.set(rule, c)
  return c
}

/** The value a `headerMatches` entry compares with: `value`, or presence when empty. */
function wanted(m: HeaderMatch): string | undefined {
  return m.value === undefined || m.value === '' ? undefined : m.value
}

/**
 * Does the request satisfy one HTTP rule (see the module's semantics)? Throws
 * {@link Re2SyntaxError} for a pattern the parser would have rejected.
 *
 * @example httpRuleMatches({ method: 'GET', path: '/v1/.*' }, httpRequestView({ method: 'GET', path: '/v1/x' })) // true
 */
export function httpRuleMatches(rule: HttpRule, req: HttpRequestView): boolean {
  const c = compile(rule)
  if (c.method && !c.method.fullMatch(req.method)) return false
  if (c.path && !c.path.fullMatch(req.path)) return false
  if (c.host && !c.host.fullMatch(req.host)) return false
  if (!c.headersValid) return false
  for (const h of c.headers) {
    const got = req.headers.get(h.name)
    if (got === undefined) return false
    if (h.value !== undefined && got !== h.value) return false
  }
  for (const m of rule.headerMatches ?? []) {
    if (m.mismatch) continue // mismatch actions log or edit, they do not deny
    const want = wanted(m)
    if (m.secret && want === undefined) return false // the secret's value is unknown here
    const got = req.headers.get(m.name.toLowerCase())
    if (got === undefined) return false
    if (want !== undefined && got !== want) return false
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
 * each only when the header's value does not match. LOG only reports (no edit); a secret-valued
 * entry without a fallback value edits nothing.
 */
export function headerEdits(rule: HttpRule, req: HttpRequestView): HeaderEdit[] {
  const out: HeaderEdit[] = []
  for (const m of rule.headerMatches ?? []) {
    if (!m.mismatch || m.mismatch === 'LOG') continue
    const want = wanted(m)
    if (m.secret && want === undefined) continue
    const got = req.headers.get(m.name.toLowerCase())
    if (got !== undefined && (want === undefined || got === want)) continue
    if (m.mismatch === 'ADD') out.push({ op: 'add', name: m.name, value: m.value ?? '' })
    else if (m.mismatch === 'DELETE') out.push({ op: 'delete', name: m.name })
    else out.push({ op: 'replace', name: m.name, value: m.value ?? '' })
  }
  return out
}

/** The verdict of one request: allowed (by which rule, with which header edits) or denied. */
export type HttpVerdict =
  | { allowed: true; ruleId?: string; index?: number; edits?: HeaderEdit[] }
  | { allowed: false; reason: L7DenyReason }

/**
 * Evaluate a request against the L7 policy of its flow (`repo.l7Rules(...)`): the first rule
 * that matches allows it; a `wildcard` policy allows everything; `undefined` denies (fail
 * closed). This is the verdict of both trace() and the proxy.
 *
 * @example evaluateHttp(repo.l7Rules(endpoint, query), httpRequestView({ method: 'GET', path: '/' }))
 */
export function evaluateHttp(policy: L7Policy | undefined, req: HttpRequestView): HttpVerdict {
  const pre = precheck(policy, 'http')
  if (pre) return pre
  for (const r of ruleLists(policy as L7Policy, 'http')) {
    const i = r.rules.http.findIndex((rule) => httpRuleMatches(rule, req))
    if (i >= 0) {
      const edits = headerEdits(r.rules.http[i] as HttpRule, req)
      return edits.length
        ? { allowed: true, ruleId: r.id, index: i, edits }
        : { allowed: true, ruleId: r.id, index: i }
    }
  }
  return NO_RULE_MATCHED
}
