import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FlowRing } from '../src/ring'
import { FlowType, Verdict } from '../src/types'

const entry = (n: number) => ({
  time: { seconds: n, nanos: 0 },
  flow: { verdict: Verdict.FORWARDED, Type: FlowType.L3_L4, proxyPort: n },
})

describe('FlowRing', () => {
  it('keeps the newest `capacity` entries and overwrites the oldest', () => {
    const ring = new FlowRing(4)
    for (let i = 0; i < 10; i++) ring.push(entry(i))
    expect(ring.size).toBe(4)
    expect(ring.oldest).toBe(6)
    expect(ring.head).toBe(10)
    expect(ring.at(5)).toBeUndefined()
    expect([...ring.entries()].map((e) => e.flow?.proxyPort)).toEqual([6, 7, 8, 9])
  })

  it('a reader behind the ring sees exactly how many entries it lost (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 30 }),
        (cap, bursts) => {
          const ring = new FlowRing(cap)
          let cursor = 0
          let seen = 0
          let lost = 0
          let written = 0
          for (const burst of bursts) {
            for (let i = 0; i < burst; i++) ring.push(entry(written++))
            // reader catches up once per burst
            if (cursor < ring.oldest) {
              lost += ring.oldest - cursor
              cursor = ring.oldest
            }
            while (cursor < ring.head) {
              const e = ring.at(cursor)
              expect(e?.seq).toBe(cursor)
              expect(e?.flow?.proxyPort).toBe(cursor)
              seen++
              cursor++
            }
          }
          expect(seen + lost).toBe(written)
          expect(ring.size).toBe(Math.min(cap, written))
        },
      ),
    )
  })

  it('wakes waiting readers on write, and a cancelled wait does not fire', () => {
    const ring = new FlowRing(2)
    let a = 0
    let b = 0
    ring.waitForWrite(() => a++)
    const cancel = ring.waitForWrite(() => b++)
    cancel()
    ring.push(entry(1))
    ring.push(entry(2))
    expect(a).toBe(1)
    expect(b).toBe(0)
  })

  it('rejects a bad capacity and names it', () => {
    expect(() => new FlowRing(0)).toThrow(/capacity must be an integer in 1\.\.16777216, got 0/)
  })
})
