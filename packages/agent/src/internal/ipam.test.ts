import { formatIpv4 } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Ipam, parseIpv4Prefix, parsePool } from './ipam'

describe('ipv4 prefixes', () => {
  it('refuses prefixes with host bits, and names the network address', () => {
    expect(() => parseIpv4Prefix('ipamPool', '10.200.0.1/16')).toThrow(/10\.200\.0\.0\/16/)
    expect(() => parseIpv4Prefix('ipamPool', '10.200.0.0/33')).toThrow(/ipamPool/)
    expect(parseIpv4Prefix('p', '10.200.0.0/16')).toEqual({ network: 0x0ac80000, length: 16 })
  })
})

describe('Ipam', () => {
  it('keeps the first address for the router and allocates the lowest free one', () => {
    const ipam = new Ipam('10.200.0.0/28')
    expect(ipam.router).toBe('10.200.0.1')
    expect(ipam.allocate()).toBe('10.200.0.2')
    expect(ipam.allocate()).toBe('10.200.0.3')
    ipam.release('10.200.0.2')
    expect(ipam.allocate()).toBe('10.200.0.2')
  })
  it('runs out with a clear error and never hands out network, router or broadcast', () => {
    const ipam = new Ipam('10.200.0.0/28')
    const got = new Set<string>()
    for (let i = 0; i < 13; i++) got.add(ipam.allocate())
    expect(got.size).toBe(13)
    expect(got.has('10.200.0.0') || got.has('10.200.0.1') || got.has('10.200.0.15')).toBe(false)
    expect(() => ipam.allocate()).toThrow(/no free address left in 10.200.0.0\/28/)
  })
  it('restores used addresses and refuses to claim one twice', () => {
    const ipam = new Ipam('10.200.0.0/24', ['10.200.0.2', '10.200.0.4'])
    expect(ipam.allocate()).toBe('10.200.0.3')
    expect(() => ipam.claim('10.200.0.4')).toThrow(/already in use/)
    expect(() => ipam.claim('10.201.0.4')).toThrow(/not an address in the pool/)
    expect(() => ipam.claim('10.200.0.1')).toThrow(/router/)
  })
  it('never allocates the same address twice (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (ops) => {
        const ipam = new Ipam('10.9.0.0/24')
        const live = new Set<string>()
        for (const alloc of ops) {
          if (alloc || live.size === 0) {
            if (live.size >= 253) continue
            const ip = ipam.allocate()
            expect(live.has(ip)).toBe(false)
            live.add(ip)
          } else {
            const ip = [...live][0]!
            live.delete(ip)
            ipam.release(ip)
          }
        }
      }),
    )
  })
})

describe('parsePool', () => {
  it.each([
    ['127.0.0.0/8', 'loopback'],
    ['224.0.0.0/8', 'multicast'],
    ['0.0.0.0/8', 'this network'],
    ['169.254.0.0/16', 'link-local'],
    ['240.0.0.0/8', 'reserved'],
    ['0.128.0.0/9', 'this network'],
  ])('refuses %s (%s), naming the range', (pool, what) => {
    expect(() => parsePool('ipamPool', pool)).toThrow(
      new RegExp(`ipamPool: ${pool.replace(/\./g, '\\.')} overlaps .*${what}`),
    )
    expect(() => new Ipam(pool)).toThrow(/overlaps/)
  })
  it('accepts a pool exactly when it avoids every special range', () => {
    const special = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3'].map((c) =>
      parseIpv4Prefix('r', c),
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 8, max: 28 }),
        (n, len) => {
          const mask = (0xffffffff << (32 - len)) >>> 0
          const network = (n & mask) >>> 0
          const text = `${formatIpv4(network)}/${len}`
          const hits = special.some((s) => {
            const l = Math.min(s.length, len)
            const m = (0xffffffff << (32 - l)) >>> 0
            return (s.network & m) >>> 0 === (network & m) >>> 0
          })
          if (hits) expect(() => parsePool('p', text)).toThrow(/overlaps/)
          else expect(parsePool('p', text)).toEqual({ network, length: len })
        },
      ),
    )
    expect(parsePool('p', '10.200.0.0/16').length).toBe(16)
    expect(parsePool('p', '192.168.0.0/24').length).toBe(24)
  })
})
