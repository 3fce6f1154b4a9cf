/**
 * The proxy's records are what @membrane/flows takes: assignable to its L7Record (checked by the
 * type checker) and converted by l7RecordToFlow for HTTP, DNS and Kafka. batchRecords hands them
 * on in order, in batches bounded in size and delay.
 */
import { type L7Record, l7RecordToFlow } from '@membrane/flows'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { batchRecords, type L7ProxyRecord } from '../src/index'

const base = {
  time: new Date(0),
  trafficDirection: 'ingress' as const,
  source: { ip: '10.0.0.1', port: 40000, identity: 1001 },
  destination: { ip: '10.0.0.2', port: 80, identity: 2000 },
  transport: 'tcp' as const,
  proxyPort: 15001,
}

describe('records feed @membrane/flows', () => {
  it('HTTP request and response', () => {
    const req: L7ProxyRecord = {
      ...base,
      type: 'request',
      verdict: 'denied',
      http: {
        method: 'PUT',
        url: 'http://deathstar/v1/exhaust-port',
        protocol: 'HTTP/1.1',
        code: 403,
      },
    }
    const asFlows: L7Record = req // compile-time: the shapes agree
    const f = l7RecordToFlow(asFlows)
    expect(f.verdict).toBe(2)
    expect(f.l7?.http).toMatchObject({ method: 'PUT', code: 403 })
    expect(f.source?.identity).toBe(1001)
    const res = l7RecordToFlow({
      ...base,
      type: 'response',
      verdict: 'forwarded',
      latencyNs: 1234,
      http: { method: 'GET', url: 'http://d/x', code: 200 },
    } satisfies L7ProxyRecord)
    expect(res.isReply?.value).toBe(true)
    expect(res.l7?.latencyNs).toBe(1234)
  })

  it('DNS and Kafka', () => {
    const dns = l7RecordToFlow({
      ...base,
      type: 'response',
      verdict: 'forwarded',
      transport: 'udp',
      destination: { ip: '10.0.0.53', port: 53, identity: 3000 },
      dns: { query: 'api.example.test.', ips: ['10.1.2.3'], ttl: 60, rcode: 0, qtypes: ['A'] },
    } satisfies L7ProxyRecord)
    expect(dns.l7?.dns).toMatchObject({ query: 'api.example.test.', ips: ['10.1.2.3'] })
    expect(dns.l4?.UDP).toBeDefined()
    const kafka = l7RecordToFlow({
      ...base,
      type: 'request',
      verdict: 'denied',
      kafka: { apiKey: 'produce', apiVersion: 2, correlationId: 4, topic: 'topic2', errorCode: 29 },
    } satisfies L7ProxyRecord)
    expect(kafka.l7?.kafka).toMatchObject({ topic: 'topic2', errorCode: 29 })
  })
})

describe('batchRecords', () => {
  const rec = (port: number): L7ProxyRecord => ({
    ...base,
    source: { ...base.source, port },
    type: 'request',
    verdict: 'forwarded',
  })
  const ports = (rs: L7ProxyRecord[]) => rs.map((r) => r.source.port)
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('hands records on in order, once maxDelayMs has passed', () => {
    const batches: number[][] = []
    const sink = batchRecords((rs) => batches.push(ports(rs)), { maxDelayMs: 10 })
    sink(rec(1))
    sink(rec(2))
    vi.advanceTimersByTime(9)
    expect(batches).toEqual([])
    vi.advanceTimersByTime(1)
    expect(batches).toEqual([[1, 2]])
    sink(rec(3))
    vi.advanceTimersByTime(10)
    expect(batches).toEqual([[1, 2], [3]])
    vi.advanceTimersByTime(100)
    expect(batches).toHaveLength(2)
  })

  it('hands on a full batch at once, and what waits on flush()', () => {
    const batches: number[][] = []
    const sink = batchRecords((rs) => batches.push(ports(rs)), { maxRecords: 3 })
    for (let i = 1; i <= 4; i++) sink(rec(i))
    expect(batches).toEqual([[1, 2, 3]])
    sink.flush()
    expect(batches).toEqual([[1, 2, 3], [4]])
    sink.flush()
    vi.advanceTimersByTime(1000)
    expect(batches).toHaveLength(2)
  })

  it('a throwing sink loses its batch only', () => {
    const seen: number[] = []
    const sink = batchRecords(
      (rs) => {
        seen.push(...ports(rs))
        if (rs.length === 2) throw new Error('sink down')
      },
      { maxRecords: 2 },
    )
    sink(rec(1))
    expect(() => sink(rec(2))).not.toThrow()
    sink(rec(3))
    vi.advanceTimersByTime(10)
    expect(seen).toEqual([1, 2, 3])
  })
})
