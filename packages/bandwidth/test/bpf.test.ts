/**
 * BPF_PROG_TEST_RUN of lib/edt.h and lib/token_bucket.h through the test objects
 * bpf-src/tests/bw_edt.c and bw_tb.c (they return the raw verdict, so drop reasons are visible).
 */
import { fileURLToPath } from 'node:url'
import { BpfObject } from '@membrane/bpf-loader-napi'
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import fc from 'fast-check'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  decodeThrottleValue,
  edtModel,
  encodeThrottleKey,
  encodeThrottleValue,
  type ThrottleDirection,
  type ThrottleMode,
  throttleEntry,
  tokenBucketModel,
} from '../src/index'
import { SKB, skbCtx, udpFrame } from './_packet'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const DROP_EDT_HORIZON = -162
const DROP_RATE_LIMITED = -198
const EP = 7

interface Run {
  retval: number
  tstamp: bigint
}

describeKernel('BPF_PROG_TEST_RUN: EDT and token bucket', ['root', 'bpf', 'btf', 'bpffs'], () => {
  let pins: { path: string; remove(): void }
  let edtObj: BpfObject
  let tbObj: BpfObject

  beforeAll(async () => {
    pins = tempBpffsDir()
    // Both objects pin mb_throttle by name under the same root, so they share one map, as the
    // endpoint program and bandwidth.c do in production.
    edtObj = BpfObject.open(`${root}bpf-src/build/tests/bw_edt.o`, { pinRoot: pins.path })
    edtObj.setGlobal('cfg_endpoint_id', EP)
    await edtObj.load()
    tbObj = BpfObject.open(`${root}bpf-src/build/tests/bw_tb.o`, { pinRoot: pins.path })
    tbObj.setGlobal('cfg_endpoint_id', EP)
    await tbObj.load()
  })

  afterAll(() => {
    edtObj?.close()
    tbObj?.close()
    pins?.remove()
  })

  const map = () => edtObj.map('mb_throttle')

  function put(
    direction: ThrottleDirection,
    bytesPerSecond: number,
    extra: { mode?: ThrottleMode; horizonNs?: bigint; burstNs?: bigint } = {},
  ) {
    const { key, value } = throttleEntry({ endpointId: EP, direction, bytesPerSecond, ...extra })
    map().update(encodeThrottleKey(key), encodeThrottleValue(value))
  }

  function entry(direction: ThrottleDirection) {
    const v = map().lookup(encodeThrottleKey({ endpointId: EP, direction }))
    if (!v) throw new Error(`no ${direction} entry`)
    return decodeThrottleValue(v)
  }

  async function runProg(obj: BpfObject, name: string, len: number, tstamp = 0n, repeat = 1) {
    const r = await obj.program(name).testRun({
      data: udpFrame(len),
      ctxIn: skbCtx(tstamp),
      repeat,
    })
    const ctx = r.ctx
    if (!ctx || ctx.length < SKB.tstamp + 8) throw new Error('testRun returned no ctx_out')
    return {
      retval: r.retval | 0,
      tstamp: ctx.readBigUInt64LE(SKB.tstamp),
      durationNs: r.durationNs,
    }
  }

  beforeEach(() => {
    for (const direction of ['ingress', 'egress'] as const)
      map().delete(encodeThrottleKey({ endpointId: EP, direction }))
  })

  describe('mb_edt_sched (EDT)', () => {
    it('passes untouched without an entry', async () => {
      const r = await runProg(edtObj, 'bw_edt', 1000)
      expect(r).toMatchObject({ retval: 0, tstamp: 0n })
    })

    it('spaces departures by len/rate and drops beyond the horizon with reason 162', async () => {
      // 1000 B at 10 kB/s: 100 ms apart; horizon 350 ms -> packets 1..3 delayed, 4 dropped.
      put('egress', 10_000, { horizonNs: 350_000_000n })
      const before = process.hrtime.bigint()
      const runs: Run[] = []
      for (let i = 0; i < 6; i++) runs.push(await runProg(edtObj, 'bw_edt', 1000))
      const after = process.hrtime.bigint()

      // Packet 0 is under the rate: leaves now (tstamp untouched), t_last = now.
      expect(runs[0]).toEqual({ retval: 0, tstamp: 0n, durationNs: expect.any(Number) })
      const e = entry('egress')
      const t0 = e.tLast - 300_000_000n
      expect(t0 >= before && t0 <= after).toBe(true)
      for (let k = 1; k <= 3; k++) {
        expect(runs[k]?.retval).toBe(0)
        expect(runs[k]?.tstamp).toBe(t0 + BigInt(k) * 100_000_000n)
      }
      expect(runs[4]?.retval).toBe(DROP_EDT_HORIZON)
      expect(runs[5]?.retval).toBe(DROP_EDT_HORIZON)
      expect(runs[4]?.tstamp).toBe(0n)
      expect(e).toMatchObject({ packets: 4n, bytes: 4000n, drops: 2n, dropBytes: 2000n })

      // The model, fed the same trace (all six arrive at ~t0), decides the same.
      const model = edtModel(
        runs.map(() => ({ arrivalNs: t0, len: 1000 })),
        { bytesPerSecond: 10_000, horizonNs: 350_000_000 },
      )
      expect(model.kind).toBe('model')
      expect(model.packets.map((p) => p.verdict)).toEqual([
        'send',
        'delay',
        'delay',
        'delay',
        'drop',
        'drop',
      ])
      expect(model.packets.slice(1, 4).map((p) => p.departureNs)).toEqual(
        runs.slice(1, 4).map((r) => r.tstamp),
      )
    })

    it('uses the packet’s own departure time when it is later (t = max(tstamp, now))', async () => {
      put('egress', 1_000_000_000) // 1 GB/s: 1000 B cost 1 µs, no queueing
      const stamp = process.hrtime.bigint() + 50_000_000n
      const r = await runProg(edtObj, 'bw_edt', 1000, stamp)
      expect(r.retval).toBe(0)
      expect(r.tstamp).toBe(stamp)
      expect(entry('egress').tLast).toBe(stamp)
    })

    it('ignores a wall-clock stamp (realtime receive time) instead of dropping everything', async () => {
      put('egress', 1_000_000_000)
      const realtime = BigInt(Date.now()) * 1_000_000n
      const before = process.hrtime.bigint()
      const r = await runProg(edtObj, 'bw_edt', 1000, realtime)
      expect(r.retval).toBe(0)
      const tLast = entry('egress').tLast
      expect(tLast >= before && tLast < realtime).toBe(true)
    })

    it('in police mode (no sch_fq) egress uses the token bucket and drops with reason 198', async () => {
      // 10 kB/s, burst 1 s = 10 packets of 1000 B; 15 back-to-back runs.
      put('egress', 10_000, { mode: 'police' })
      const r = await runProg(edtObj, 'bw_edt', 1000, 0n, 15)
      expect(r.retval).toBe(DROP_RATE_LIMITED)
      expect(r.tstamp).toBe(0n)
      expect(entry('egress')).toMatchObject({ packets: 10n, bytes: 10_000n, drops: 5n })
    })
  })

  describe('mb_tb_police (token bucket)', () => {
    it('drops at the right byte count: one second of traffic passes, then reason 198', async () => {
      put('ingress', 10_000)
      const results: number[] = []
      for (let i = 0; i < 12; i++) results.push((await runProg(tbObj, 'bw_tb', 1000)).retval)
      expect(results).toEqual([...Array(10).fill(0), DROP_RATE_LIMITED, DROP_RATE_LIMITED])
      const e = entry('ingress')
      expect(e).toMatchObject({ packets: 10n, bytes: 10_000n, drops: 2n, dropBytes: 2000n })
      const model = tokenBucketModel(
        results.map(() => ({ arrivalNs: 10n ** 12n, len: 1000 })),
        { bytesPerSecond: 10_000 },
      )
      expect(model.passedBytes).toBe(e.bytes)
      expect(model.drops).toBe(Number(e.drops))
    })

    it('counts wire bytes, not packets: a bigger packet empties the bucket sooner', async () => {
      put('ingress', 10_000)
      // 3000 B x 5 against a 10 000 B burst (test runs take frames up to a page)
      const r = await runProg(tbObj, 'bw_tb', 3000, 0n, 5)
      expect(r.retval).toBe(DROP_RATE_LIMITED)
      expect(entry('ingress')).toMatchObject({ packets: 3n, bytes: 9000n, drops: 2n })
    })

    it('counts the headers of every GSO segment (the host veth ingress sees one header)', async () => {
      put('ingress', 10_000)
      // 4 segments of 800 B payload behind one 54-byte header block: 3254 B in the skb,
      // 3254 + 3 x 54 = 3416 B on the wire.
      const r = await tbObj.program('bw_tb').testRun({
        data: udpFrame(3254),
        ctxIn: skbCtx(0n, { segs: 4, size: 800 }),
      })
      expect(r.retval).toBe(0)
      expect(entry('ingress')).toMatchObject({ packets: 1n, bytes: 3416n })
    })

    it('honours a custom burst (burst_ns) and keeps directions apart', async () => {
      put('ingress', 10_000, { burstNs: 300_000_000n }) // 3000 B
      put('egress', 10_000, { mode: 'police' })
      await runProg(tbObj, 'bw_tb', 1000, 0n, 5)
      expect(entry('ingress')).toMatchObject({ packets: 3n, drops: 2n })
      expect(entry('egress')).toMatchObject({ packets: 0n, drops: 0n })
    })
    describe('the TS models decide like the BPF code (back-to-back packet trains)', () => {
      /** Real time passes between test runs; cases whose decisions hinge on < 100 ms are skipped. */
      const MARGIN_NS = 100_000_000n

      it('token bucket: same verdicts and byte counts as tokenBucketModel', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 60, max: 1500 }), { minLength: 1, maxLength: 16 }),
            async (lens) => {
              const rate = 1000
              const model = tokenBucketModel(
                lens.map((len) => ({ arrivalNs: 10n ** 12n, len })),
                { bytesPerSecond: rate },
              )
              // A dropped packet must miss by more than the refill of MARGIN_NS.
              const margin = (MARGIN_NS * BigInt(rate)) / 1_000_000_000n + 1n
              fc.pre(
                model.packets.every(
                  (p) => p.verdict === 'pass' || BigInt(p.len) - p.tokensAfter > margin,
                ),
              )
              map().delete(encodeThrottleKey({ endpointId: EP, direction: 'ingress' }))
              put('ingress', rate)
              const verdicts: string[] = []
              for (const len of lens) {
                const r = await runProg(tbObj, 'bw_tb', len)
                verdicts.push(
                  r.retval === 0 ? 'pass' : r.retval === DROP_RATE_LIMITED ? 'drop' : '?',
                )
              }
              expect(verdicts).toEqual(model.packets.map((p) => p.verdict))
              const e = entry('ingress')
              expect(e.bytes).toBe(model.passedBytes)
              expect(e.dropBytes).toBe(model.droppedBytes)
            },
          ),
          { numRuns: 25 },
        )
      })

      it('EDT: same verdicts and departure offsets as edtModel', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 60, max: 3000 }), { minLength: 2, maxLength: 12 }),
            fc.integer({ min: 200, max: 2000 }),
            async (lens, horizonMs) => {
              const rate = 10_000 // 60..3000 B = 6..300 ms each
              const horizonNs = BigInt(horizonMs) * 1_000_000n
              const T = 10n ** 12n
              const model = edtModel(
                lens.map((len) => ({ arrivalNs: T, len })),
                { bytesPerSecond: rate, horizonNs, tLast: 1n },
              )
              // Skip trains where a packet's delay is within MARGIN_NS of the horizon.
              let tLast = T
              for (const [i, len] of lens.entries()) {
                if (i === 0) continue
                const next = tLast + (BigInt(len) * 1_000_000_000n) / BigInt(rate)
                const d = next - T - horizonNs
                fc.pre(d > MARGIN_NS || d < -MARGIN_NS)
                if (next - T <= horizonNs) tLast = next
              }
              put('egress', rate, { horizonNs })
              const runs: Run[] = []
              for (const len of lens) runs.push(await runProg(edtObj, 'bw_edt', len))
              const verdicts = runs.map((r) =>
                r.retval === DROP_EDT_HORIZON ? 'drop' : r.tstamp === 0n ? 'send' : 'delay',
              )
              expect(verdicts).toEqual(model.packets.map((p) => p.verdict))
              // Departures keep the model's spacing: offsets from packet 0 are identical.
              const e = entry('egress')
              const t0 = e.tLast - (model.tLast - T)
              runs.forEach((r, i) => {
                const p = model.packets[i]
                if (p?.verdict === 'delay')
                  expect(r.tstamp - t0).toBe((p.departureNs as bigint) - T)
              })
              expect(e.drops).toBe(BigInt(model.drops))
            },
          ),
          { numRuns: 20 },
        )
      })
    })
  })
})
