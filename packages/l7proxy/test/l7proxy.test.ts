/**
 * The combined L7Proxy: one port (TCP + UDP) dispatching to HTTP, Kafka and DNS by the parser
 * of each flow's L7 policy.
 *
 * No datapath here: a StaticOriginResolver stands in for the BPF redirect, keyed by the client's
 * source address (each protocol's client binds its own loopback address). The DNS server is an
 * in-test stand-in that answers every A query with 10.1.2.3 (dnsmasq is used in dns.test.ts).
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram'
import { request } from 'node:http'
import { connect } from 'node:net'
import type { L7Policy } from '@membrane/policy'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildDnsQuery,
  type DnsLearnEvent,
  DnsRcode,
  KafkaWriter,
  type L7PolicySource,
  L7Proxy,
  parseDnsMessage,
  StaticOriginResolver,
} from '../src/index'
import { startUpstream, type Upstream } from './_http'
import { type BrokerStandIn, startBrokerStandIn } from './_kafka-broker'

const base = { srcIdentity: 1001, endpointId: 3, direction: 'egress' as const }

function dnsStandIn(): Promise<DgramSocket> {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    s.on('message', (q, r) => {
      const m = parseDnsMessage(q)
      const a = Buffer.alloc(16)
      a.writeUInt16BE(0xc00c, 0) // name: pointer to the question
      a.writeUInt16BE(1, 2)
      a.writeUInt16BE(1, 4)
      a.writeUInt32BE(30, 6)
      a.writeUInt16BE(4, 10)
      Buffer.from([10, 1, 2, 3]).copy(a, 12)
      const head = Buffer.from(q.subarray(0, m.questionEnd))
      head.writeUInt16BE(0x8180, 2)
      head.writeUInt16BE(1, 6)
      s.send(Buffer.concat([head, a]), r.port, r.address)
    })
    s.bind(0, '127.0.0.1', () => resolve(s))
  })
}

describe('L7Proxy: one port for HTTP, Kafka and DNS', () => {
  let upstream: Upstream
  let broker: BrokerStandIn
  let dnsServer: DgramSocket
  let proxy: L7Proxy
  const learned: DnsLearnEvent[] = []

  beforeAll(async () => {
    upstream = await startUpstream()
    broker = await startBrokerStandIn()
    dnsServer = await dnsStandIn()
    const origins = new StaticOriginResolver()
      .set('127.0.0.2', undefined, {
        ...base,
        address: '127.0.0.1',
        port: upstream.port,
        dstIdentity: 2001,
      })
      .set('127.0.0.3', undefined, {
        ...base,
        address: '127.0.0.1',
        port: broker.port,
        dstIdentity: 2002,
      })
      .set('127.0.0.4', undefined, {
        ...base,
        address: '127.0.0.1',
        port: dnsServer.address().port,
        dstIdentity: 2003,
      })
      .set('127.0.0.5', undefined, {
        ...base,
        address: '127.0.0.1',
        port: upstream.port,
        dstIdentity: 9999,
      })
    const byPeer: Record<number, L7Policy> = {
      2001: {
        parser: 'http',
        wildcard: false,
        rules: [{ id: 'h', rules: { parser: 'http', http: [{ path: '/ok' }] } }],
      },
      2002: {
        parser: 'kafka',
        wildcard: false,
        rules: [
          { id: 'k', rules: { parser: 'kafka', kafka: [{ role: 'produce', topic: 'topic1' }] } },
        ],
      },
      2003: {
        parser: 'dns',
        wildcard: false,
        rules: [{ id: 'd', rules: { parser: 'dns', dns: [{ matchPattern: '*.example.test' }] } }],
      },
    }
    const policy: L7PolicySource = { rulesFor: (q) => byPeer[q.peerIdentity], revision: 1 }
    proxy = new L7Proxy({
      origins,
      policy,
      markSockets: false,
      dns: { onLearn: (e) => void learned.push(e), minTtlSeconds: 5 },
    })
    await proxy.listen({ host: '0.0.0.0' })
  })

  afterAll(async () => {
    await proxy?.close()
    await upstream?.close()
    await broker?.close()
    dnsServer?.close()
  })

  it('dispatches HTTP by policy', async () => {
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: proxy.port, path, localAddress: '127.0.0.2', agent: false },
          (res) => {
            res.resume()
            res.on('end', () => resolve(res.statusCode ?? 0))
          },
        )
        req.on('error', reject)
        req.end()
      })
    expect(await get('/ok')).toBe(200)
    expect(await get('/no')).toBe(403)
    expect(proxy.stats().http.allowed).toBe(1)
  })

  it('dispatches Kafka by policy', async () => {
    // Metadata v1 for topic2: denied (produce role on topic1 only), answered by the proxy.
    const frame = new KafkaWriter()
      .i16(3)
      .i16(1)
      .i32(77)
      .string('c')
      .i32(1)
      .string('topic2')
      .frame()
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: proxy.port, localAddress: '127.0.0.3' })
      s.on('data', (d: Buffer) => {
        s.end()
        resolve(d)
      })
      s.on('error', reject)
      s.write(frame)
    })
    expect(reply.readInt32BE(4)).toBe(77)
    expect(proxy.stats().kafka.denied).toBe(1)
  })

  it('dispatches DNS over UDP (and learns) and TCP', async () => {
    const ask = (name: string) =>
      new Promise<Buffer>((resolve) => {
        const s = createSocket('udp4')
        s.bind(0, '127.0.0.4', () => {
          s.on('message', (m) => {
            s.close()
            resolve(m)
          })
          s.send(buildDnsQuery(5, name), proxy.port, '127.0.0.1')
        })
      })
    const ok = parseDnsMessage(await ask('api.example.test'))
    expect(ok.answers.map((a) => a.data)).toEqual(['10.1.2.3'])
    expect(learned[0]).toMatchObject({ name: 'api.example.test', ips: ['10.1.2.3'], ttl: 30 })
    expect(parseDnsMessage(await ask('evil.test')).rcode).toBe(DnsRcode.REFUSED)
    const tcp = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: proxy.port, localAddress: '127.0.0.4' })
      const q = buildDnsQuery(6, 'evil.test')
      const len = Buffer.alloc(2)
      len.writeUInt16BE(q.length)
      s.on('data', (d: Buffer) => {
        s.end()
        resolve(d.subarray(2))
      })
      s.on('error', reject)
      s.write(Buffer.concat([len, q]))
    })
    expect(parseDnsMessage(tcp).rcode).toBe(DnsRcode.REFUSED)
  })

  it('closes connections without an origin or a policy, counted', async () => {
    const closed = (localAddress: string) =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: proxy.port, localAddress })
        s.on('data', () => resolve(false))
        s.on('error', () => {})
        s.on('close', () => resolve(true))
      })
    expect(await closed('127.0.0.9')).toBe(true)
    expect(proxy.stats().dispatch.noOrigin).toBe(1)
    expect(await closed('127.0.0.5')).toBe(true)
    expect(proxy.stats().dispatch.noPolicy).toBe(1)
  })
})
