import { describeKernel } from '@membrane/test-utils'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { BpfObject, createMap, PerfBuffer, possibleCpus, RingBuffer } from '../src/index'
import { testObject, u32le } from './_helpers'

const MAGIC = 0x6d656d6272616e65n

describeKernel('RingBuffer', ['root', 'bpf'], () => {
  let obj: BpfObject
  beforeEach(async () => {
    obj = BpfObject.open(testObject('loader_maps'))
    await obj.load()
  })
  afterEach(() => obj.close())

  const lost = () => obj.map('ev_state').lookup(u32le(1))!.readBigUInt64LE()
  const pkt = Buffer.alloc(64)

  it('delivers N events in order with none lost at a modest rate, on the event loop', async () => {
    const N = 20_000
    const seqs: bigint[] = []
    let bad = 0
    using rb = new RingBuffer(obj.map('events'), (r) => {
      if (r.length !== 32 || r.readBigUInt64LE(8) !== MAGIC) bad++
      seqs.push(r.readBigUInt64LE(0))
    })
    let ticks = 0
    const timer = setInterval(() => ticks++, 1) // the loop keeps turning while events arrive
    try {
      // 20 bursts of 1000 events (testRun repeat), yielding to the loop between bursts
      for (let i = 0; i < N / 1000; i++) {
        await obj.program('emit_event').testRun({ data: pkt, repeat: 1000 })
        await new Promise((r) => setTimeout(r, 2))
      }
      const deadline = Date.now() + 5000
      while (seqs.length < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    } finally {
      clearInterval(timer)
    }
    expect(seqs.length).toBe(N)
    expect(bad).toBe(0)
    expect(lost()).toBe(0n)
    expect(seqs.every((s, i) => s === BigInt(i))).toBe(true)
    expect(rb.delivered).toBe(N)
    expect(ticks).toBeGreaterThan(0)
  })

  it('emits batch and data events, and consume() drains synchronously', async () => {
    using rb = new RingBuffer(obj.map('events'))
    const batches: number[] = []
    let data = 0
    rb.on('batch', (records: Buffer[]) => batches.push(records.length))
    rb.on('data', () => data++)
    await obj.program('emit_event').testRun({ data: pkt, repeat: 300 })
    rb.consume()
    expect(data).toBe(300)
    expect(batches.reduce((a, b) => a + b, 0)).toBe(300)
  })

  it('async iterator with back-pressure: pauses polling, loses nothing the ring can hold', async () => {
    using rb = new RingBuffer(obj.map('events'), undefined, {
      highWaterMark: 100,
      lowWaterMark: 10,
      maxBatch: 50,
    })
    const it = rb[Symbol.asyncIterator]()
    await obj.program('emit_event').testRun({ data: pkt, repeat: 1000 })
    const got: bigint[] = []
    let sawPaused = false
    while (got.length < 1000) {
      const r = await it.next()
      if (r.done) break
      got.push(r.value.readBigUInt64LE(0))
      if (got.length === 1) {
        // a slow consumer: let the loop turn so the ring is polled while we hold back
        await new Promise((res) => setTimeout(res, 20))
        sawPaused = rb.paused
      }
    }
    expect(sawPaused).toBe(true)
    expect(rb.backPressurePauses).toBeGreaterThan(0)
    expect(rb.paused).toBe(false)
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => BigInt(i)))
    expect(lost()).toBe(0n)
    rb.close()
    expect((await it.next()).done).toBe(true)
  })

  it("a throwing callback is reported as 'error' when listened for", async () => {
    const errors: unknown[] = []
    using rb = new RingBuffer(obj.map('events'), () => {
      throw new Error('consumer bug')
    })
    rb.on('error', (e) => errors.push(e))
    await obj.program('emit_event').testRun({ data: pkt, repeat: 3 })
    rb.consume()
    expect(errors.length).toBeGreaterThanOrEqual(1) // one per batch in which it threw
    expect(String(errors[0])).toMatch(/consumer bug/)
  })

  it('refuses a map that is not a ring buffer, and a closed ring', () => {
    using m = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'notrb' })
    expect(() => new RingBuffer(m, () => {})).toThrow(
      /RingBuffer map 'notrb': expected a ringbuf map/,
    )
    const rb = new RingBuffer(obj.map('events'), () => {})
    rb.close()
    expect(() => rb.consume()).toThrow(/closed/)
  })
})

describeKernel('PerfBuffer', ['root', 'bpf'], () => {
  it('delivers perf event array samples with their CPU, none lost at a modest rate', async () => {
    using obj = BpfObject.open(testObject('loader_perf'))
    await obj.load()
    const samples: Array<{ cpu: number; seq: bigint; magic: number }> = []
    using pb = new PerfBuffer(obj.map('perf_events'), ({ cpu, data }) => {
      samples.push({ cpu, seq: data.readBigUInt64LE(0), magic: data.readUInt32LE(12) })
    })
    for (let i = 0; i < 10; i++) {
      await obj.program('emit_perf').testRun({ data: Buffer.alloc(64), repeat: 100 })
      await new Promise((r) => setTimeout(r, 5))
    }
    const deadline = Date.now() + 5000
    while (samples.length < 1000 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5))
    expect(samples).toHaveLength(1000)
    expect(pb.lost).toBe(0)
    expect(samples.every((s) => s.magic === 0x70657266)).toBe(true)
    expect(new Set(samples.map((s) => s.seq)).size).toBe(1000)
    expect(samples.every((s) => s.cpu >= 0 && s.cpu < possibleCpus())).toBe(true)
    // per CPU the order is kept
    for (const cpu of new Set(samples.map((s) => s.cpu))) {
      const seqs = samples.filter((s) => s.cpu === cpu).map((s) => s.seq)
      expect(seqs).toEqual([...seqs].sort((a, b) => (a < b ? -1 : 1)))
    }
  })

  it('refuses a map that is not a perf event array', async () => {
    using m = createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'notperf' })
    expect(() => new PerfBuffer(m)).toThrow(/expected a perf_event_array map/)
  })
})
