/** Unit tests and properties of the building blocks: RE2 engine, CIDRs, labels, DNS patterns. */
import { prefixContains, prefixOverlaps } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseCidr, subtractCidrs } from '../src/cidr'
import { compileRe2, matchDnsPattern, Re2SyntaxError } from '../src/index'
import { LabelSet, parseLabel, Selector } from '../src/labels'

describe('RE2 engine', () => {
  const full = (p: string, s: string) => compileRe2(p).fullMatch(s)
  it('matches in full', () => {
    expect(full('/v1/request-landing', '/v1/request-landing')).toBe(true)
    expect(full('/v1/', '/v1/x')).toBe(false)
    expect(full('/v1/.*', '/v1/x/y')).toBe(true)
    expect(full('GET|POST', 'POST')).toBe(true)
    expect(full('GET|POST', 'PUT')).toBe(false)
    expect(full('[A-Z]{3,6}', 'DELETE')).toBe(true)
    expect(full('[A-Z]{3,6}', 'DE')).toBe(false)
    expect(full('a{2}b?', 'aa')).toBe(true)
    expect(full('(?i)get', 'GeT')).toBe(true)
    expect(full('\\d+\\.\\d+', '1.25')).toBe(true)
    expect(full('[^/]+', 'a/b')).toBe(false)
    expect(full('(?:ab)+', 'ababab')).toBe(true)
    expect(full('(?P<x>a)b', 'ab')).toBe(true)
    expect(full('^/api$', '/api')).toBe(true)
    expect(full('[[:alpha:]]+', 'abc')).toBe(true)
    expect(full('', '')).toBe(true)
  })
  it('follows RE2 on code points, flags, boundaries and escapes', () => {
    expect(full('.', '😀')).toBe(true) // one code point, not two UTF-16 units
    expect(full('[^a]', '😀')).toBe(true)
    expect(full('\\x{1F600}+', '😀😀')).toBe(true)
    expect(full('(?i)k', '\u212a')).toBe(true) // KELVIN SIGN folds with k
    expect(full('(?i)é', 'É')).toBe(true)
    expect(full('(?i)[^a]', 'A')).toBe(false) // folded first, then negated
    expect(full('a(?i)b|c', 'aB')).toBe(true)
    expect(full('(?i:a)b', 'AB')).toBe(false)
    expect(full('(?s).', '\n')).toBe(true)
    expect(full('.', '\n')).toBe(false)
    expect(full('(?m)a$\\n^b', 'a\nb')).toBe(true)
    expect(full('a$\\n^b', 'a\nb')).toBe(false)
    expect(full('\\bab\\b', 'ab')).toBe(true)
    expect(full('a\\Bb', 'ab')).toBe(true)
    expect(full('\\Q.*\\E', '.*')).toBe(true)
    expect(full('\\Q.*\\E', 'ab')).toBe(false)
    expect(full('\\012\\0\\a', '\n\0\x07')).toBe(true)
    expect(full('a{,2}', 'a{,2}')).toBe(true) // not a repeat: literal, as in RE2
    expect(full('/v1/.*', '/v1/a\nb')).toBe(false) // the fast path keeps `.` off newlines
  })
  it('rejects non-RE2 syntax', () => {
    for (const p of [
      '(a',
      'a)',
      '*a',
      '(?=x)',
      '(?!x)',
      '\\1',
      'a{1001}',
      '[z-a]',
      '[abc',
      '{2}',
      'a(?i)*',
      'a**',
      '\\pL',
      '(?i-)a',
      '(?P<n>a)(?P<n>b)',
      '\\é',
    ]) {
      expect(() => compileRe2(p), p).toThrow(Re2SyntaxError)
    }
  })
  it('runs catastrophic patterns in linear time', () => {
    const s = `${'a'.repeat(5000)}!`
    const t0 = Date.now()
    expect(full('(a+)+$', s)).toBe(false)
    expect(full('(a|a)*b', s)).toBe(false)
    // not a timing assertion of the suite: a backtracking engine would not return at all here
    expect(Date.now() - t0).toBeLessThan(20_000)
  })
  it('agrees with JS RegExp on a safe subset', () => {
    const atom = fc.constantFrom('a', 'b', '.', '[ab]', '[^a]', '\\d', '(a|b)', '(?:ab)')
    const piece = fc.tuple(atom, fc.constantFrom('', '*', '+', '?', '{1,2}')).map(([a, q]) => a + q)
    const pattern = fc.array(piece, { minLength: 1, maxLength: 5 }).map((p) => p.join(''))
    fc.assert(
      fc.property(pattern, fc.stringMatching(/^[ab1c]{0,8}$/), (p, s) => {
        expect(compileRe2(p).fullMatch(s)).toBe(new RegExp(`^(?:${p})$`).test(s))
      }),
      { numRuns: 1000 },
    )
  })
})

describe('CIDRs', () => {
  it('parses and canonicalizes', () => {
    expect(parseCidr('10.1.2.3/8')?.cidr).toBe('10.0.0.0/8')
    expect(parseCidr('2001:db8::1/32')?.cidr).toBe('2001:db8::/32')
    expect(parseCidr('2001-db8--/32')?.cidr).toBe('2001:db8::/32')
    expect(parseCidr('::ffff:10.0.0.1/128')?.cidr).toBe('::ffff:10.0.0.1/128')
    expect(parseCidr('1.2.3.4')?.cidr).toBe('1.2.3.4/32')
    for (const bad of ['1.2.3/8', '256.0.0.0/8', '1.2.3.4/33', '::1::2/64', 'x', '01.2.3.4/8'])
      expect(parseCidr(bad), bad).toBeUndefined()
  })
  it('containment is a partial order consistent with masking', () => {
    const v4 = fc
      .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }))
      .map(([a, b]) => {
        const ip = [24, 16, 8, 0].map((s) => (a >>> s) & 255).join('.')
        return parseCidr(`${ip}/${b}`) as NonNullable<ReturnType<typeof parseCidr>>
      })
    fc.assert(
      fc.property(v4, v4, (x, y) => {
        expect(prefixContains(x, x)).toBe(true)
        if (prefixContains(x, y) && prefixContains(y, x)) expect(x.cidr).toBe(y.cidr)
        if (prefixContains(x, y)) expect(x.length).toBeLessThanOrEqual(y.length)
      }),
    )
  })
})

