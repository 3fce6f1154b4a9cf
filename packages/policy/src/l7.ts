/**
 * L7 rule evaluation (for trace and as the reference the proxy can follow).
 */
import { matchFqdn } from './dns'
import type { DnsRule, HttpRule, KafkaRule, L7Rules } from './model'
import { compileRe2, type Re2Pattern } from './re2'

/** An HTTP request as trace() takes it. */
export interface HttpRequest {
  method?: string
  path?: string
  host?: string
  headers?: Readonly<Record<string, string>>
}

/** A Kafka request as trace() takes it. */
export interface KafkaRequest {
  /** API name (`produce`, `fetch`, ...) or number. */
  apiKey: string | number
  apiVersion?: number
  clientID?: string
  topic?: string
}

/** A DNS query as trace() takes it. */
export interface DnsQuery {
  name: string
}

const reCache = new Map<string, Re2Pattern>()
function re(p: string): Re2Pattern {
  let c = reCache.get(p)
  if (!c) {
    c = compileRe2(p)
    if (reCache.size > 10_000) reCache.clear()
    reCache.set(p, c)
  }
  return c
}

function headerValue(
  headers: Readonly<Record<string, string>> | undefined,
  name: string,
): string | undefined {
  if (!headers) return undefined
  const want = name.toLowerCase()
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === want) return v
  return undefined
}

/**
 * Does the request satisfy one HTTP rule? Regexes are matched in full (RE2 semantics); every
 * `headers` entry must be present (with the value, when given); `headerMatches` without a
 * mismatch action must match (a secret-valued match cannot be checked here and fails closed).
 */
export function httpRuleMatches(rule: HttpRule, req: HttpRequest): boolean {
  if (rule.method !== undefined && !re(rule.method).fullMatch(req.method ?? '')) return false
  if (rule.path !== undefined && !re(rule.path).fullMatch(req.path ?? '')) return false
  if (
    rule.host !== undefined &&
    !re(rule.host).fullMatch(req.host ?? headerValue(req.headers, 'host') ?? '')
  )
    return false
  for (const h of rule.headers ?? []) {
    // `Name: value`, `Name value` or just `Name` (presence).
    const t = h.trim()
    const colon = t.indexOf(':')
    const space = t.search(/\s/)
    const cut = colon >= 0 ? colon : space
    const name = (cut < 0 ? t : t.slice(0, cut)).trim()
    const value = cut < 0 ? undefined : t.slice(cut + 1).trim()
    const got = headerValue(req.headers, name)
    if (got === undefined) return false
    if (value !== undefined && value !== '' && got !== value) return false
  }
  for (const m of rule.headerMatches ?? []) {
    if (m.mismatch) continue // mismatch actions log/edit, they do not deny
    if (m.secret) return false
    const got = headerValue(req.headers, m.name)
    if (got === undefined) return false
    if (m.value !== undefined && got !== m.value) return false
  }
  return true
}

const KAFKA_KEYS: Record<string, number> = {
  produce: 0,
  fetch: 1,
  offsets: 2,
  metadata: 3,
  leaderandisr: 4,
  stopreplica: 5,
  updatemetadata: 6,
  controlledshutdown: 7,
  offsetcommit: 8,
  offsetfetch: 9,
  findcoordinator: 10,
  joingroup: 11,
  heartbeat: 12,
  leavegroup: 13,
  syncgroup: 14,
  describegroups: 15,
  listgroups: 16,
  saslhandshake: 17,
  apiversions: 18,
  createtopics: 19,
  deletetopics: 20,
  deleterecords: 21,
  initproducerid: 22,
  offsetforleaderepoch: 23,
  addpartitionstotxn: 24,
  addoffsetstotxn: 25,
  endtxn: 26,
  writetxnmarkers: 27,
  txnoffsetcommit: 28,
  describeacls: 29,
  createacls: 30,
  deleteacls: 31,
  describeconfigs: 32,
  alterconfigs: 33,
}

/** Kafka API keys of the `produce` and `consume` roles (as Cilium defines them). */
export const KAFKA_ROLE_KEYS = {
  produce: [0, 3, 18],
  consume: [1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18],
} as const

/** Kafka API name -> number. */
export function kafkaApiKey(k: string | number): number | undefined {
  return typeof k === 'number' ? k : KAFKA_KEYS[k.toLowerCase()]
}

/** Does the request satisfy one Kafka rule? */
export function kafkaRuleMatches(rule: KafkaRule, req: KafkaRequest): boolean {
  const key = kafkaApiKey(req.apiKey)
  if (key === undefined) return false
  if (rule.role && !(KAFKA_ROLE_KEYS[rule.role] as readonly number[]).includes(key)) return false
  if (rule.apiKey !== undefined && KAFKA_KEYS[rule.apiKey] !== key) return false
  if (rule.apiVersion !== undefined && Number(rule.apiVersion) !== req.apiVersion) return false
  if (rule.clientID !== undefined && rule.clientID !== req.clientID) return false
  if (rule.topic !== undefined && rule.topic !== req.topic) return false
  return true
}

/** Does the query satisfy one DNS rule? */
export function dnsRuleMatches(rule: DnsRule, q: DnsQuery): boolean {
  return matchFqdn(rule, q.name)
}

/** The L7 request of one of the three parsers. */
export type L7Request =
  | { parser: 'http'; http: HttpRequest }
  | { parser: 'kafka'; kafka: KafkaRequest }
  | { parser: 'dns'; dns: DnsQuery }

/** Index of the first rule in `rules` that the request satisfies, or -1. */
export function l7Match(rules: L7Rules, req: L7Request): number {
  if (rules.parser !== req.parser) return -1
  switch (rules.parser) {
    case 'http':
      return rules.http.findIndex((r) => httpRuleMatches(r, (req as { http: HttpRequest }).http))
    case 'kafka':
      return rules.kafka.findIndex((r) =>
        kafkaRuleMatches(r, (req as { kafka: KafkaRequest }).kafka),
      )
    case 'dns':
      return rules.dns.findIndex((r) => dnsRuleMatches(r, (req as { dns: DnsQuery }).dns))
  }
}
