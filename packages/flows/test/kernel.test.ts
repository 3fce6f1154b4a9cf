import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RingBuffer } from '@membrane/bpf-loader-napi'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { StaticEnricher } from '../src/enrich'
import { EventType, encodeEvent } from '../src/event'
import { ObserverClient } from '../src/grpc'
import { FlowObserver } from '../src/observer'
import { type ObserverServer, startObserverServer } from '../src/server'
import { type FlowsResponse, LostEventSource, Verdict } from '../src/types'
import { type Emitter, openEmitter } from './_emitter'

const template = encodeEvent({
  type: EventType.DROP,
  subtype: 133,
  direction: 1,
  protocol: 6,
  tcpFlags: 2,
  dport: 80,
  saddr: '10.0.0.1',
  daddr: '10.0.0.2',
  srcIdentity: 1000,
  dstIdentity: 2000,
  endpointId: 7,
  len: 74,
})

describeKernel('kernel ring buffer -> flows -> gRPC client', ['root', 'bpf', 'clang'], () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-flows-kernel-'))
  let emitter: Emitter
  let observer: FlowObserver
  let rb: RingBuffer
  let server: ObserverServer
  let client: ObserverClient
  const received: FlowsResponse[] = []
  const ac = new AbortController()
  let reading: Promise<void>

  beforeAll(async () => {
    emitter = await openEmitter()
    const enricher = new StaticEnricher()
    enricher.endpoints.set('10.0.0.2', {
      namespace: 'default',
      podName: 'deathstar-1',
      endpointId: 7,
    })
    observer = new FlowObserver({
      nodeName: 'k',
      enricher,
      lostEvents: () => emitter.lost(),
      capacity: 65535,
    })
    observer.pollLost() // baseline
    rb = new RingBuffer(emitter.ring, (rec) => observer.ingestEvent(rec))
    server = await startObserverServer(observer, { address: `unix://${join(dir, 'o.sock')}` })
    client = new ObserverClient(server.target)
    await client.waitForReady()
    reading = (async () => {
      for await (const r of client.getFlows({ follow: true }, ac.signal)) received.push(r)
    })()
    await new Promise((r) => setTimeout(r, 50))
  })
  afterAll(async () => {
    ac.abort()
    await reading?.catch(() => {})
    client?.close()
    await server?.close()
    rb?.close()
    emitter?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const waitFor = async (cond: () => boolean, ms = 10_000) => {
    const end = Date.now() + ms
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
    return cond()
  }

  it('events written by a BPF program arrive as enriched flows at a gRPC client', async () => {
    await emitter.emit(template, 1000)
    expect(await waitFor(() => received.length >= 1000)).toBe(true)
    const flows = received.map((r) => r.flow)
    expect(flows.every((f) => f?.verdict === Verdict.DROPPED && f.dropReasonDesc === 133)).toBe(
      true,
    )
    const f = flows[0]
    expect(f).toMatchObject({
      IP: { source: '10.0.0.1', destination: '10.0.0.2' },
      l4: { TCP: { destinationPort: 80, flags: { SYN: true } } },
      source: { identity: 1000 },
      destination: { identity: 2000, ID: 7, podName: 'deathstar-1', namespace: 'default' },
      nodeName: 'k',
    })
    // the BPF program set distinct source ports and a CLOCK_MONOTONIC time near now
    expect(new Set(flows.map((x) => x?.l4?.TCP?.sourcePort)).size).toBe(1000)
    const t = (f?.time?.seconds ?? 0) * 1000
    expect(Math.abs(t - Date.now())).toBeLessThan(60_000)
    expect(emitter.lost()).toBe(0n)
  })

  it('a full kernel ring counts losses in mb_events_lost; they reach the client as LostEvent', async () => {
    received.length = 0
    rb.pause()
    await emitter.emit(template, 20_000) // the 1 MiB ring holds about 8k records
    const lost = Number(emitter.lost())
    expect(lost).toBeGreaterThan(5000)
    rb.resume()
    expect(observer.pollLost()).toBe(lost)
    const flowsExpected = 20_000 - lost
    expect(
      await waitFor(
        () =>
          received.filter((r) => r.flow).length >= flowsExpected &&
          received.some((r) => r.lostEvents),
      ),
    ).toBe(true)
    const notice = received.find((r) => r.lostEvents)
    expect(notice?.lostEvents).toEqual({
      source: LostEventSource.PERF_EVENT_RING_BUFFER,
      numEventsLost: lost,
    })
    expect(received.filter((r) => r.flow)).toHaveLength(flowsExpected)
  })
})
