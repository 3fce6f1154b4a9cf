/**
 * Error codes of {@link ClusterError}. Each code is stable; match on `error.code`, not on the
 * message.
 */
export const ClusterErrorCode = {
  /** An option or input is malformed (node name, node IP, pool, mask, key prefix, document key). */
  INVALID_OPTION: 'INVALID_OPTION',
  /** Another live node (a different boot id) holds this node name. */
  NODE_NAME_IN_USE: 'NODE_NAME_IN_USE',
  /** The pod CIDR asked for is claimed by another node, or lies outside the cluster pool. */
  POD_CIDR_TAKEN: 'POD_CIDR_TAKEN',
  /** Every pod CIDR of the cluster pool is claimed. */
  POD_CIDR_EXHAUSTED: 'POD_CIDR_EXHAUSTED',
  /** etcd did not answer in time. Retryable: the same call succeeds once etcd is back. */
  BACKEND_UNAVAILABLE: 'BACKEND_UNAVAILABLE',
  /** etcd holds a value this package did not write (corrupt or foreign). */
  CORRUPT_STATE: 'CORRUPT_STATE',
  /** The registry or document set was closed. */
  CLOSED: 'CLOSED',
} as const

export type ClusterErrorCode = (typeof ClusterErrorCode)[keyof typeof ClusterErrorCode]

/** The one error class of `@membrane/cluster`; `input` names what was refused. */
export class ClusterError extends Error {
  readonly code: ClusterErrorCode
  readonly input: unknown
  readonly retryable: boolean

  constructor(
    code: ClusterErrorCode,
    message: string,
    options: { input?: unknown; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ClusterError'
    this.code = code
    this.input = options.input
    this.retryable = code === ClusterErrorCode.BACKEND_UNAVAILABLE
  }
}
