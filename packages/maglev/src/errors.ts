/**
 * The stable error codes of @membrane/maglev. Each names one kind of bad input.
 */
export const MaglevErrorCode = {
  /** `tableSize` is not one of Cilium's supported primes (see `TABLE_SIZES`). */
  INVALID_TABLE_SIZE: 'INVALID_TABLE_SIZE',
  /** `seed` is not standard base64, or does not decode to exactly 12 bytes. */
  INVALID_SEED: 'INVALID_SEED',
  /** The backend list is empty (or not an array): there is nothing to fill the table with. */
  NO_BACKENDS: 'NO_BACKENDS',
  /** A backend field (id, address, port, protocol, scope, clusterId) is malformed. */
  INVALID_BACKEND: 'INVALID_BACKEND',
  /** A weight is not an integer in 1..65535 (Cilium's weights are uint16; 0 means "drained"). */
  INVALID_WEIGHT: 'INVALID_WEIGHT',
  /** Two backends carry the same `id`. */
  DUPLICATE_ID: 'DUPLICATE_ID',
  /** Two backends have the same address, port, protocol and scope (the same hash string). */
  DUPLICATE_BACKEND: 'DUPLICATE_BACKEND',
  /** Two tables that must be compared slot by slot have different sizes. */
  TABLE_SIZE_MISMATCH: 'TABLE_SIZE_MISMATCH',
  /** A flow passed to `flowHash` is malformed. */
  INVALID_FLOW: 'INVALID_FLOW',
} as const

/** One of the values of {@link MaglevErrorCode}. */
export type MaglevErrorCode = (typeof MaglevErrorCode)[keyof typeof MaglevErrorCode]

/**
 * The one error class of this package. `code` is stable, `path` names the offending input field
 * (e.g. `backends[3].weight`), and the message says what was expected and what was given.
 */
export class MaglevError extends Error {
  override readonly name = 'MaglevError'
  readonly code: MaglevErrorCode
  readonly path: string | undefined

  constructor(
    code: MaglevErrorCode,
    message: string,
    options: { path?: string; cause?: unknown } = {},
  ) {
    super(options.path ? `${options.path}: ${message}` : message, { cause: options.cause })
    this.code = code
    this.path = options.path
  }
}

/** Render a value for an error message without dumping whole objects. */
export function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value)
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return `an array of ${value.length}`
  return `a ${typeof value}`
}
