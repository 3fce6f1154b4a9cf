// The kernel ring-buffer case of bench/pipeline.ts: a BPF program (test/bpf/emit_events.c)
// writes records into the real `mb_events` ring buffer from another thread (BPF_PROG_TEST_RUN in
// the loader's thread pool) while the RingBuffer callback feeds the observer on the event loop.
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { RingBuffer } from '@membrane/bpf-loader-napi'
import { reportFigure } from '@membrane/test-utils'
import type { Enricher } from '../src/enrich'
import { EventType, encodeEvent } from '../src/event'
import { FlowObserver } from '../src/observer'
import { startObserverServer } from '../src/server'
import { openEmitter } from '../test/_emitter'

interface Counts {
  flows: number
  lostRing: number
  lostOther: number
}

export async function kernelRingBench(
  dir: string,
  total: number,
  enricher: Enricher,
  startClient: (target: string, rate: number, mode?: string) => Promise<ChildProcess>,
  stop: (c: ChildProcess) => Promise<Counts>,
  ask: (c: ChildProcess) => Promise<Counts>,
): Promise<void> {
  const emitter = await openEmitter()
  const observer = new FlowObserver({
    nodeName: 'bench',
    enricher,
    lostEvents: () => emitter.lost(),
  })
  observer.pollLost()
  // Batches below the flow ring's capacity, so one wake-up cannot overwrite what a reader has
  // not been sent yet.
  const rb = new RingBuffer(emitter.ring, (rec) => observer.ingestEvent(rec), { maxBatch: 1024 })
  const server = await startObserverServer(observer, {
    address: `unix://${join(dir, 'kernel.sock')}`,
  })
  const client = await startClient(server.target, 0, 'raw')
  const template = encodeEvent({
    type: EventType.TRACE,
    subtype: 0,
    direction: 1,
    protocol: 6,
    tcpFlags: 0x12,
    dport: 80,
    saddr: '10.0.0.1',
    daddr: '10.0.0.2',
    srcIdentity: 1001,
    dstIdentity: 1002,
    endpointId: 2,
    len: 100,
  })
  try {
    const t0 = process.hrtime.bigint()
    const CHUNK = 2048
    // Closed loop: the kernel side runs at most one chunk ahead of the reader, so the figure is
    // the pipeline's capacity, not how fast BPF_PROG_TEST_RUN can overfill the kernel ring.
    for (let sent = 0; sent < total; ) {
      const n = Math.min(CHUNK, total - sent)
      await emitter.emit(template, n)
      sent += n
      while (observer.seenFlows + Number(emitter.lost()) < sent - CHUNK) {
        await new Promise((r) => setImmediate(r))
      }
    }
    let counts = await ask(client)
    const until = Date.now() + 10_000
    while (Date.now() < until) {
      observer.pollLost()
      const kernelLost = Number(emitter.lost())
      if (counts.flows + counts.lostRing + kernelLost >= total) break
      await new Promise((r) => setTimeout(r, 50))
      counts = await ask(client)
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    observer.pollLost()
    counts = await stop(client)
    const kernelLost = Number(emitter.lost())
    const extra = {
      events: total,
      source: 'BPF ring buffer (mb_events)',
      chunk: CHUNK,
      maxBatch: 1024,
    }
    reportFigure({
      name: 'kernel ring: events through to client',
      value: Math.round((counts.flows + counts.lostRing) / s),
      unit: 'events/s',
      ...extra,
    })
    reportFigure({
      name: 'kernel ring: flows delivered to client',
      value: Math.round(counts.flows / s),
      unit: 'flows/s',
      ...extra,
    })
    reportFigure({
      name: 'kernel ring: lost in the kernel ring (mb_events_lost)',
      value: kernelLost,
      unit: 'events',
      ...extra,
    })
    reportFigure({
      name: 'kernel ring: kernel loss reported to client',
      value: counts.lostOther,
      unit: 'events',
      ...extra,
    })
    reportFigure({
      name: 'kernel ring: lost in the flow ring',
      value: counts.lostRing,
      unit: 'flows',
      ...extra,
    })
  } finally {
    rb.close()
    await server.close()
    emitter.close()
  }
}
