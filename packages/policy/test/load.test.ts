/** Bounded loading: length, nesting depth and alias expansion limits, before and after parsing. */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  loadPolicyObjects,
  PolicyError,
  PolicyRepository,
  parsePolicyDocuments,
  revivePolicyDocuments,
} from '../src/index'
import { Selector } from '../src/labels'
import { flowDepthExceeded } from '../src/load'

function fails(fn: () => unknown): PolicyError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError)
    return e as PolicyError
  }
  throw new Error('expected a PolicyError')
}

/** The true nesting depth of a JSON value. */
function depth(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0
  return 1 + Math.max(0, ...Object.values(v).map(depth))
}

describe('loadPolicyObjects limits', () => {
  it('refuses 10^6 opening brackets before any parser runs', () => {
    const e = fails(() => loadPolicyObjects('['.repeat(1_000_000)))
    expect(e.code).toBe('LIMIT')
    expect(e.message).toMatch(/nest deeper than 64 levels at line 1, column 65/)
  })
  it('refuses text over maxLength', () => {
    const e = fails(() => loadPolicyObjects('a: b\n'.repeat(100), { maxLength: 100 }))
    expect(e.code).toBe('LIMIT')
    expect(e.message).toMatch(/500 characters; at most 100/)
  })
  it('refuses deep block nesting the bracket scan cannot see', () => {
    const text = Array.from({ length: 80 }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n')
    const e = fails(() => loadPolicyObjects(`${text} x\n`))
    expect(e.code).toBe('LIMIT')
    expect(e.message).toMatch(/document 0: collections nest deeper than 64/)
  })
  it('refuses a YAML alias bomb as a syntax error naming the document', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i)
      const name = String.fromCharCode(97 + i)
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`)
    }
    const bomb = `kind: CiliumNetworkPolicy\n---\n${lines.join('\n')}\n`
    const e = fails(() => parsePolicyDocuments(bomb))
    expect(e.code).toBe('SYNTAX')
    expect(e.documentIndex).toBe(1)
    expect(e.message).toMatch(/document 1: invalid YAML: .*alias/i)
  })
  it('keeps real policies within the limits', () => {
    const text = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: "a [b] {c}", namespace: default } # [[[[ not nesting
spec:
  endpointSelector: { matchLabels: { app: 'it''s [' } }
`
    expect(loadPolicyObjects(text, { maxDepth: 4 })).toHaveLength(1)
  })
})

describe('flowDepthExceeded', () => {
  const leaf = fc.oneof(
    fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', "'", '\\', '#', ' ', 'a', '\n') }),
    fc.integer(),
    fc.constant(null),
  )
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', maxDepth: 8 },
      leaf,
      fc.array(tie('tree'), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 3 }), tie('tree'), { maxKeys: 3 }),
    ),
  }))
  it('finds the exact depth of any JSON text, whatever its strings hold', () => {
    fc.assert(
      fc.property(tree, fc.boolean(), (v, pretty) => {
        const text = JSON.stringify(v, null, pretty ? 2 : undefined)
        const d = depth(v)
        expect(flowDepthExceeded(text, d)).toBeUndefined()
        if (d > 0) expect(flowDepthExceeded(text, d - 1)).toBeDefined()
      }),
      { numRuns: 500 },
    )
  })
})

describe('label values', () => {
  it('refuses a numeric or boolean matchLabels value, naming the label', () => {
    for (const [v, kind] of [
      ['1', 'number'],
      ['true', 'boolean'],
    ]) {
      const e = fails(() =>
        parsePolicyDocuments(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: p, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: ${v} } }
`),
      )
      expect(e.code).toBe('INVALID_TYPE')
      expect(e.path).toBe('spec.endpointSelector.matchLabels.app')
      expect(e.message).toContain(`label app has a ${kind} value`)
    }
    // Quoted, the same value is a string and fine.
    expect(
      parsePolicyDocuments(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: p, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: "1" } }
`),
    ).toHaveLength(1)
  })
})

describe('revivePolicyDocuments', () => {
  it('gives cloned documents (a worker postMessage) back what parsing gave', () => {
    const dir = join(import.meta.dirname, 'fixtures')
    for (const f of readdirSync(dir)) {
      const docs = parsePolicyDocuments(readFileSync(join(dir, f), 'utf8'))
      const revived = revivePolicyDocuments(structuredClone(docs) as unknown[])
      expect(revived).toEqual(docs)
      for (const [a, b] of revived.map((d, i) => [d, docs[i]!] as const)) {
        expect(a.rules[0]!.subject.selector).toBeInstanceOf(Selector)
        expect(a.rules[0]!.subject.selector.key).toBe(b.rules[0]!.subject.selector.key)
      }
      // The revived documents behave the same in a repository.
      const [x, y] = [new PolicyRepository(), new PolicyRepository()]
      x.upsert(docs)
      y.upsert(revived)
      expect(y.cidrPrefixes()).toEqual(x.cidrPrefixes())
      expect(y.rules.map((r) => r.subject.selector.key)).toEqual(
        x.rules.map((r) => r.subject.selector.key),
      )
    }
  })
})
