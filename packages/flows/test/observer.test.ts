import { describe, expect, it } from 'vitest'
import type { MonotonicClock } from '../src/convert'
import { StaticEnricher } from '../src/enrich'
import { EventType, encodeEvent } from '../src/event'
import { L7RecordError } from '../src/l7'
import { FlowObserver, type StreamItem } from '../src/observer'
import { FlowType, L7FlowType, LostEventSource, Verdict } from '../src/types'

// A clock where ktime N ns maps to wall time 1_700_000_000 s + N ns.
const clock: MonotonicClock = {
  toTimestamp: (ns) => ({ seconds: 1_700_000_000 + Math.floor(ns / 1e9), nanos: ns % 1e9 }),
  now: () => ({ seconds: 1_700_000_000, nanos: 0 }),
}

function ev(second: number, dport = 80) {
  return encodeEvent({
    type: EventType.TRACE,
    subtype: 0,
    protocol: 6,
    sport: 1000 + second,
    dport,
    saddr: '10.0.0.1',
    daddr: '10.0.0.2',
    ktimeNs: second * 1e9,
  })
}

async function collect(it: AsyncGenerator<StreamItem>): Promise<StreamItem[]> {
  const out: StreamItem[] = []
  for await (const x of it) out.push(x)
  return out
}
const sports = (items: StreamItem[]) =>
  items.map((i) => ('entry' in i ? i.entry.flow?.l4?.TCP?.sourcePort : 'lost'))

describe('FlowObserver.getFlows', () => {
  const obs = new FlowObserver({ nodeName: 'n1', clock, capacity: 100 })
  for (let s = 0; s < 10; s++) obs.ingestEvent(ev(s, s % 2 ? 443 : 80))

  it('last N, first N, all', async () => {
    expect(sports(await collect(obs.getFlows({ number: 3 })))).toEqual([1007, 1008, 1009])
    expect(sports(await collect(obs.getFlows({ number: 3, first: true })))).toEqual([
      1000, 1001, 1002,
    ])
    expect(await collect(obs.getFlows({}))).toHaveLength(10)
  })

  it('last N counts only matching flows', async () => {
    const items = await collect(
      obs.getFlows({ number: 2, whitelist: [{ destinationPort: ['80'] }] }),
    )
    expect(sports(items)).toEqual([1006, 1008])
  })

  it('since / until select a time window', async () => {
    const items = await collect(
      obs.getFlows({
        since: { seconds: 1_700_000_003, nanos: 0 },
        until: { seconds: 1_700_000_005, nanos: 0 },
      }),
    )
    expect(sports(items)).toEqual([1003, 1004, 1005])
  })

  it('follow without number starts at the head; follow with number replays the last N first', async () => {
    const ac = new AbortController()
    const a = obs.getFlows({ follow: true }, ac.signal)
    const b = obs.getFlows({ follow: true, number: 1 }, ac.signal)
    const pa = a.next()
    const pb1 = await b.next()
    expect(sports([pb1.value as StreamItem])).toEqual([1009])
    obs.ingestEvent(ev(20))
    expect(sports([(await pa).value as StreamItem])).toEqual([1020])
    expect(sports([(await b.next()).value as StreamItem])).toEqual([1020])
    ac.abort()
    expect((await a.next()).done).toBe(true)
  })
})

describe('follow with until', () => {
  it('ends when the wall clock passes until, even without newer flows', async () => {
    const obs = new FlowObserver({ nodeName: 'n1' })
    const ms = Date.now() + 150
    const t0 = Date.now()
    const items = await collect(
      obs.getFlows({
        follow: true,
        until: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
      }),
    )
    expect(items).toEqual([])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100)
  })
})

