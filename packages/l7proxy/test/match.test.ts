/**
 * HTTP rule matching on re2-wasm, checked against @membrane/policy's own evaluator (its RE2
 * engine) as an oracle, plus the Star Wars policy through a real PolicyRepository.
 */

import { readFileSync } from 'node:fs'
import {
  type HttpRule,
  httpRuleMatches,
  type L7Policy,
  PolicyRepository,
  parsePolicyDocuments,
} from '@membrane/policy'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compileFullMatch,
  evaluateHttp,
  headerView,
  httpRuleAllows,
  L7ProxyError,
  repositoryPolicySource,
} from '../src/index'

describe('compileFullMatch', () => {
  it('matches the whole value only', () => {
    expect(compileFullMatch('GET').test('GET')).toBe(true)
    expect(compileFullMatch('GET').test('GETX')).toBe(false)
    expect(compileFullMatch('GET|POST').test('POST')).toBe(true)
    expect(compileFullMatch('GET|POST').test('xPOST')).toBe(false)
    expect(compileFullMatch('/public.*').test('/public/a?b=c')).toBe(true)
    expect(compileFullMatch('/public.*').test('/x/public')).toBe(false)
  })

  it('runs pathological patterns in linear time (RE2, no backtracking)', () => {
    const m = compileFullMatch('(a+)+$')
    expect(m.test(`${'a'.repeat(50_000)}b`)).toBe(false)
  })

  it('rejects non-RE2 syntax with an error naming the pattern', () => {
    expect(() => compileFullMatch('(?=x)a')).toThrow(L7ProxyError)
    expect(() => compileFullMatch('(a')).toThrow(/"\(a"/)
  })
})

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']
const PATHS = ['/', '/public', '/public/a', '/v1/request-landing', '/v1/exhaust-port', '/a/b?c=d']

describe('httpRuleAllows agrees with @membrane/policy httpRuleMatches', () => {
  const rule = fc.record(
    {
      method: fc.constantFrom('GET', 'POST', 'GET|POST', 'P.*', '(?i)get', '[A-Z]+'),
      path: fc.constantFrom('/public.*', '/v1/.*', '/', '/a/b\\?c=d', '/[a-z]+', '.*'),
      host: fc.constantFrom('api\\.example\\.test', '.*\\.test', 'x'),
      headers: fc.array(fc.constantFrom('X-Token: secret', 'X-Present', 'Accept'), {
        maxLength: 2,
      }),
      headerMatches: fc.array(
        fc.record({
          name: fc.constantFrom('X-Env', 'X-Token'),
          value: fc.constantFrom('prod', 'secret'),
        }),
        { maxLength: 2 },
      ),
    },
    { requiredKeys: [] },
  )
  const req = fc.record({
    method: fc.constantFrom(...METHODS),
    path: fc.constantFrom(...PATHS),
    host: fc.constantFrom('api.example.test', 'other.test', 'x', ''),
    headers: fc.dictionary(
      fc.constantFrom('x-token', 'X-Present', 'accept', 'X-Env'),
      fc.constantFrom('secret', 'prod', 'dev', ''),
      { maxKeys: 3 },
    ),
  })

  it('for random rules and requests', () => {
    fc.assert(
      fc.property(rule, req, (r, q) => {
        const raw = Object.entries(q.headers).flat()
        const view = { method: q.method, path: q.path, host: q.host, headers: headerView(raw) }
        const oracle = httpRuleMatches(r as HttpRule, {
          method: q.method,
          path: q.path,
          host: q.host,
          headers: q.headers,
        })
        expect(httpRuleAllows(r as HttpRule, view)).toBe(oracle)
      }),
      { numRuns: 500 },
    )
  })
})

describe('evaluateHttp', () => {
  const view = (method: string, path: string) => ({
    method,
    path,
    host: '',
    headers: new Map<string, string>(),
  })

  it('allows by the first matching rule, denies otherwise, wildcard allows all', () => {
    const p: L7Policy = {
      parser: 'http',
      wildcard: false,
      rules: [{ id: 'r', rules: { parser: 'http', http: [{ method: 'GET' }, { path: '/x' }] } }],
    }
    expect(evaluateHttp(p, view('GET', '/y'))).toEqual({ allowed: true, ruleId: 'r', index: 0 })
    expect(evaluateHttp(p, view('PUT', '/x'))).toEqual({ allowed: true, ruleId: 'r', index: 1 })
    expect(evaluateHttp(p, view('PUT', '/y'))).toEqual({
      allowed: false,
      reason: 'no-rule-matched',
    })
    expect(evaluateHttp({ ...p, wildcard: true }, view('PUT', '/y')).allowed).toBe(true)
    expect(evaluateHttp(undefined, view('GET', '/'))).toEqual({
      allowed: false,
      reason: 'no-policy',
    })
    expect(
      evaluateHttp({ parser: 'kafka', wildcard: true, rules: [] }, view('GET', '/')).allowed,
    ).toBe(false)
  })

  it('Star Wars: the repository gives deathstar ingress rules for tiefighter, none for xwing', () => {
    const text = readFileSync(
      new URL('../../../examples/star-wars/policies/sw_l3_l4_l7_policy.yaml', import.meta.url),
      'utf8',
    )
    const repo = new PolicyRepository()
    repo.upsert(parsePolicyDocuments(text))
    const ns = 'k8s:io.kubernetes.pod.namespace=default'
    repo.updateIdentities([
      { id: 1001, labels: ['k8s:org=empire', 'k8s:class=tiefighter', ns] },
      { id: 1002, labels: ['k8s:org=alliance', 'k8s:class=xwing', ns] },
    ])
    const deathstar = { labels: ['k8s:org=empire', 'k8s:class=deathstar', ns] }
    const source = repositoryPolicySource(repo, (id) => (id === 7 ? deathstar : undefined))
    const q = { endpointId: 7, direction: 'ingress' as const, port: 80, protocol: 'TCP' as const }
    const tie = source.rulesFor({ ...q, peerIdentity: 1001 })
    expect(evaluateHttp(tie, view('POST', '/v1/request-landing')).allowed).toBe(true)
    expect(evaluateHttp(tie, view('PUT', '/v1/exhaust-port')).allowed).toBe(false)
    expect(source.rulesFor({ ...q, peerIdentity: 1002 })).toBeUndefined()
    expect(source.rulesFor({ ...q, endpointId: 8, peerIdentity: 1001 })).toBeUndefined()
    expect(source.revision).toBe(repo.generation)
  })
})
