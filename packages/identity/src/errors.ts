/**
 * Error codes of {@link IdentityError}. Each code is stable; match on `error.code`, not on the
 * message.
 */
export const IdentityErrorCode = {
  /** A label string or object is malformed (bad source, empty key, forbidden character...). */
  INVALID_LABEL: 'INVALID_LABEL',
  /** An IP address or CIDR prefix could not be parsed. */
  INVALID_PREFIX: 'INVALID_PREFIX',
  /** A numeric identity is out of range, or a label set cannot be given an identity. */
  INVALID_IDENTITY: 'INVALID_IDENTITY',
  /** An option passed to a constructor is invalid (cluster id, id range, node name...). */
  INVALID_OPTION: 'INVALID_OPTION',
  /** Every identity of the allocation range is in use. */
  EXHAUSTED: 'EXHAUSTED',
  /** The allocator (or ipcache sync) was closed. */
  CLOSED: 'CLOSED',
  /**
   * The shared store (etcd) could not be reached within the allocation timeout. Retryable: the
   * same call succeeds once the store is back.
   */
  BACKEND_UNAVAILABLE: 'BACKEND_UNAVAILABLE',
  /** The store holds something this package did not write (a corrupt or foreign key). */
  CORRUPT_STATE: 'CORRUPT_STATE',
  /**
   * An optional peer dependency is not installed (`etcd3` for `@membrane/identity/etcd`); the
   * message names the package to install.
   */
  DEPENDENCY_MISSING: 'DEPENDENCY_MISSING',
} as const

export type IdentityErrorCode = (typeof IdentityErrorCode)[keyof typeof IdentityErrorCode]

/**
 * The one error class of `@membrane/identity`. `input` names what was being parsed or
 * allocated, `retryable` says whether the same call may succeed later.
 */
export class IdentityError extends Error {
  readonly code: IdentityErrorCode
  readonly input: unknown
  readonly retryable: boolean

  constructor(
    code: IdentityErrorCode,
    message: string,
    options: { input?: unknown; cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'IdentityError'
    this.code = code
    this.input = options.input
    this.retryable = options.retryable ?? code === IdentityErrorCode.BACKEND_UNAVAILABLE
  }
}
