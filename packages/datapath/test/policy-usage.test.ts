import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type PolicyKeyInput, PolicyMap } from '../src/index'
import { FakeMap } from './_fake-map'

const key = fc.record({
  identity: fc.constantFrom(0, 256, 257, 300),
  direction: fc.constantFrom('ingress' as const, 'egress' as const),
  protocol: fc.constantFrom(0, 6, 17),
  port: fc.constantFrom(0, 53, 80, 443, 8080),
  portPrefixLen: fc.constantFrom(0, 12, 16),
})

describe('PolicyMap.usage', () => {
  it('predicts the trie entries and index records apply() writes', () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 40 }), (keys: PolicyKeyInput[]) => {
        const trie = new FakeMap({ type: 'lpm_trie', keySize: 20, valueSize: 24 })
        const index = new FakeMap({ type: 'hash', keySize: 12, valueSize: 24 })
        new PolicyMap(trie, 7, index).apply({
          upserts: keys.map((k) => ({ key: k, value: { deny: false } })),
        })
        // Keys that normalise to the same entry count once, as in the map.
        const distinct = new Map<string, PolicyKeyInput>()
        for (const e of new PolicyMap(trie, 7, index).entries())
          distinct.set(JSON.stringify(e.key), e.key)
        expect(PolicyMap.usage(keys)).toEqual(PolicyMap.usage(distinct.values()))
        expect(PolicyMap.usage(distinct.values())).toEqual({
          entries: trie.store.size,
          indexRecords: index.store.size,
        })
      }),
    )
  })
})