describe('FlowObserver intake', () => {
  it('datapath losses from the lost-counter provider become LostEvent entries', async () => {
    let lost = 5n
    const obs = new FlowObserver({ clock, lostEvents: () => lost })
    expect(obs.pollLost()).toBe(0) // baseline
    lost = 12n
    expect(obs.pollLost()).toBe(7)
    expect(obs.pollLost()).toBe(0)
    const items = await collect(obs.getFlows({}))
    expect(items).toHaveLength(1)
    expect(items[0]).toMatchObject({
      entry: { lost: { source: LostEventSource.PERF_EVENT_RING_BUFFER, numEventsLost: 7 } },
    })
  })

  it('a failing loss counter is counted by the poll timer, not thrown', async () => {
    const obs = new FlowObserver({
      clock,
      lostPollMs: 10,
      lostEvents: () => {
        throw new Error('map closed')
      },
    })
    obs.start()
    await new Promise((r) => setTimeout(r, 50))
    obs.stop()
    expect(obs.lostPollErrors).toBeGreaterThanOrEqual(2)
    expect(String(obs.lastLostPollError)).toContain('map closed')
  })

  it('an enricher that throws is counted, not thrown into the ring-buffer callback', () => {
    const obs = new FlowObserver({
      clock,
      enricher: {
        endpointByIp: () => {
          throw new Error('boom')
        },
      },
    })
    expect(obs.ingestEvent(ev(1))).toBeUndefined()
    expect(obs.ingestErrors).toBe(1)
    expect(String(obs.lastIngestError)).toContain('boom')
  })

  it('undecodable records are counted, not thrown', () => {
    const obs = new FlowObserver({ clock })
    expect(obs.ingestEvent(Buffer.alloc(10))).toBeUndefined()
    expect(obs.decodeErrors).toBe(1)
  })

  it('ingestEvents consumes an async iterable of records', async () => {
    const obs = new FlowObserver({ clock })
    async function* gen() {
      for (let i = 0; i < 5; i++) yield ev(i)
    }
    await obs.ingestEvents(gen())
    expect(obs.status()).toMatchObject({ numFlows: 5, seenFlows: 5, maxFlows: 4095 })
  })

  it('L7 records become L7 flows (HTTP request/response, DNS, Kafka), enriched', () => {
    const enricher = new StaticEnricher()
    enricher.endpoints.set('10.0.0.2', {
      namespace: 'default',
      podName: 'deathstar-1',
      labels: ['k8s:app=deathstar'],
      identity: 2000,
    })
    const obs = new FlowObserver({ nodeName: 'n1', clock, enricher })
    const req = obs.ingestL7({
      source: { ip: '10.0.0.1', port: 40000, identity: 1000 },
      destination: { ip: '10.0.0.2', port: 80 },
      http: { method: 'POST', url: 'http://deathstar/v1/exhaust-port', protocol: 'HTTP/1.1' },
      verdict: 'denied',
      proxyPort: 15001,
    })
    expect(req).toMatchObject({
      Type: FlowType.L7,
      verdict: Verdict.DROPPED,
      eventType: { type: 129, subType: 0 },
      l4: { TCP: { sourcePort: 40000, destinationPort: 80 } },
      source: { identity: 1000 },
      destination: {
        identity: 2000,
        podName: 'deathstar-1',
        namespace: 'default',
        labels: ['k8s:app=deathstar'],
      },
      l7: { type: L7FlowType.REQUEST, http: { method: 'POST' } },
      isReply: { value: false },
      proxyPort: 15001,
      nodeName: 'n1',
    })
    const resp = obs.ingestL7({
      type: 'response',
      source: { ip: '10.0.0.1', port: 40000 },
      destination: { ip: '10.0.0.2', port: 80 },
      http: { method: 'GET', url: '/', code: 200 },
      latencyNs: 2_500_000,
    })
    // a response travels server -> client
    expect(resp.IP).toMatchObject({ source: '10.0.0.2', destination: '10.0.0.1' })
    expect(resp.l7).toMatchObject({ type: L7FlowType.RESPONSE, latencyNs: 2_500_000 })
    expect(resp.isReply).toEqual({ value: true })
    const dns = obs.ingestL7({
      source: { ip: '10.0.0.1', port: 5353 },
      destination: { ip: '10.0.0.53', port: 53 },
      dns: { query: 'deathstar.default.svc.cluster.local.', qtypes: ['A'] },
    })
    expect(dns.l4).toEqual({ UDP: { sourcePort: 5353, destinationPort: 53 } })
    const kafka = obs.ingestL7({
      source: { ip: '10.0.0.1', port: 5000 },
      destination: { ip: '10.0.0.9', port: 9092 },
      kafka: { apiKey: 'produce', apiVersion: 5, topic: 'empire-announce', correlationId: 7 },
    })
    expect(kafka.l7?.kafka?.topic).toBe('empire-announce')
    expect(obs.status().numFlows).toBe(4)
  })

  it('malformed L7 records are rejected with the field named', () => {
    const obs = new FlowObserver({ clock })
    expect(() =>
      obs.ingestL7({
        source: { ip: 'nope', port: 1 },
        destination: { ip: '10.0.0.1', port: 80 },
        http: {},
      }),
    ).toThrow(/L7 record source\.ip: expected an IP address, got 'nope'/)
    expect(() =>
      obs.ingestL7({
        source: { ip: '10.0.0.1', port: 1 },
        destination: { ip: '10.0.0.1', port: 70000 },
        http: {},
      }),
    ).toThrow(L7RecordError)
    expect(() =>
      obs.ingestL7({
        source: { ip: '10.0.0.1', port: 1 },
        destination: { ip: '10.0.0.1', port: 80 },
      }),
    ).toThrow(/exactly one of http, kafka, dns/)
  })
})
