/**
 * Errors of the L7 proxy. Every error has a stable `code`.
 */

/** Error codes of {@link L7ProxyError}. */
export const L7ProxyErrorCode = {
  /** An option or argument is out of range or of the wrong type. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A listener could not be opened (port in use, permission). */
  LISTEN_FAILED: 'LISTEN_FAILED',
  /** A wire-format parser met bytes it cannot accept (DNS, Kafka). */
  MALFORMED: 'MALFORMED',
  /** A frame or message is larger than the configured limit. */
  TOO_LARGE: 'TOO_LARGE',
  /** The proxy is closed. */
  CLOSED: 'CLOSED',
} as const

/** One of {@link L7ProxyErrorCode}. */
export type L7ProxyErrorCode = (typeof L7ProxyErrorCode)[keyof typeof L7ProxyErrorCode]

/** An error of @membrane/l7proxy: `code` is stable, `path` names the field or input. */
export class L7ProxyError extends Error {
  override readonly name = 'L7ProxyError'
  readonly code: L7ProxyErrorCode
  readonly path: string | undefined

  constructor(
    code: L7ProxyErrorCode,
    message: string,
    options: { path?: string; cause?: unknown } = {},
  ) {
    super(options.path ? `${options.path}: ${message}` : message, { cause: options.cause })
    this.code = code
    this.path = options.path
  }
}

/** A wire-format parse failure: which message, which field, at what byte offset. */
export class WireFormatError extends L7ProxyError {
  readonly offset: number

  constructor(protocol: 'dns' | 'kafka', field: string, offset: number, expected: string) {
    super(L7ProxyErrorCode.MALFORMED, `expected ${expected} at byte ${offset}`, {
      path: `${protocol}.${field}`,
    })
    this.offset = offset
  }
}