describe('subtractCidrs', () => {
  it('gives disjoint prefixes covering exactly cidr minus the excepts', () => {
    const host = fc.integer({ min: 0, max: 2 ** 32 - 1 })
    const ipOf = (a: number) => [24, 16, 8, 0].map((s) => (a >>> s) & 255).join('.')
    fc.assert(
      fc.property(
        host,
        fc.integer({ min: 8, max: 24 }),
        fc.array(fc.tuple(host, fc.integer({ min: 9, max: 32 })), { maxLength: 4 }),
        fc.array(host, { minLength: 1, maxLength: 30 }),
        (base, bits, ex, probes) => {
          const cidr = parseCidr(`${ipOf(base)}/${bits}`) as NonNullable<
            ReturnType<typeof parseCidr>
          >
          // excepts inside the cidr: take the cidr's bits from base and the rest from the random host
          const excepts = ex.map(([h, b]) => {
            const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0
            const addr = ((base & mask) | (h & ~mask)) >>> 0
            return parseCidr(`${ipOf(addr)}/${Math.max(b, bits + 1)}`) as NonNullable<
              ReturnType<typeof parseCidr>
            >
          })
          const parts = subtractCidrs(cidr, excepts)
          for (let i = 0; i < parts.length; i++)
            for (let j = i + 1; j < parts.length; j++)
              expect(prefixOverlaps(parts[i] as never, parts[j] as never)).toBe(false)
          for (const pr of [...probes, base]) {
            const mask = (~0 << (32 - bits)) >>> 0
            const ip = parseCidr(`${ipOf(((base & mask) | (pr & ~mask)) >>> 0)}/32`) as NonNullable<
              ReturnType<typeof parseCidr>
            >
            const want = !excepts.some((e) => prefixContains(e, ip))
            expect(parts.some((p) => prefixContains(p, ip))).toBe(want)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
  it('splits 10.0.0.0/8 except 10.96.0.0/12', () => {
    const c = (s: string) => parseCidr(s) as NonNullable<ReturnType<typeof parseCidr>>
    expect(
      subtractCidrs(c('10.0.0.0/8'), [c('10.96.0.0/12')])
        .map((x) => x.cidr)
        .sort(),
    ).toEqual(['10.0.0.0/10', '10.112.0.0/12', '10.128.0.0/9', '10.64.0.0/11'])
  })
})

describe('labels and selectors', () => {
  it('parses source:key=value', () => {
    expect(parseLabel('k8s:app=web')).toEqual({ source: 'k8s', key: 'app', value: 'web' })
    expect(parseLabel('reserved:host')).toEqual({ source: 'reserved', key: 'host', value: '' })
    expect(parseLabel('app=a:b')).toEqual({ source: 'unspec', key: 'app', value: 'a:b' })
    expect(parseLabel('cidr:2001:db8::/32')).toEqual({
      source: 'cidr',
      key: '2001:db8::/32',
      value: '',
    })
  })
  it('matches any source for bare keys and the given source otherwise', () => {
    const set = new LabelSet(['k8s:app=web', 'container:tier=x'])
    expect(new Selector([{ key: 'app', operator: 'In', values: ['web'] }]).matches(set)).toBe(true)
    expect(new Selector([{ key: 'k8s:tier', operator: 'Exists', values: [] }]).matches(set)).toBe(
      false,
    )
    expect(new Selector([{ key: 'tier', operator: 'Exists', values: [] }]).matches(set)).toBe(true)
    expect(new Selector([{ key: 'app', operator: 'NotIn', values: ['db'] }]).matches(set)).toBe(
      true,
    )
    expect(new Selector([{ key: 'zone', operator: 'NotIn', values: ['a'] }]).matches(set)).toBe(
      true,
    )
    expect(new Selector([{ key: 'zone', operator: 'DoesNotExist', values: [] }]).matches(set)).toBe(
      true,
    )
  })
  it('gives equal selectors equal keys regardless of order', () => {
    const a = new Selector([
      { key: 'a', operator: 'In', values: ['1', '2'] },
      { key: 'b', operator: 'Exists', values: [] },
    ])
    const b = new Selector([
      { key: 'any:b', operator: 'Exists', values: [] },
      { key: 'a', operator: 'In', values: ['2', '1'] },
    ])
    expect(a.key).toBe(b.key)
  })
})

describe('DNS patterns', () => {
  it('follows Cilium matchPattern rules', () => {
    expect(matchDnsPattern('*', 'anything.at.all')).toBe(true)
    expect(matchDnsPattern('*.cilium.io', 'docs.cilium.io')).toBe(true)
    expect(matchDnsPattern('*.cilium.io', 'cilium.io')).toBe(false)
    expect(matchDnsPattern('*.cilium.io', 'a.b.cilium.io')).toBe(false)
    expect(matchDnsPattern('**.cilium.io', 'a.b.cilium.io')).toBe(true)
    expect(matchDnsPattern('api-*.example.com', 'API-v2.example.com.')).toBe(true)
  })
})
