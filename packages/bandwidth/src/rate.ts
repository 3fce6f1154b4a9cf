import { BandwidthError } from './errors'
import { parseQuantity, quantityCeil } from './quantity'

/** Pod annotation that limits the pod's egress (traffic it sends). */
export const EGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/egress-bandwidth'
/** Pod annotation that limits the pod's ingress (traffic it receives). */
export const INGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/ingress-bandwidth'

/** Lowest accepted rate, 1 kbit/s (kubelet's lower bound for these annotations). */
export const MIN_BITS_PER_SECOND = 1_000n
/** Highest accepted rate, 1 Pbit/s (kubelet's upper bound). */
export const MAX_BITS_PER_SECOND = 1_000_000_000_000_000n

/** A validated rate limit. */
export interface BandwidthLimit {
  /** Bits per second, rounded up to an integer (as Kubernetes' `Quantity.Value()`). */
  readonly bitsPerSecond: bigint
  /** Bytes per second: `floor(bitsPerSecond / 8)`, what the BPF throttle entry holds. */
  readonly bytesPerSecond: number
  /** The quantity text it came from. */
  readonly text: string
}

/**
 * Parse one bandwidth quantity (bits per second, Kubernetes resource-quantity syntax) into a
 * validated limit: `10M` is 10,000,000 bit/s = 1,250,000 B/s; `10Mi` is 1,310,720 B/s.
 * Zero, negative, below 1k or above 1P bit/s is an error, never a silent "no limit".
 *
 * @param field names the input in errors, e.g. the annotation
 * @throws BandwidthError `INVALID_QUANTITY` | `NOT_POSITIVE` | `TOO_SMALL` | `TOO_LARGE`
 * @example parseBandwidth('10M').bytesPerSecond // 1250000
 */
export function parseBandwidth(text: string, field?: string): BandwidthLimit {
  const q = parseQuantity(text, field)
  const where = field ? `${field}: ` : ''
  if (q.numerator <= 0n) {
    throw new BandwidthError(
      'NOT_POSITIVE',
      `${where}${JSON.stringify(text)} is not a positive rate (expected bits per second > 0, ` +
        'e.g. "10M"; remove the annotation for no limit)',
      { field, value: text },
    )
  }
  const bits = quantityCeil(q)
  if (bits < MIN_BITS_PER_SECOND) {
    throw new BandwidthError(
      'TOO_SMALL',
      `${where}${JSON.stringify(text)} is ${bits} bit/s, below the minimum of 1k (1000 bit/s)`,
      { field, value: text },
    )
  }
  if (bits > MAX_BITS_PER_SECOND) {
    throw new BandwidthError(
      'TOO_LARGE',
      `${where}${JSON.stringify(text)} is ${bits} bit/s, above the maximum of 1P (10^15 bit/s)`,
      { field, value: text },
    )
  }
  return { bitsPerSecond: bits, bytesPerSecond: Number(bits / 8n), text }
}

/** The limits of one pod, from its annotations. A direction without annotation is absent. */
export interface BandwidthAnnotations {
  egress?: BandwidthLimit
  ingress?: BandwidthLimit
}

/**
 * Read `kubernetes.io/egress-bandwidth` and `kubernetes.io/ingress-bandwidth` from a pod's
 * annotations. Both are validated before anything is returned; when either is invalid the
 * error names that annotation and its value (both problems when both are invalid).
 *
 * @throws BandwidthError of the first problem; `cause` holds an array when both are invalid
 * @example
 * parseBandwidthAnnotations({ 'kubernetes.io/egress-bandwidth': '10M' })
 * // { egress: { bitsPerSecond: 10000000n, bytesPerSecond: 1250000, text: '10M' } }
 */
export function parseBandwidthAnnotations(
  annotations: Readonly<Record<string, string | undefined>> | undefined,
): BandwidthAnnotations {
  const out: BandwidthAnnotations = {}
  const errors: BandwidthError[] = []
  for (const [key, name] of [
    ['egress', EGRESS_BANDWIDTH_ANNOTATION],
    ['ingress', INGRESS_BANDWIDTH_ANNOTATION],
  ] as const) {
    const text = annotations?.[name]
    if (text === undefined) continue
    try {
      out[key] = parseBandwidth(text, name)
    } catch (error) {
      if (!(error instanceof BandwidthError)) throw error
      errors.push(error)
    }
  }
  const [first, second] = errors
  if (first && second) {
    throw new BandwidthError(first.code, `${first.message}; and ${second.message}`, {
      field: first.field,
      value: first.value,
      cause: errors,
    })
  }
  if (first) throw first
  return out
}
