/**
 * Error codes of @membrane/datapath. Every {@link DatapathError} carries one of these.
 */
export const DatapathErrorCode = {
  /** A value does not fit the C field it is written to (the path names the field). */
  INVALID_VALUE: 'INVALID_VALUE',
  /** A name that would become a pin path, interface or map name is not acceptable. */
  INVALID_NAME: 'INVALID_NAME',
  /** A pinned map exists but its layout differs from the one this version needs. */
  INCOMPATIBLE_PIN: 'INCOMPATIBLE_PIN',
  /** A map is full (the kernel returned E2BIG/ENOSPC). */
  MAP_FULL: 'MAP_FULL',
  /** The BPF objects (bpf-src/build/*.o) were not found. */
  OBJECT_NOT_FOUND: 'OBJECT_NOT_FOUND',
  /** An endpoint id, ifindex or service id is unknown or already taken. */
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  /** The Datapath was closed. */
  CLOSED: 'CLOSED',
} as const

/** One of {@link DatapathErrorCode}. */
export type DatapathErrorCode = (typeof DatapathErrorCode)[keyof typeof DatapathErrorCode]

/**
 * The error every @membrane/datapath API throws for bad input or state. `path` names the
 * field or map involved (e.g. `mb_ct_tuple4.dport`, `policy[3].port`).
 */
export class DatapathError extends Error {
  readonly code: DatapathErrorCode
  readonly path: string | undefined

  constructor(
    code: DatapathErrorCode,
    message: string,
    options: { path?: string; cause?: unknown } = {},
  ) {
    super(options.path ? `${options.path}: ${message}` : message, { cause: options.cause })
    this.name = 'DatapathError'
    this.code = code
    this.path = options.path
  }
}

/** A short printable description of an unexpected value, for error messages. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (typeof value === 'bigint') return `${value}n`
  if (value === null || typeof value !== 'object') return String(value)
  if (Buffer.isBuffer(value)) return `Buffer(${value.length})`
  if (Array.isArray(value)) return `array(${value.length})`
  return 'object'
}
