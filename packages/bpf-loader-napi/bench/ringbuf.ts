// Ring buffer delivery to JS: 32-byte events produced by a BPF program (loader_maps.o
// emit_event) driven by BPF_PROG_TEST_RUN with repeat, consumed by RingBuffer on the event loop.
//  - max rate: events/s delivered to the JS callback, and how many the producer lost
//  - paced at 200k events/s for 2 s: must lose none
// The npm `bpf` package has no ring buffer support, so there is no peer figure here.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { median, reportFigure } from '@membrane/test-utils'
import { BpfObject, RingBuffer } from '../src/index'

const objPath = fileURLToPath(
  new URL('../../../bpf-src/build/tests/loader_maps.o', import.meta.url),
)
if (!existsSync(objPath)) throw new Error(`${objPath} is missing: run node tools/bpf-build.mjs`)

const obj = BpfObject.open(objPath)
await obj.load()
const prog = obj.program('emit_event')
const state = obj.map('ev_state')
const k0 = Buffer.alloc(4)
const k1 = Buffer.from([1, 0, 0, 0])
const pkt = Buffer.alloc(64)
const lost = () => state.lookup(k1)!.readBigUInt64LE()
const reset = () => {
  state.update(k0, Buffer.alloc(8))
  state.update(k1, Buffer.alloc(8))
}

let delivered = 0
let expectSeq = 0n
let outOfOrder = 0
const rb = new RingBuffer(obj.map('events'), (r) => {
  if (r.readBigUInt64LE(0) !== expectSeq) outOfOrder++
  expectSeq = r.readBigUInt64LE(0) + 1n
  delivered++
})

async function waitFor(n: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (delivered < n && Date.now() < deadline) await new Promise((r) => setImmediate(r))
}

// Max rate: 20 bursts of 50k events (the 4 MiB ring holds ~100k 40-byte records).
async function maxRate(): Promise<{ rate: number; lost: bigint }> {
  reset()
  delivered = 0
  expectSeq = 0n
  const BURST = 50_000
  const BURSTS = 20
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < BURSTS; i++) {
    await prog.testRun({ data: pkt, repeat: BURST })
    await waitFor(BURST * (i + 1) - Number(lost()), 5000)
  }
  await waitFor(BURST * BURSTS - Number(lost()))
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  return { rate: delivered / secs, lost: lost() }
}

// Paced: 2000 events every 10 ms = 200k events/s, for 2 s.
async function paced(): Promise<{
  produced: number
  delivered: number
  lost: bigint
  rate: number
}> {
  reset()
  delivered = 0
  expectSeq = 0n
  const STEP = 2000
  const TICKS = 200
  const t0 = Date.now()
  for (let i = 0; i < TICKS; i++) {
    await prog.testRun({ data: pkt, repeat: STEP })
    const next = t0 + (i + 1) * 10
    const wait = next - Date.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  await waitFor(STEP * TICKS)
  const secs = (Date.now() - t0) / 1000
  return { produced: STEP * TICKS, delivered, lost: lost(), rate: (STEP * TICKS) / secs }
}

const rates: number[] = []
let maxLost = 0n
for (let r = 0; r < 3; r++) {
  const m = await maxRate()
  rates.push(m.rate)
  if (m.lost > maxLost) maxLost = m.lost
}
reportFigure({
  name: 'ring buffer delivery to JS, max rate',
  value: Math.round(median(rates)),
  unit: 'events/s',
  eventBytes: 32,
  producer: 'BPF_PROG_TEST_RUN repeat, bursts of 50k',
  lostAtMaxRate: Number(maxLost),
  outOfOrder,
  target: '>= 1000000 events/s',
})
const p = await paced()
reportFigure({
  name: 'ring buffer at 200k events/s',
  value: Number(p.lost),
  unit: 'events lost',
  produced: p.produced,
  delivered: p.delivered,
  achievedRate: Math.round(p.rate),
  outOfOrder,
  target: 'zero loss at 200k events/s',
})
rb.close()
obj.close()
