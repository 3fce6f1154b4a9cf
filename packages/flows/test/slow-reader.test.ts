import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { afterAll, describe, expect, it } from 'vitest'
import { EventType, encodeEvent } from '../src/event'
import { ObserverClient } from '../src/grpc'
import { FlowObserver } from '../src/observer'
import { startObserverServer } from '../src/server'
import { LostEventSource } from '../src/types'

const dir = mkdtempSync(join(tmpdir(), 'mb-flows-slow-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a slow gRPC reader', () => {
  it('never holds up ingestion and is told exactly what it missed', async () => {
    const observer = new FlowObserver({ nodeName: 'n', capacity: 256 })
    const server = await startObserverServer(observer, {
      address: `unix://${join(dir, 's.sock')}`,
      maxBufferedBytes: 16 * 1024,
    })
    // a small HTTP/2 window so the reader's stall reaches the server quickly
    const client = new ObserverClient(server.target, grpc.credentials.createInsecure(), {
      'grpc-node.flow_control_window': 65535,
    })
    try {
      // since = the epoch: start at the oldest flow in the ring, so the first one cannot be missed
      const stream = client.getFlows({ follow: true, since: { seconds: 1, nanos: 0 } })
      const rec = (i: number) =>
        encodeEvent({
          type: EventType.TRACE,
          protocol: 6,
          sport: i % 65536,
          dport: 80,
          saddr: '10.0.0.1',
          daddr: '10.0.0.2',
        })
      observer.ingestEvent(rec(0))
      const first = await stream.next()
      expect(first.value?.flow).toBeDefined()
      // the reader stalls; 20000 flows arrive; ingestion is synchronous and never waits
      const TOTAL = 20_000
      const t0 = process.hrtime.bigint()
      for (let i = 1; i <= TOTAL; i++) observer.ingestEvent(rec(i))
      const ingestMs = Number(process.hrtime.bigint() - t0) / 1e6
      expect(ingestMs).toBeGreaterThan(0)
      await new Promise((r) => setTimeout(r, 200))
      // resume reading: every flow is either received or reported lost
      let received = 0
      let lost = 0
      while (received + lost < TOTAL) {
        const r = await stream.next()
        if (r.done) break
        if (r.value.flow) received++
        if (r.value.lostEvents) {
          expect(r.value.lostEvents.source).toBe(LostEventSource.HUBBLE_RING_BUFFER)
          lost += r.value.lostEvents.numEventsLost
        }
      }
      expect(received + lost).toBe(TOTAL)
      expect(lost).toBeGreaterThan(0)
      expect(received).toBeGreaterThan(0)
      await stream.return(undefined)
    } finally {
      client.close()
      await server.close()
    }
  })
})
