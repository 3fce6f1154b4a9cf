/**
 * Stable error codes of @membrane/bandwidth.
 *
 * - `INVALID_QUANTITY`: the text is not a Kubernetes resource quantity.
 * - `NOT_POSITIVE`: a rate of zero or below.
 * - `TOO_SMALL`: a rate below 1 kbit/s (the lower bound Kubernetes' kubelet uses too).
 * - `TOO_LARGE`: a rate above 1 Pbit/s (kubelet's upper bound), or an exponent out of range.
 * - `INVALID_OPTION`: a bad argument to a function (endpoint id, horizon, device name...).
 * - `INVALID_VALUE`: a map key/value buffer of the wrong size.
 * - `NOT_SUPPORTED`: the kernel lacks what was asked for (for example sch_fq).
 * - `COMMAND_FAILED`: a host command (ip, tc) failed.
 */
export const BandwidthErrorCode = {
  INVALID_QUANTITY: 'INVALID_QUANTITY',
  NOT_POSITIVE: 'NOT_POSITIVE',
  TOO_SMALL: 'TOO_SMALL',
  TOO_LARGE: 'TOO_LARGE',
  INVALID_OPTION: 'INVALID_OPTION',
  INVALID_VALUE: 'INVALID_VALUE',
  NOT_SUPPORTED: 'NOT_SUPPORTED',
  COMMAND_FAILED: 'COMMAND_FAILED',
} as const

/** One of {@link BandwidthErrorCode}. */
export type BandwidthErrorCode = (typeof BandwidthErrorCode)[keyof typeof BandwidthErrorCode]

/** Details an error can carry: the annotation (or option path) and the offending value. */
export interface BandwidthErrorDetails {
  /** Annotation name or option path, e.g. `kubernetes.io/egress-bandwidth` or `horizonNs`. */
  field?: string
  /** The offending input, as given. */
  value?: unknown
  cause?: unknown
}

/** Every error this package throws. `code` is stable; `field` and `value` name the input. */
export class BandwidthError extends Error {
  readonly code: BandwidthErrorCode
  readonly field: string | undefined
  readonly value: unknown

  constructor(code: BandwidthErrorCode, message: string, details: BandwidthErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'BandwidthError'
    this.code = code
    this.field = details.field
    this.value = details.value
  }
}
