/**
 * Attribution ids (RuleSetTable) and the audit annotation: unit tests. The equivalence of
 * trace() and the map state's attribution is a property in properties.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { AUDIT_ANNOTATION, PolicyError, parsePolicyDocuments, RuleSetTable } from '../src/index'

const value = (...derivedFrom: string[]) => ({ derivedFrom })

describe('RuleSetTable', () => {
  it('gives one id per set of policies, whatever the rules; none for no policy', () => {
    const t = new RuleSetTable()
    const a = t.idOf(value('CiliumNetworkPolicy/default/a:spec.ingress[0]'))
    expect(a).toBeGreaterThan(0)
    expect(t.idOf(value('CiliumNetworkPolicy/default/a:spec.ingress[1]'))).toBe(a)
    const ab = t.idOf(
      value('CiliumNetworkPolicy/default/b:spec.ingress[0]', 'CiliumNetworkPolicy/default/a:spec'),
    )
    expect(ab).not.toBe(a)
    expect(t.refs(ab)).toEqual(['CiliumNetworkPolicy/default/a', 'CiliumNetworkPolicy/default/b'])
    expect(t.idOf(value('<no default deny>'))).toBe(0)
    expect(t.refs(0)).toBeUndefined()
  })

  it('keeps an unused id resolvable for the grace period, then reuses it', () => {
    let now = 0
    const t = new RuleSetTable({ graceMs: 1000, now: () => now })
    const a = t.idOf(value('CiliumNetworkPolicy/default/a:spec'))
    const b = t.idOf(value('CiliumNetworkPolicy/default/b:spec'))
    expect(t.sweep([b])).toBe(0) // a retired, not freed: flows in flight still resolve it
    expect(t.refs(a)).toEqual(['CiliumNetworkPolicy/default/a'])
    now = 999
    expect(t.sweep([b])).toBe(0)
    now = 1000
    expect(t.sweep([b])).toBe(1)
    expect(t.refs(a)).toBeUndefined()
    expect(t.refs(b)).toEqual(['CiliumNetworkPolicy/default/b'])
    // A set seen again while retired keeps its id.
    const c = t.idOf(value('CiliumNetworkPolicy/default/c:spec'))
    t.sweep([b])
    expect(t.idOf(value('CiliumNetworkPolicy/default/c:spec'))).toBe(c)
    now = 5000
    expect(t.sweep([b, c])).toBe(0)
    expect(t.refs(c)).toEqual(['CiliumNetworkPolicy/default/c'])
  })
})

describe('the audit annotation', () => {
  const doc = (annotations: unknown) =>
    JSON.stringify({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'r', namespace: 'default', annotations },
      spec: { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] },
    })
  it('marks the document and its rules', () => {
    const [d] = parsePolicyDocuments(doc({ [AUDIT_ANNOTATION]: 'true' }))
    expect(d?.audit).toBe(true)
    expect(d?.rules.every((r) => r.audit)).toBe(true)
    expect(parsePolicyDocuments(doc({ [AUDIT_ANNOTATION]: 'false' }))[0]?.audit).toBeUndefined()
  })
  it('refuses a value other than "true" or "false", naming the field', () => {
    expect(() => parsePolicyDocuments(doc({ [AUDIT_ANNOTATION]: 'yes' }))).toThrow(PolicyError)
    let error: unknown
    try {
      parsePolicyDocuments(doc({ [AUDIT_ANNOTATION]: true }))
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).path).toBe(`metadata.annotations.${AUDIT_ANNOTATION}`)
  })
})
