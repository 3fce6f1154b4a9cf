import { type IpAddress, ipToBigInt, parseIp } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  IdentityError,
  IPCache,
  type IPCacheEvent,
  makePrefix,
  type Prefix,
  prefixContains,
} from '../src/index'

describe('IPCache', () => {
  it('answers longest-prefix matches and falls back to world', () => {
    const ipc = new IPCache()
    ipc.upsert('10.0.0.0/8', { identity: 100 })
    ipc.upsert('10.1.0.0/16', { identity: 200 })
    ipc.upsert('10.1.2.3', { identity: 300, tunnelEndpoint: '192.168.0.2', encryptKey: 3 })
    ipc.upsert('0.0.0.0/0', { identity: 2 })
    ipc.upsert('2001:db8::/32', { identity: 600 })
    expect(ipc.lookup('10.1.2.3')).toMatchObject({
      prefix: { cidr: '10.1.2.3/32' },
      entry: { identity: 300, tunnelEndpoint: '192.168.0.2', encryptKey: 3, source: 'local' },
    })
    expect(ipc.lookup('10.1.9.9')?.entry.identity).toBe(200)
    expect(ipc.lookup('10.200.0.1')?.entry.identity).toBe(100)
    expect(ipc.lookup('11.0.0.1')?.prefix.cidr).toBe('0.0.0.0/0')
    expect(ipc.lookup('2001:db8::1')?.entry.identity).toBe(600)
    expect(ipc.lookup('2001:db9::1')).toBeUndefined()
    expect(ipc.identityOf('2001:db9::1')).toBe(2)
    expect(ipc.size).toBe(5)
    expect(ipc.delete('10.1.0.0/16')).toBe(true)
    expect(ipc.lookup('10.1.9.9')?.entry.identity).toBe(100)
  })

  it('emits upserts and deletes only on real changes, with the previous entry', () => {
    const ipc = new IPCache()
    const events: IPCacheEvent[] = []
    ipc.upsert('10.0.0.1', { identity: 5 })
    ipc.subscribe((e) => events.push(e))
    expect(events).toHaveLength(1)
    expect(ipc.upsert('10.0.0.1', { identity: 5 })).toBe(false)
    expect(ipc.upsert('10.0.0.1', { identity: 6 })).toBe(true)
    expect(ipc.delete('10.0.0.9')).toBe(false)
    expect(ipc.delete('10.0.0.1')).toBe(true)
    expect(
      events.map((e) => [
        e.type,
        e.prefix.cidr,
        e.type === 'upsert' ? e.entry.identity : e.previous.identity,
      ]),
    ).toEqual([
      ['upsert', '10.0.0.1/32', 5],
      ['upsert', '10.0.0.1/32', 6],
      ['delete', '10.0.0.1/32', 6],
    ])
    const second = events[1] as Extract<IPCacheEvent, { type: 'upsert' }>
    expect(second.previous?.identity).toBe(5)
  })

  it('keeps one entry per source and lets the highest source win', () => {
    const ipc = new IPCache()
    const events: IPCacheEvent[] = []
    ipc.subscribe((e) => events.push(e), { replay: false })
    ipc.upsert('10.0.0.1', { identity: 7, source: 'kvstore' })
    ipc.upsert('10.0.0.1', { identity: 8, source: 'local' })
    expect(ipc.upsert('10.0.0.1', { identity: 9, source: 'kvstore' })).toBe(false)
    expect(ipc.get('10.0.0.1')?.identity).toBe(8)
    expect(ipc.delete('10.0.0.1', 'local')).toBe(true)
    expect(ipc.get('10.0.0.1')).toMatchObject({ identity: 9, source: 'kvstore' })
    expect(ipc.sources('10.0.0.1')).toHaveLength(1)
    expect(events.map((e) => e.type)).toEqual(['upsert', 'upsert', 'upsert'])
  })

  it('rejects bad entries naming the prefix and the field', () => {
    const ipc = new IPCache()
    expect(() => ipc.upsert('10.0.0.0/8', { identity: -1 })).toThrow(
      /10\.0\.0\.0\/8: identity must be/,
    )
    expect(() => ipc.upsert('10.0.0.0/8', { identity: 1, encryptKey: 256 })).toThrow(/encryptKey/)
    expect(() => ipc.upsert('10.0.0.0/8', { identity: 1, tunnelEndpoint: 'nope' })).toThrow(
      /tunnelEndpoint/,
    )
    expect(() => ipc.upsert('10.0.0.0/40', { identity: 1 })).toThrow(IdentityError)
    expect(() => ipc.lookup('not-an-ip')).toThrow(/not-an-ip/)
    expect(ipc.size).toBe(0)
  })

  it('matches a brute-force oracle on random tables (property)', () => {
    const v4Prefix = fc
      .tuple(
        fc.constantFrom(0x0a000000, 0x0a010000, 0xc0a80000, 0),
        fc.nat(0xffff),
        fc.integer({ min: 0, max: 32 }),
      )
      .map(([hi, lo, len]) => makePrefix(4, BigInt((hi | lo) >>> 0), len))
    const v6Prefix = fc
      .tuple(
        fc.bigInt({ min: 0n, max: 0xffffn }),
        fc.bigInt({ min: 0n, max: (1n << 112n) - 1n }),
        fc.integer({ min: 0, max: 128 }),
      )
      .map(([hi, lo, len]) =>
        makePrefix(6, (0x2001n << 112n) | ((hi & 3n) << 96n) | (lo & ((1n << 96n) - 1n)), len),
      )
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('upsert' as const),
        p: fc.oneof(v4Prefix, v6Prefix),
        id: fc.nat(1000),
      }),
      fc.record({
        kind: fc.constant('delete' as const),
        p: fc.oneof(v4Prefix, v6Prefix),
        id: fc.constant(0),
      }),
    )
    const addr = fc.oneof(
      fc
        .tuple(fc.constantFrom(0x0a000000, 0x0a010000, 0xc0a80000, 0x0b000000), fc.nat(0xffff))
        .map(([h, l]) => makePrefix(4, BigInt((h | l) >>> 0), 32)),
      fc
        .tuple(fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: (1n << 96n) - 1n }))
        .map(([h, l]) => makePrefix(6, (0x2001n << 112n) | (h << 96n) | l, 128)),
    )
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.array(addr, { minLength: 1, maxLength: 20 }),
        (ops, probes) => {
          const ipc = new IPCache()
          const oracle = new Map<string, { p: Prefix; id: number }>()
          for (const o of ops) {
            if (o.kind === 'upsert') {
              ipc.upsert(o.p, { identity: o.id })
              oracle.set(o.p.cidr, { p: o.p, id: o.id })
            } else {
              ipc.delete(o.p)
              oracle.delete(o.p.cidr)
            }
          }
          expect(ipc.size).toBe(oracle.size)
          for (const probe of probes) {
            let best: { p: Prefix; id: number } | undefined
            for (const e of oracle.values())
              if (prefixContains(e.p, probe) && (!best || e.p.length > best.p.length)) best = e
            const ip = probe.cidr.slice(0, probe.cidr.indexOf('/'))
            const got = ipc.lookup(ip)
            expect(got?.prefix.cidr).toBe(best?.p.cidr)
            expect(got?.entry.identity).toBe(best?.id)
            const parsed = parseIp(ip) as IpAddress
            const { family } = parsed
            const address = ipToBigInt(parsed)
            expect(ipc.lookupAddress(family, address)?.prefix.cidr).toBe(best?.p.cidr)
          }
        },
      ),
      { numRuns: 400 },
    )
  })
})
