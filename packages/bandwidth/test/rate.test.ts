import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  BandwidthError,
  EGRESS_BANDWIDTH_ANNOTATION,
  INGRESS_BANDWIDTH_ANNOTATION,
  parseBandwidth,
  parseBandwidthAnnotations,
  parseQuantity,
  quantityCeil,
} from '../src/index'

const DEC = { '': 0, k: 3, M: 6, G: 9, T: 12 } as const
const BIN = { Ki: 1, Mi: 2, Gi: 3, Ti: 4 } as const

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    if (error instanceof BandwidthError) return error.code
    throw error
  }
  return undefined
}

describe('parseBandwidth: documented values', () => {
  it.each([
    ['10M', 10_000_000n, 1_250_000],
    ['10Mi', 10_485_760n, 1_310_720],
    ['1k', 1_000n, 125],
    ['1.5G', 1_500_000_000n, 187_500_000],
    ['100M', 100_000_000n, 12_500_000],
    ['1e6', 1_000_000n, 125_000],
    ['1E6', 1_000_000n, 125_000],
    ['+2.5e3', 2_500n, 312],
    ['1000000000m', 1_000_000n, 125_000],
    ['1P', 1_000_000_000_000_000n, 125_000_000_000_000],
    ['.5M', 500_000n, 62_500],
    ['5.M', 5_000_000n, 625_000],
    ['1001.5', 1002n, 125],
  ])('%s is %s bit/s = %s B/s', (text, bits, bytes) => {
    const limit = parseBandwidth(text)
    expect(limit.bitsPerSecond).toBe(bits)
    expect(limit.bytesPerSecond).toBe(bytes)
    expect(limit.text).toBe(text)
  })
})

describe('parseBandwidth: errors name the input', () => {
  it.each([
    ['', 'INVALID_QUANTITY'],
    [' 10M', 'INVALID_QUANTITY'],
    ['10M ', 'INVALID_QUANTITY'],
    ['10 M', 'INVALID_QUANTITY'],
    ['abc', 'INVALID_QUANTITY'],
    ['10MB', 'INVALID_QUANTITY'],
    ['10mbit', 'INVALID_QUANTITY'],
    ['10Mbps', 'INVALID_QUANTITY'],
    ['1.2.3', 'INVALID_QUANTITY'],
    ['.', 'INVALID_QUANTITY'],
    ['+', 'INVALID_QUANTITY'],
    ['e3', 'INVALID_QUANTITY'],
    ['1e', 'INVALID_QUANTITY'],
    ['1e3.5', 'INVALID_QUANTITY'],
    ['0x10', 'INVALID_QUANTITY'],
    ['NaN', 'INVALID_QUANTITY'],
    ['Infinity', 'INVALID_QUANTITY'],
    ['1'.repeat(65), 'INVALID_QUANTITY'],
    ['0', 'NOT_POSITIVE'],
    ['0M', 'NOT_POSITIVE'],
    ['-0', 'NOT_POSITIVE'],
    ['-1M', 'NOT_POSITIVE'],
    ['999', 'TOO_SMALL'],
    ['0.001k', 'TOO_SMALL'],
    ['500m', 'TOO_SMALL'],
    ['1.0000001P', 'TOO_LARGE'],
    ['2P', 'TOO_LARGE'],
    ['1E', 'TOO_LARGE'],
    ['1Ei', 'TOO_LARGE'],
    ['1e16', 'TOO_LARGE'],
    ['1e100', 'TOO_LARGE'],
    ['1e-100', 'TOO_LARGE'],
  ])('%j -> %s', (text, code) => {
    expect(codeOf(() => parseBandwidth(text, 'kubernetes.io/egress-bandwidth'))).toBe(code)
    try {
      parseBandwidth(text, 'kubernetes.io/egress-bandwidth')
    } catch (error) {
      const e = error as BandwidthError
      expect(e.message).toContain('kubernetes.io/egress-bandwidth')
      expect(e.message).toContain(JSON.stringify(text))
      expect(e.field).toBe('kubernetes.io/egress-bandwidth')
      expect(e.value).toBe(text)
    }
  })

  it('rejects non-strings with INVALID_QUANTITY', () => {
    expect(codeOf(() => parseBandwidth(10 as unknown as string))).toBe('INVALID_QUANTITY')
  })
})

