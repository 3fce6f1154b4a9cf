import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { edtModel, type TracePacket, tokenBucketModel } from '../src/index'

const NS = 1_000_000_000n

/** Packets with non-decreasing arrival times (ns) and wire lengths 60..9000. */
const trace = fc
  .array(
    fc.record({
      gap: fc.integer({ min: 0, max: 5_000_000 }),
      len: fc.integer({ min: 60, max: 9000 }),
    }),
    { minLength: 1, maxLength: 200 },
  )
  .map((ps) => {
    let t = 10n * NS
    return ps.map(({ gap, len }): TracePacket => {
      t += BigInt(gap)
      return { arrivalNs: t, len }
    })
  })

describe('edtModel (a model, not a measurement)', () => {
  it('labels its output as a model', () => {
    const r = edtModel([{ arrivalNs: 0, len: 100 }], { bytesPerSecond: 1000 })
    expect(r.kind).toBe('model')
    expect(r.model).toBe('edt')
  })

  it('spaces a burst by len·1e9/rate and drops beyond the horizon', () => {
    // 1000 B at 10 kB/s = 100 ms apart; horizon 350 ms: packets 1..3 are delayed, 4 and 5 drop.
    const burst = Array.from({ length: 6 }, () => ({ arrivalNs: 1_000_000_000n, len: 1000 }))
    const r = edtModel(burst, { bytesPerSecond: 10_000, horizonNs: 350_000_000 })
    expect(r.packets.map((p) => p.verdict)).toEqual([
      'send',
      'delay',
      'delay',
      'delay',
      'drop',
      'drop',
    ])
    expect(r.packets.map((p) => p.delayNs)).toEqual([
      0n,
      100_000_000n,
      200_000_000n,
      300_000_000n,
      null,
      null,
    ])
    expect(r.tLast).toBe(1_300_000_000n)
    expect(r.drops).toBe(2)
  })

  it('honours a departure time already on the packet (t = max(tstamp, now))', () => {
    const r = edtModel([{ arrivalNs: 100, len: 1, tstampNs: 5000 }], { bytesPerSecond: 1e9 })
    expect(r.packets[0]).toMatchObject({ verdict: 'send', departureNs: 5000n })
  })

  it('properties: never before arrival, within the horizon, paced by len/rate', () => {
    fc.assert(
      fc.property(
        trace,
        fc.integer({ min: 1000, max: 100_000_000 }),
        fc.integer({ min: 1_000_000, max: 3_000_000_000 }),
        (packets, rate, horizon) => {
          const r = edtModel(packets, { bytesPerSecond: rate, horizonNs: horizon })
          let prev: bigint | undefined
          for (const p of r.packets) {
            if (p.verdict === 'drop') continue
            const d = p.departureNs as bigint
            expect(d >= p.arrivalNs).toBe(true)
            expect(d - p.arrivalNs <= BigInt(horizon)).toBe(true)
            if (prev !== undefined) {
              // Consecutive departures are at least this packet's transmission time apart.
              expect(d - prev >= (BigInt(p.len) * NS) / BigInt(rate)).toBe(true)
            }
            prev = d
          }
          // Nothing is dropped while the schedule is within the horizon: a drop needs a queue.
          expect(r.drops).toBe(r.packets.filter((p) => p.verdict === 'drop').length)
        },
      ),
    )
  })
})

describe('tokenBucketModel (a model, not a measurement)', () => {
  it('drops at the right byte count: a burst passes exactly one second of traffic', () => {
    // 100 kB/s, 1 s burst = 100 000 B = 100 packets of 1000 B; the 101st drops.
    const burst = Array.from({ length: 150 }, () => ({ arrivalNs: 50n * NS, len: 1000 }))
    const r = tokenBucketModel(burst, { bytesPerSecond: 100_000 })
    expect(r.kind).toBe('model')
    expect(r.burstBytes).toBe(100_000n)
    expect(r.passedBytes).toBe(100_000n)
    expect(r.packets.findIndex((p) => p.verdict === 'drop')).toBe(100)
    expect(r.drops).toBe(50)
    // after 10 ms another 1000 B are available
    const later = tokenBucketModel([{ arrivalNs: 50n * NS + 10_000_000n, len: 1000 }], {
      bytesPerSecond: 100_000,
      tTat: r.tTat,
    })
    expect(later.packets[0]?.verdict).toBe('pass')
  })

  it('never passes more than burst + rate·elapsed in any window', () => {
    fc.assert(
      fc.property(trace, fc.integer({ min: 1000, max: 10_000_000 }), (packets, rate) => {
        const r = tokenBucketModel(packets, { bytesPerSecond: rate })
        const ps = r.packets
        for (let i = 0; i < ps.length; i += 7) {
          let sum = 0n
          for (let j = i; j < ps.length; j++) {
            const p = ps[j]
            if (!p) break
            if (p.verdict === 'pass') sum += BigInt(p.len)
            const first = ps[i]?.arrivalNs ?? 0n
            const allowed = r.burstBytes + ((p.arrivalNs - first) * BigInt(rate)) / NS + 1n
            expect(sum <= allowed).toBe(true)
          }
        }
      }),
    )
  })

  it('decides like a classic token-count bucket when costs are exact', () => {
    // rate divides 1e9, so len·1e9/rate is an integer and both forms are exact.
    fc.assert(
      fc.property(
        trace,
        fc.constantFrom(1000, 2000, 5000, 125_000, 1_000_000, 8_000_000),
        fc.integer({ min: 1, max: 2000 }),
        (packets, rate, burstMs) => {
          const depth = BigInt(burstMs) * 1_000_000n
          const r = tokenBucketModel(packets, { bytesPerSecond: rate, burstNs: depth })
          // classic: tokens scaled by 1e9 (byte·ns/s) so refills are exact
          const cap = depth * BigInt(rate)
          let tokens = cap
          let last: bigint | undefined
          const classic = packets.map((p) => {
            const now = BigInt(p.arrivalNs)
            if (last !== undefined) tokens += (now - last) * BigInt(rate)
            if (tokens > cap) tokens = cap
            last = now
            const need = BigInt(p.len) * NS
            if (tokens >= need) {
              tokens -= need
              return 'pass'
            }
            return 'drop'
          })
          expect(r.packets.map((p) => p.verdict)).toEqual(classic)
        },
      ),
    )
  })
})
