/**
 * Redaction of sensitive L7 data in flows, after Hubble's `hubble-redact-*` options: the URL
 * query (`hubble-redact-http-urlquery`), the password of URL user info
 * (`hubble-redact-http-userinfo`), HTTP header values by an allow or a deny list
 * (`hubble-redact-http-headers-allow` / `-deny`) and the Kafka API key
 * (`hubble-redact-kafka-apikey`). Unlike Hubble (off unless `hubble-redact-enabled`), the
 * observer redacts by default: flows are read by more people than the workloads' owners.
 */
import type { Flow } from './types'

/** The value that replaces a redacted one (Hubble's marker). */
export const REDACTED = 'HUBBLE_REDACTED'

/** What {@link redactFlow} hides. */
export interface RedactOptions {
  /** Redact at all. Default true. */
  enabled?: boolean
  /** Drop the query string of HTTP URLs. Default true. */
  httpUrlQuery?: boolean
  /** Replace the password of `user:password@` in HTTP URLs. Default true. */
  httpUserInfo?: boolean
  /**
   * Header names (any case) whose values are kept; every other value is redacted. When set,
   * `httpHeadersDeny` is ignored.
   */
  httpHeadersAllow?: string[]
  /** Header names (any case) whose values are redacted. Default {@link DEFAULT_REDACTED_HEADERS}. */
  httpHeadersDeny?: string[]
  /** Redact the Kafka API key name. Default false (it is the request type, not a secret). */
  kafkaApiKey?: boolean
}

/** Headers that carry credentials, redacted unless configured otherwise. */
export const DEFAULT_REDACTED_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'x-auth-token',
]

/**
 * Redact the L7 part of a flow in place (and return it). A flow without L7 data is unchanged.
 *
 * @example
 * redactFlow(flow, { httpHeadersDeny: ['authorization', 'x-tenant'] })
 */
export function redactFlow(flow: Flow, options: RedactOptions = {}): Flow {
  if (options.enabled === false || !flow.l7) return flow
  const http = flow.l7.http
  if (http) {
    if (http.url !== undefined) http.url = redactUrl(http.url, options)
    if (http.headers) {
      const allow = options.httpHeadersAllow?.map((h) => h.toLowerCase())
      const deny = (options.httpHeadersDeny ?? DEFAULT_REDACTED_HEADERS).map((h) => h.toLowerCase())
      http.headers = http.headers.map(({ key, value }) => {
        const k = key.toLowerCase()
        const hide = allow ? !allow.includes(k) : deny.includes(k)
        return { key, value: hide ? REDACTED : value }
      })
    }
  }
  if (options.kafkaApiKey === true && flow.l7.kafka?.apiKey !== undefined) {
    flow.l7.kafka.apiKey = REDACTED
  }
  return flow
}

function redactUrl(url: string, options: RedactOptions): string {
  let out = url
  if (options.httpUrlQuery !== false) {
    // The query ends at the fragment; a '?' inside the fragment is not a query.
    const hash = out.indexOf('#')
    const q = out.indexOf('?')
    if (q >= 0 && (hash < 0 || q < hash)) out = out.slice(0, q) + (hash >= 0 ? out.slice(hash) : '')
  }
  if (options.httpUserInfo !== false) {
    // scheme://user:password@host -> scheme://user:HUBBLE_REDACTED@host
    out = out.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:?#]*):[^/@?#]*@/i, `$1:${REDACTED}@`)
  }
  return out
}