describe('parseBandwidth: properties', () => {
  const decSuffix = fc.constantFrom(...(Object.keys(DEC) as (keyof typeof DEC)[]))
  const binSuffix = fc.constantFrom(...(Object.keys(BIN) as (keyof typeof BIN)[]))

  it('an integer with a decimal suffix is n·10^p bits and floor(bits/8) bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 999_999 }), decSuffix, (n, s) => {
        const bits = BigInt(n) * 10n ** BigInt(DEC[s])
        fc.pre(bits >= 1000n && bits <= 10n ** 15n)
        const l = parseBandwidth(`${n}${s}`)
        expect(l.bitsPerSecond).toBe(bits)
        expect(BigInt(l.bytesPerSecond)).toBe(bits / 8n)
      }),
    )
  })

  it('an integer with a binary suffix is n·1024^p bits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 99_999 }), binSuffix, (n, s) => {
        const bits = BigInt(n) * 1024n ** BigInt(BIN[s])
        fc.pre(bits <= 10n ** 15n)
        expect(parseBandwidth(`${n}${s}`).bitsPerSecond).toBe(bits)
      }),
    )
  })

  it('m·e<p> equals m followed by p zeros, and equals the SI suffix of the same power', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9999 }), fc.constantFrom(3, 6, 9, 12), (m, p) => {
        const a = parseQuantity(`${m}e${p}`)
        const b = parseQuantity(`${m}${'0'.repeat(p)}`)
        const si = { 3: 'k', 6: 'M', 9: 'G', 12: 'T' }[p]
        const c = parseQuantity(`${m}${si}`)
        expect([a.numerator, a.denominator]).toEqual([b.numerator, b.denominator])
        expect([a.numerator, a.denominator]).toEqual([c.numerator, c.denominator])
      }),
    )
  })

  it('decimal fractions are exact: a.b with suffix is (a·10^k + b)/10^k · 10^p', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }),
        fc.stringMatching(/^\d{1,6}$/),
        decSuffix,
        (a, frac, s) => {
          const q = parseQuantity(`${a}.${frac}${s}`)
          const exact = BigInt(`${a}${frac}`) * 10n ** BigInt(DEC[s]) * q.denominator
          expect(q.numerator * 10n ** BigInt(frac.length)).toBe(exact)
        },
      ),
    )
  })

  it('quantityCeil is the least integer >= the quantity', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -99999, max: 99999 }),
        fc.stringMatching(/^\d{0,4}$/),
        fc.constantFrom('', 'm', 'k', 'Ki', 'u'),
        (a, frac, s) => {
          const q = parseQuantity(`${a}${frac ? `.${frac}` : ''}${s}`)
          const c = quantityCeil(q)
          expect(c * q.denominator >= q.numerator).toBe(true)
          expect((c - 1n) * q.denominator < q.numerator).toBe(true)
        },
      ),
    )
  })

  it('more bits never give fewer bytes (monotone)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1000n, max: 10n ** 15n }),
        fc.bigInt({ min: 1000n, max: 10n ** 15n }),
        (x, y) => {
          const [lo, hi] = x <= y ? [x, y] : [y, x]
          expect(parseBandwidth(`${lo}`).bytesPerSecond).toBeLessThanOrEqual(
            parseBandwidth(`${hi}`).bytesPerSecond,
          )
        },
      ),
    )
  })

  it('any string either parses to a valid limit or throws a BandwidthError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.stringMatching(/^[+-]?\d{0,5}(\.\d{0,3})?([kMGTPEmun]|[KMGTPE]i|[eE][+-]?\d{1,3})?$/),
        ),
        (text) => {
          try {
            const l = parseBandwidth(text)
            expect(l.bitsPerSecond >= 1000n && l.bitsPerSecond <= 10n ** 15n).toBe(true)
            expect(Number.isSafeInteger(l.bytesPerSecond)).toBe(true)
          } catch (error) {
            expect(error).toBeInstanceOf(BandwidthError)
          }
        },
      ),
    )
  })
})

describe('parseBandwidthAnnotations', () => {
  it('reads both annotations and ignores others', () => {
    const r = parseBandwidthAnnotations({
      [EGRESS_BANDWIDTH_ANNOTATION]: '10M',
      [INGRESS_BANDWIDTH_ANNOTATION]: '1Gi',
      'example.com/other': 'x',
    })
    expect(r.egress?.bytesPerSecond).toBe(1_250_000)
    expect(r.ingress?.bytesPerSecond).toBe(134_217_728)
  })

  it('returns nothing for no annotations', () => {
    expect(parseBandwidthAnnotations(undefined)).toEqual({})
    expect(parseBandwidthAnnotations({})).toEqual({})
  })

  it('names the invalid annotation and its value', () => {
    expect(() =>
      parseBandwidthAnnotations({
        [EGRESS_BANDWIDTH_ANNOTATION]: '10M',
        [INGRESS_BANDWIDTH_ANNOTATION]: 'fast',
      }),
    ).toThrow(/kubernetes\.io\/ingress-bandwidth: "fast" is not a resource quantity/)
  })

  it('reports both when both are invalid, and keeps each as the cause', () => {
    try {
      parseBandwidthAnnotations({
        [EGRESS_BANDWIDTH_ANNOTATION]: '0',
        [INGRESS_BANDWIDTH_ANNOTATION]: '-5M',
      })
      expect.unreachable()
    } catch (error) {
      const e = error as BandwidthError
      expect(e.code).toBe('NOT_POSITIVE')
      expect(e.message).toContain('kubernetes.io/egress-bandwidth: "0"')
      expect(e.message).toContain('kubernetes.io/ingress-bandwidth: "-5M"')
      expect((e.cause as BandwidthError[]).map((c) => c.field)).toEqual([
        EGRESS_BANDWIDTH_ANNOTATION,
        INGRESS_BANDWIDTH_ANNOTATION,
      ])
    }
  })
})
