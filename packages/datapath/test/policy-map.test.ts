import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DatapathError,
  POLICY_SUMMARY,
  PolicyMap,
  policyEntryCodec,
  policyFastKeyCodec,
  policyKeyCodec,
} from '../src/index'
import { rebuildPolicyIndex } from '../src/maps/policy'
import { FakeMap } from './_fake-map'

const newMap = () => new FakeMap({ type: 'lpm_trie', keySize: 20, valueSize: 24 })
const newIndex = () => new FakeMap({ type: 'hash', keySize: 12, valueSize: 24 })

/** lib/policy.h's mb_policy_lookup: the index, its summary record, then the trie. */
function lookupIndexed(
  trie: FakeMap,
  index: FakeMap,
  ep: number,
  identity: number,
  dir: 0 | 1,
  proto: number,
  port: number,
  summaryFirst: boolean,
): Buffer | undefined {
  const fk = (d: number, p: number, dp: number) =>
    policyFastKeyCodec.encode({ endpointId: ep, identity, direction: d, protocol: p, dport: dp })
  const summary = () => {
    const v = index.lookup(fk(dir | POLICY_SUMMARY, 0, 0))
    return v ? policyEntryCodec.decode(v) : undefined
  }
  let s = summaryFirst ? summary() : undefined
  if (summaryFirst && !s) return undefined
  if (!s || s.bytes > 0n) {
    const hit = index.lookup(fk(dir, proto, port))
    if (hit) return hit
    s ??= summary()
    if (!s) return undefined
  }
  if (s.packets === 0n) return undefined
  return trie.lookup(
    policyKeyCodec.encode({
      prefixlen: 96,
      endpointId: ep,
      identity,
      direction: dir,
      protocol: proto,
      dport: port,
    }),
  )
}

/** What the datapath's two lookups + deny precedence decide (lib/policy.h), on the fake LPM. */
function decide(map: FakeMap, ep: number, id: number, dir: 0 | 1, proto: number, port: number) {
  const key = (identity: number) =>
    policyKeyCodec.encode({
      prefixlen: 96,
      endpointId: ep,
      identity,
      direction: dir,
      protocol: proto,
      dport: port,
    })
  const exact = map.lookup(key(id))
  const any = map.lookup(key(0))
  const e = exact ? policyEntryCodec.decode(exact) : undefined
  const a = any ? policyEntryCodec.decode(any) : undefined
  if (e?.deny || a?.deny) return 'deny'
  if (e) return e.proxyPort ? `proxy:${e.proxyPort}` : 'allow'
  if (a) return a.proxyPort ? `proxy:${a.proxyPort}` : 'allow'
  return 'none'
}

