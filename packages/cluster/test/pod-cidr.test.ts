import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkPodCidr, firstFreePodCidr, parseClusterPool } from '../src/index'

describe('cluster pool', () => {
  it('cuts the pool into pod CIDRs and hands out the lowest free one', () => {
    const pool = parseClusterPool('10.0.0.0/16', 24)
    expect(pool).toEqual({ cidr: '10.0.0.0/16', maskSize: 24, size: 256 })
    expect(firstFreePodCidr(pool, new Set())).toBe('10.0.0.0/24')
    expect(firstFreePodCidr(pool, new Set(['10.0.0.0/24', '10.0.2.0/24']))).toBe('10.0.1.0/24')
    const all = new Set(Array.from({ length: 256 }, (_, i) => `10.0.${i}.0/24`))
    expect(firstFreePodCidr(pool, all)).toBeUndefined()
  })

  it('refuses bad pools, masks and pod CIDRs, naming the field', () => {
    expect(() => parseClusterPool('10.0.0.1/16', 24)).toThrow(/clusterPoolCidr.*IPv4 network/)
    expect(() => parseClusterPool('2001:db8::/48', 64)).toThrow(/clusterPoolCidr/)
    expect(() => parseClusterPool('10.0.0.0', 24)).toThrow(/clusterPoolCidr/)
    expect(() => parseClusterPool('10.0.0.0/16', 16)).toThrow(/clusterPoolMaskSize 16/)
    expect(() => parseClusterPool('10.0.0.0/8', 30)).toThrow(/at most \/28/)
    const pool = parseClusterPool('10.0.0.0/16', 24)
    expect(checkPodCidr(pool, '10.0.7.0/24')).toBe('10.0.7.0/24')
    expect(() => checkPodCidr(pool, '10.0.7.0/25')).toThrow(/expected an IPv4 \/24/)
    expect(() => checkPodCidr(pool, '10.1.0.0/24')).toThrow(
      expect.objectContaining({ code: 'POD_CIDR_TAKEN' }),
    )
  })

  it('never hands out a taken or overlapping CIDR, and always one of the pool (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 8, max: 28 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (poolLen, extra, picks) => {
          const pool = parseClusterPool(`10.0.0.0/${poolLen}`, Math.min(30, poolLen + extra))
          const taken = new Set<string>()
          for (const p of picks) {
            const c = firstFreePodCidr(pool, taken)
            if (c === undefined) {
              expect(taken.size).toBe(pool.size)
              break
            }
            expect(taken.has(c)).toBe(false)
            expect(checkPodCidr(pool, c)).toBe(c)
            taken.add(c)
            // Random leaves.
            if (p % 3 === 0) taken.delete([...taken][p % taken.size] as string)
          }
        },
      ),
    )
  })
})
