/**
 * @membrane/policy's RE2 engine (which validates, traces AND enforces HTTP rules) against
 * Google's RE2 compiled to wasm (re2-wasm, a devDependency kept only as this oracle): for random
 * patterns and inputs, a pattern policy accepts is one RE2 accepts, with the same full-match
 * answer. Policy may reject a few rare RE2 forms (\p classes, \C, ...); never the reverse.
 */
import { compileRe2, Re2SyntaxError } from '@membrane/policy'
import fc from 'fast-check'
import { RE2 } from 're2-wasm'
import { describe, expect, it } from 'vitest'

/** RE2's full match, as Envoy's safe_regex does it; undefined when RE2 rejects the pattern. */
function oracle(pattern: string): ((s: string) => boolean) | undefined {
  try {
    const re = new RE2(`^(?:${pattern})$`, 'u')
    return (s) => re.test(s)
  } catch {
    return undefined
  }
}

function ours(pattern: string): ((s: string) => boolean) | undefined {
  try {
    const re = compileRe2(pattern)
    return (s) => re.fullMatch(s)
  } catch (e) {
    if (!(e instanceof Re2SyntaxError)) throw e
    return undefined
  }
}

const atom = fc.oneof(
  fc.constantFrom('a', 'b', 'A', '/', '1', '-', '.', 'é', '😀', ' '),
  fc.constantFrom(
    '\\d',
    '\\D',
    '\\w',
    '\\W',
    '\\s',
    '\\S',
    '\\.',
    '\\/',
    '\\-',
    '\\x41',
    '\\x{e9}',
  ),
  fc.constantFrom(
    '[ab]',
    '[^a]',
    '[a-c]',
    '[[:alpha:]]',
    '[^[:digit:]/]',
    '[\\d.]',
    '[é-ê]',
    '[]a]',
  ),
  fc.constantFrom('\\b', '\\B', '^', '$', '\\A', '\\z', '\\Q.*\\E'),
  fc.constantFrom('(?i)', '(?s)', '(?i:a)', '(?s:.)', '(?m)', '(?U)', '(?-i)'),
)
const quant = fc.constantFrom('', '', '', '*', '+', '?', '*?', '+?', '{2}', '{1,3}', '{2,}', '{,2}')
const piece = fc.tuple(atom, quant).map(([a, q]) => a + q)
const seq = fc.array(piece, { minLength: 0, maxLength: 5 }).map((p) => p.join(''))
const pattern = fc
  .tuple(seq, fc.option(seq, { nil: undefined }), fc.constantFrom('', '()', '(x)'))
  .map(([a, b, g]) => {
    const body = b === undefined ? a : `${a}|${b}`
    return g === '' ? body : g === '()' ? `(${body})` : `(?:${body})+`
  })
const input = fc
  .array(fc.constantFrom('a', 'b', 'A', 'B', '/', '1', '-', '.', 'é', 'ê', '😀', ' ', '\n', '_'), {
    maxLength: 8,
  })
  .map((c) => c.join(''))

describe('compileRe2 agrees with RE2 (re2-wasm as the oracle)', () => {
  it('accepts only what RE2 accepts, with the same full-match answer', () => {
    fc.assert(
      fc.property(pattern, fc.array(input, { minLength: 1, maxLength: 6 }), (p, inputs) => {
        const mine = ours(p)
        const theirs = oracle(p)
        if (!mine) return
        expect(theirs, `RE2 rejects ${JSON.stringify(p)}`).toBeDefined()
        for (const s of inputs)
          expect(mine(s), `${JSON.stringify(p)} on ${JSON.stringify(s)}`).toBe(
            (theirs as (s: string) => boolean)(s),
          )
      }),
      { numRuns: 2000 },
    )
  })

  it('typical rule patterns', () => {
    const cases: Array<[string, string[]]> = [
      ['GET', ['GET', 'get', 'GETX', '']],
      ['GET|POST', ['GET', 'POST', 'PUT', 'GETPOST']],
      ['/v1/.*', ['/v1/', '/v1/a/b?c=d', '/v2/', '/v1']],
      ['/public(/.*)?', ['/public', '/public/x', '/publicx']],
      [
        'api\\.example\\.test(:[0-9]+)?',
        ['api.example.test', 'api.example.test:80', 'apixexample.test'],
      ],
      ['(?i)/Admin/.*', ['/admin/x', '/ADMIN/', '/adm']],
      ['[A-Z]+', ['GET', 'get', '']],
    ]
    for (const [p, inputs] of cases) {
      const o = oracle(p) as (s: string) => boolean
      for (const s of inputs) expect(compileRe2(p).fullMatch(s), `${p} ${s}`).toBe(o(s))
    }
  })

  it('stays linear on hostile patterns and inputs', () => {
    const s = `${'a'.repeat(20_000)}!`
    for (const p of ['(a+)+$', '(a|a)*b', '(a*)*b', '(?:a?){20}a{20}', '(.*a){12}']) {
      const t0 = performance.now()
      expect(compileRe2(p).fullMatch(s), p).toBe(oracle(p)?.(s))
      // A backtracking engine does not return at all on these; ours is O(input x pattern).
      expect(performance.now() - t0, p).toBeLessThan(10_000)
    }
  })
})