describe('PolicyMap', () => {
  it('applies a @membrane/policy diff and reads it back', () => {
    const map = newMap()
    const pm = new PolicyMap(map, 7)
    pm.apply({
      upserts: [
        {
          key: { identity: 256, direction: 'ingress', protocol: 6, port: 80, portPrefixLen: 16 },
          value: { deny: false, proxyPort: 0, authType: 0, derivedFrom: [] },
        },
        {
          key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
          value: { deny: false, proxyPort: 0, authType: 0, derivedFrom: [] },
        },
        {
          key: {
            identity: 300,
            direction: 'ingress',
            protocol: 'TCP',
            port: 8080,
            portPrefixLen: 16,
          },
          value: { deny: false, proxyPort: 15001, authType: 0, derivedFrom: [] },
        },
      ],
      deletes: [],
    })
    expect(pm.size).toBe(3)
    const e = pm.get({ identity: 300, direction: 'ingress', protocol: 6, port: 8080 })
    expect(e).toMatchObject({ deny: false, proxyPort: 15001 })
    expect(decide(map, 7, 256, 0, 6, 80)).toBe('allow')
    expect(decide(map, 7, 256, 0, 6, 81)).toBe('none')
    expect(decide(map, 7, 999, 1, 17, 53)).toBe('allow') // egress allow-all
    expect(decide(map, 7, 300, 0, 6, 8080)).toBe('proxy:15001')
    expect(decide(map, 8, 256, 0, 6, 80)).toBe('none') // other endpoint
    pm.apply({
      deletes: [{ identity: 256, direction: 'ingress', protocol: 6, port: 80, portPrefixLen: 16 }],
    })
    expect(decide(map, 7, 256, 0, 6, 80)).toBe('none')
    expect(pm.size).toBe(2)
  })

  it('deny wins over allow, from either lookup', () => {
    const map = newMap()
    const pm = new PolicyMap(map, 1)
    pm.apply({
      upserts: [
        {
          key: { identity: 256, direction: 'ingress', protocol: 6, port: 80 },
          value: { deny: false },
        },
        {
          key: { identity: 0, direction: 'ingress', protocol: 6, port: 80 },
          value: { deny: true },
        },
        {
          key: { identity: 400, direction: 'ingress', protocol: 0, port: 0 },
          value: { deny: true },
        },
        {
          key: { identity: 0, direction: 'ingress', protocol: 6, port: 443 },
          value: { deny: false },
        },
      ],
    })
    expect(decide(map, 1, 256, 0, 6, 80)).toBe('deny')
    expect(decide(map, 1, 400, 0, 6, 443)).toBe('deny')
    expect(decide(map, 1, 256, 0, 6, 443)).toBe('allow')
  })

  it('port prefixes cover exactly their range (property)', () => {
    fc.assert(
      fc.property(
        fc.nat(0xffff),
        fc.integer({ min: 1, max: 16 }),
        fc.nat(0xffff),
        (port, plen, probe) => {
          const map = newMap()
          new PolicyMap(map, 3).apply({
            upserts: [
              {
                key: {
                  identity: 9,
                  direction: 'egress',
                  protocol: 17,
                  port: port || 1,
                  portPrefixLen: plen,
                },
                value: { deny: false },
              },
            ],
          })
          const mask = (0xffff << (16 - plen)) & 0xffff
          const inside = ((port || 1) & mask) === (probe & mask)
          expect(decide(map, 3, 9, 1, 17, probe)).toBe(inside ? 'allow' : 'none')
        },
      ),
    )
  })

  it('the exact-match index gives what the trie gives, through any diffs (property)', () => {
    const keyArb = fc.record({
      identity: fc.constantFrom(0, 7, 9),
      direction: fc.constantFrom('ingress' as const, 'egress' as const),
      protocol: fc.constantFrom(0, 6, 17),
      port: fc.constantFrom(0, 80, 81, 443, 8080),
      portPrefixLen: fc.constantFrom(16, 15, 8, 0),
    })
    const opArb = fc.record({
      upserts: fc.array(fc.record({ key: keyArb, value: fc.record({ deny: fc.boolean() }) }), {
        maxLength: 6,
      }),
      deletes: fc.array(keyArb, { maxLength: 4 }),
    })
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 6 }), (ops) => {
        const trie = newMap()
        const index = newIndex()
        const pm = new PolicyMap(trie, 4, index)
        for (const op of ops) pm.apply(op)
        for (const identity of [0, 7, 9, 11])
          for (const dir of [0, 1] as const)
            for (const proto of [6, 17])
              for (const port of [80, 81, 443, 8080, 1]) {
                const viaTrie = trie.lookup(
                  policyKeyCodec.encode({
                    prefixlen: 96,
                    endpointId: 4,
                    identity,
                    direction: dir,
                    protocol: proto,
                    dport: port,
                  }),
                )
                for (const summaryFirst of [false, true]) {
                  const viaIndex = lookupIndexed(
                    trie,
                    index,
                    4,
                    identity,
                    dir,
                    proto,
                    port,
                    summaryFirst,
                  )
                  expect(viaIndex?.subarray(0, 8)).toEqual(viaTrie?.subarray(0, 8))
                }
              }
        // The incrementally kept index equals one rebuilt from the trie.
        const kept = new Map(index.keys().map((k) => [k.toString('hex'), index.lookup(k)]))
        const rebuilt = newIndex()
        rebuildPolicyIndex(trie, rebuilt)
        const fresh = new Map(rebuilt.keys().map((k) => [k.toString('hex'), rebuilt.lookup(k)]))
        expect(kept).toEqual(fresh)
        pm.clear()
        expect(index.keys()).toEqual([])
      }),
    )
  })

  it('validates the whole diff before writing anything', () => {
    const map = newMap()
    const pm = new PolicyMap(map, 2)
    expect(() =>
      pm.apply({
        upserts: [
          {
            key: { identity: 1, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
          {
            key: { identity: 1, direction: 'sideways' as 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      }),
    ).toThrowError(/upserts\[1\]\.key\.direction: expected 'ingress' or 'egress'/)
    expect(map.store.size).toBe(0)
    expect(() =>
      pm.apply({
        upserts: [
          {
            key: { identity: 1, direction: 'ingress', protocol: 6, port: 70000 },
            value: { deny: false },
          },
        ],
      }),
    ).toThrowError(DatapathError)
  })

  it('reconcile writes only what differs and deletes the rest; counters survive', () => {
    const map = newMap()
    const pm = new PolicyMap(map, 5)
    const a = {
      key: { identity: 1, direction: 'ingress' as const, protocol: 6, port: 80 },
      value: { deny: false },
    }
    const b = {
      key: { identity: 2, direction: 'ingress' as const, protocol: 6, port: 80 },
      value: { deny: false },
    }
    pm.apply({ upserts: [a, b] })
    new PolicyMap(map, 6).apply({ upserts: [a] })
    const before = map.updates
    expect(pm.reconcile([a])).toEqual({ upserted: 0, deleted: 1 })
    expect(map.updates).toBe(before)
    expect(new PolicyMap(map, 6).size).toBe(1) // other endpoint untouched
    expect(pm.clear()).toBe(1)
  })

  it('rejects endpoint ids that do not fit', () => {
    expect(() => new PolicyMap(newMap(), 0)).toThrowError(/endpointId/)
    expect(() => new PolicyMap(newMap(), 70000)).toThrowError(/endpointId/)
  })
})
