import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  BandwidthError,
  bucketTokens,
  decodeThrottleKey,
  decodeThrottleValue,
  encodeThrottleKey,
  encodeThrottleValue,
  THROTTLE_VALUE_SIZE,
  type ThrottleValue,
  throttleEntry,
} from '../src/index'

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
const value: fc.Arbitrary<ThrottleValue> = fc.record({
  bytesPerSecond: u64,
  horizonNs: u64,
  burstNs: u64,
  tLast: u64,
  tTat: u64,
  packets: u64,
  bytes: u64,
  drops: u64,
  dropBytes: u64,
  mode: fc.constantFrom('edt' as const, 'police' as const),
})

describe('throttle codec', () => {
  it('round-trips keys', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.constantFrom('ingress' as const, 'egress' as const),
        (endpointId, direction) => {
          const b = encodeThrottleKey({ endpointId, direction })
          expect(b.length).toBe(4)
          expect(decodeThrottleKey(b)).toEqual({ endpointId, direction })
        },
      ),
    )
  })

  it('lays the key out as endpoint_id u16 LE, direction u8 (1 in, 2 out), pad 0', () => {
    expect([...encodeThrottleKey({ endpointId: 0x1234, direction: 'egress' })]).toEqual([
      0x34, 0x12, 2, 0,
    ])
    expect([...encodeThrottleKey({ endpointId: 1, direction: 'ingress' })]).toEqual([1, 0, 1, 0])
  })

  it('round-trips values and leaves the spin lock word zero', () => {
    fc.assert(
      fc.property(value, (v) => {
        const b = encodeThrottleValue(v)
        expect(b.length).toBe(THROTTLE_VALUE_SIZE)
        expect(b.readUInt32LE(76)).toBe(0)
        expect(decodeThrottleValue(b)).toEqual(v)
      }),
    )
  })

  it('rejects bad sizes, endpoint ids and directions with the field named', () => {
    expect(() => decodeThrottleValue(Buffer.alloc(79))).toThrow(/expected 80 bytes, got 79/)
    expect(() => decodeThrottleKey(Buffer.from([0, 0, 3, 0]))).toThrow(/direction 3/)
    expect(() => encodeThrottleKey({ endpointId: 65536, direction: 'egress' })).toThrow(
      /endpointId: expected an integer 0\.\.65535, got 65536/,
    )
    expect(() => encodeThrottleKey({ endpointId: 1, direction: 'sideways' as 'egress' })).toThrow(
      BandwidthError,
    )
  })
})

describe('throttleEntry', () => {
  it('computes a fresh entry with defaults (EDT egress, 2 s horizon, 1 s burst)', () => {
    const { key, value } = throttleEntry({
      endpointId: 7,
      direction: 'egress',
      bytesPerSecond: 1_250_000,
    })
    expect(key).toEqual({ endpointId: 7, direction: 'egress' })
    expect(value).toMatchObject({
      bytesPerSecond: 1_250_000n,
      horizonNs: 2_000_000_000n,
      burstNs: 1_000_000_000n,
      tLast: 0n,
      tTat: 0n,
      drops: 0n,
      mode: 'edt',
    })
  })

  it('always polices ingress', () => {
    expect(
      throttleEntry({ endpointId: 1, direction: 'ingress', bytesPerSecond: 10, mode: 'edt' }).value
        .mode,
    ).toBe('police')
  })

  it.each([
    [{ bytesPerSecond: 0 }, /bytesPerSecond: expected a positive integer, got 0/],
    [{ bytesPerSecond: 1.5 }, /bytesPerSecond/],
    [{ bytesPerSecond: 10, horizonNs: -1 }, /horizonNs/],
    [{ bytesPerSecond: 10, burstNs: 0n }, /burstNs/],
  ])('rejects %o', (opts, message) => {
    expect(() => throttleEntry({ endpointId: 1, direction: 'egress', ...opts })).toThrow(message)
  })

  it('bucketTokens: full when fresh, refills at the rate, capped at the burst', () => {
    const { value } = throttleEntry({ endpointId: 1, direction: 'ingress', bytesPerSecond: 1000 })
    expect(bucketTokens(value, 5_000_000_000n)).toBe(1000n)
    const used = { ...value, tTat: 5_000_000_000n }
    expect(bucketTokens(used, 5_000_000_000n)).toBe(0n)
    expect(bucketTokens(used, 5_250_000_000n)).toBe(250n)
    expect(bucketTokens(used, 9_000_000_000n)).toBe(1000n)
  })
})
