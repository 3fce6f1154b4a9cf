/**
 * Stable error codes of @membrane/policy. Each one names a class of problem; the message, the
 * document index and the field path say exactly where.
 */
export const PolicyErrorCode = {
  /** The text is not valid YAML or JSON. */
  SYNTAX: 'SYNTAX',
  /** A document is not an object with apiVersion/kind/metadata/spec. */
  INVALID_DOCUMENT: 'INVALID_DOCUMENT',
  /** `kind`/`apiVersion` is not NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy. */
  UNSUPPORTED_KIND: 'UNSUPPORTED_KIND',
  /** A required field is missing. */
  MISSING_FIELD: 'MISSING_FIELD',
  /** A field has the wrong JSON type. */
  INVALID_TYPE: 'INVALID_TYPE',
  /** A field has a value outside what the API accepts. */
  INVALID_VALUE: 'INVALID_VALUE',
  /** A field the policy API does not define. */
  UNKNOWN_FIELD: 'UNKNOWN_FIELD',
  /** A field the API defines but this compiler does not implement. */
  UNSUPPORTED_FIELD: 'UNSUPPORTED_FIELD',
  /** A port, port name, port range or protocol is invalid. */
  INVALID_PORT: 'INVALID_PORT',
  /** A CIDR or an `except` entry is invalid (or not inside its CIDR). */
  INVALID_CIDR: 'INVALID_CIDR',
  /** A label selector (matchLabels / matchExpressions) is invalid. */
  INVALID_SELECTOR: 'INVALID_SELECTOR',
  /** An L7 rule is invalid (wrong protocol, wrong direction, bad field). */
  INVALID_L7: 'INVALID_L7',
  /** A regular expression (HTTP method/path/host) does not parse as RE2 syntax. */
  INVALID_REGEX: 'INVALID_REGEX',
  /** Fields that Cilium does not allow together (e.g. toEndpoints with toCIDR, icmps with toPorts). */
  INVALID_COMBINATION: 'INVALID_COMBINATION',
  /** The same policy (kind/namespace/name) appears twice in one batch. */
  DUPLICATE_POLICY: 'DUPLICATE_POLICY',
  /** Two rules put different L7 parsers on the same port of the same endpoint. */
  L7_PARSER_CONFLICT: 'L7_PARSER_CONFLICT',
  /** The text exceeds a parsing limit (length, nesting depth, alias expansions). */
  LIMIT: 'LIMIT',
  /** A trace / lookup input is invalid. */
  INVALID_INPUT: 'INVALID_INPUT',
} as const

/** One of {@link PolicyErrorCode}. */
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode]

/** Where an error is, and what was expected there. */
export interface PolicyErrorDetails {
  /** Index of the document in the parsed text (0-based; counts YAML documents and List items). */
  documentIndex?: number
  /** `Kind namespace/name` of the document, when known. */
  document?: string
  /** Field path inside the document, e.g. `specs[0].ingress[1].toPorts[0].ports[0].port`. */
  path?: string
  /** What the field should have been. */
  expected?: string
  /** The offending value, when short enough to show. */
  got?: unknown
  cause?: unknown
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing'
  let s: string
  try {
    s = JSON.stringify(v) ?? String(v)
  } catch {
    s = String(v)
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}

/**
 * The one error class of this package. `code` is stable (see {@link PolicyErrorCode});
 * `documentIndex`, `path` and `expected` locate the problem.
 *
 * @example
 * try { parsePolicyDocuments(text) } catch (e) {
 *   if (e instanceof PolicyError && e.code === 'INVALID_PORT') console.log(e.path)
 * }
 */
export class PolicyError extends Error {
  override readonly name = 'PolicyError'
  readonly code: PolicyErrorCode
  readonly documentIndex: number | undefined
  readonly document: string | undefined
  readonly path: string | undefined
  readonly expected: string | undefined
  readonly got: unknown

  constructor(code: PolicyErrorCode, reason: string, details: PolicyErrorDetails = {}) {
    const where: string[] = []
    if (details.documentIndex !== undefined) {
      where.push(
        `document ${details.documentIndex}${details.document ? ` (${details.document})` : ''}`,
      )
    }
    if (details.path) where.push(details.path)
    let msg = where.length ? `${where.join(': ')}: ${reason}` : reason
    if (details.expected !== undefined) msg += `; expected ${details.expected}`
    if ('got' in details) msg += `, got ${show(details.got)}`
    super(msg, details.cause !== undefined ? { cause: details.cause } : undefined)
    this.code = code
    this.documentIndex = details.documentIndex
    this.document = details.document
    this.path = details.path
    this.expected = details.expected
    this.got = details.got
  }
}

/** Alias kept for readers looking for "the parse error": every parse failure is a PolicyError. */
export { PolicyError as PolicyParseError }
