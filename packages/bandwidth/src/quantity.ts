import { BandwidthError } from './errors'

/**
 * An exact Kubernetes resource quantity: `numerator / denominator` (denominator > 0, both
 * integers), so `1.5Ki` is 1536/1 and `250m` is 250/1000. No floating point is involved.
 */
export interface Quantity {
  readonly numerator: bigint
  readonly denominator: bigint
  /** The text as given. */
  readonly text: string
}

const DECIMAL_SI: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
}

const BINARY_SI: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 }

/** Longest quantity text accepted; longer input is rejected before any arithmetic. */
const MAX_TEXT = 64
/** Largest decimal exponent accepted (`1e60`); beyond that no rate is meaningful. */
const MAX_EXPONENT = 60

const NUMBER = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(.*)$/s
const EXPONENT = /^[eE]([+-]?\d+)$/

function describe(text: unknown): string {
  return typeof text === 'string' ? JSON.stringify(text) : String(text)
}

function fail(text: unknown, field: string | undefined, why: string): never {
  const where = field ? `${field}: ` : ''
  throw new BandwidthError(
    'INVALID_QUANTITY',
    `${where}${describe(text)} is not a resource quantity: ${why} ` +
      `(expected a number with an optional suffix: k M G T P E, Ki Mi Gi Ti Pi Ei, m, or e<exp>, ` +
      `e.g. "10M" or "1.5Gi")`,
    { field, value: text },
  )
}

/**
 * Parse a Kubernetes resource quantity (`<sign><number><suffix>`) exactly.
 * Suffixes: decimal SI `n u m k M G T P E`, binary SI `Ki Mi Gi Ti Pi Ei`, and decimal exponents
 * `e<n>` / `E<n>`. No whitespace is allowed (as in Kubernetes).
 *
 * @param field names the input in error messages (an annotation name, a field path)
 * @throws BandwidthError `INVALID_QUANTITY`, or `TOO_LARGE` for an exponent beyond ±60
 * @example parseQuantity('1.5Ki') // { numerator: 1536n, denominator: 1n, text: '1.5Ki' }
 */
export function parseQuantity(text: string, field?: string): Quantity {
  if (typeof text !== 'string') fail(text, field, `expected a string, got ${typeof text}`)
  if (text.length === 0) fail(text, field, 'it is empty')
  if (text.length > MAX_TEXT) fail(text, field, `it is longer than ${MAX_TEXT} characters`)
  if (text.trim() !== text) fail(text, field, 'it has leading or trailing whitespace')
  const m = NUMBER.exec(text)
  if (!m) fail(text, field, 'it does not start with a number')
  const [, sign = '', digits = '', suffix = ''] = m
  const [intPart = '', fracPart = ''] = digits.split('.')
  let numerator = BigInt(`${intPart}${fracPart}` || '0')
  let denominator = 10n ** BigInt(fracPart.length)
  if (sign === '-') numerator = -numerator

  let pow10: number
  let pow2 = 0
  const exp = EXPONENT.exec(suffix)
  if (exp) {
    pow10 = Number(exp[1])
    if (Math.abs(pow10) > MAX_EXPONENT) {
      const where = field ? `${field}: ` : ''
      throw new BandwidthError(
        'TOO_LARGE',
        `${where}${describe(text)} has exponent ${pow10}, outside ±${MAX_EXPONENT}`,
        { field, value: text },
      )
    }
  } else if (suffix in DECIMAL_SI) {
    pow10 = DECIMAL_SI[suffix] as number
  } else if (suffix in BINARY_SI) {
    pow10 = 0
    pow2 = 10 * (BINARY_SI[suffix] as number)
  } else {
    fail(text, field, `unknown suffix ${JSON.stringify(suffix)}`)
  }
  if (pow10 >= 0) numerator *= 10n ** BigInt(pow10)
  else denominator *= 10n ** BigInt(-pow10)
  numerator *= 1n << BigInt(pow2)
  const g = gcd(numerator < 0n ? -numerator : numerator, denominator)
  if (g > 1n) {
    numerator /= g
    denominator /= g
  }
  return { numerator, denominator, text }
}

/** The smallest integer >= the quantity (Kubernetes' `Quantity.Value()` rounds up the same way). */
export function quantityCeil(q: Quantity): bigint {
  const { numerator: n, denominator: d } = q
  const floor = n >= 0n ? n / d : -((-n + d - 1n) / d)
  return floor * d === n ? floor : floor + 1n
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}
