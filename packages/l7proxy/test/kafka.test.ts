/**
 * The Kafka proxy with a real client (kafkajs 2.2.4) against a broker STAND-IN
 * (test/_kafka-broker.ts: no Kafka broker can run here; the stand-in speaks the protocol bytes a
 * producer needs). No datapath: a StaticOriginResolver stands in for the BPF redirect and sends
 * every client to the stand-in; the stand-in advertises the proxy's address in Metadata.
 */
import { connect } from 'node:net'
import { KafkaApi } from '@membrane/policy'
import { Kafka, logLevel } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  KafkaProxy,
  KafkaWriter,
  type L7ProxyRecord,
  StaticOriginResolver,
  staticPolicySource,
} from '../src/index'
import { eventually } from './_http'
import { type BrokerStandIn, encodeRequest, proto, startBrokerStandIn } from './_kafka-broker'

/** Send frames in one write; collect `n` response frames. */
function exchange(port: number, frames: Buffer[], n: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    const out: Buffer[] = []
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`got ${out.length} of ${n} responses`))
    }, 5000)
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        out.push(buf.subarray(0, 4 + buf.readInt32BE(0)))
        buf = buf.subarray(4 + buf.readInt32BE(0))
      }
      if (out.length === n) {
        clearTimeout(timer)
        s.end()
        resolve(out)
      }
    })
    s.on('close', () => {
      clearTimeout(timer)
      if (out.length < n) reject(new Error(`closed after ${out.length} of ${n} responses`))
    })
    s.on('error', () => {})
    s.write(Buffer.concat(frames))
  })
}

describe('KafkaProxy with kafkajs and a broker stand-in', () => {
  let broker: BrokerStandIn
  let proxy: KafkaProxy
  const records: L7ProxyRecord[] = []

  beforeAll(async () => {
    broker = await startBrokerStandIn()
    proxy = new KafkaProxy({
      origins: new StaticOriginResolver({
        fallback: {
          address: '127.0.0.1',
          port: broker.port,
          srcIdentity: 1001,
          dstIdentity: 3003,
          endpointId: 9,
          direction: 'ingress',
        },
      }),
      policy: staticPolicySource({
        parser: 'kafka',
        wildcard: false,
        rules: [
          {
            id: 'CiliumNetworkPolicy/default/kafka:spec.ingress[0]',
            rules: { parser: 'kafka', kafka: [{ role: 'produce', topic: 'topic1' }] },
          },
        ],
      }),
      onRecord: (r) => records.push(r),
      markSockets: false,
      maxFrameBytes: 1 << 20,
    })
    await proxy.listen({ host: '127.0.0.1' })
    broker.advertise.port = proxy.port
  })

  afterAll(async () => {
    await proxy?.close()
    await broker?.close()
  })

  it('lets kafkajs produce to topic1 and answers topic2 with TOPIC_AUTHORIZATION_FAILED', async () => {
    const kafka = new Kafka({
      clientId: 'tiefighter',
      brokers: [`127.0.0.1:${proxy.port}`],
      retry: { retries: 0 },
      logLevel: logLevel.NOTHING,
    })
    const producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
    try {
      const ok = await producer.send({ topic: 'topic1', messages: [{ value: 'hello' }] })
      expect(ok[0]).toMatchObject({ topicName: 'topic1', errorCode: 0 })
      const err = await producer.send({ topic: 'topic2', messages: [{ value: 'nope' }] }).then(
        () => undefined,
        (e: unknown) => e,
      )
      const text = `${String(err)} ${String((err as { cause?: unknown })?.cause)} ${JSON.stringify(err)}`
      expect(text).toMatch(/TOPIC_AUTHORIZATION_FAILED|Not authorized to access topics/)
      // The connection survived the denial: topic1 still works on it.
      const again = await producer.send({ topic: 'topic1', messages: [{ value: 'again' }] })
      expect(again[0]?.errorCode).toBe(0)
    } finally {
      await producer.disconnect()
    }
    expect(broker.seen.some((r) => r.topics.includes('topic2'))).toBe(false)
    expect(broker.seen.filter((r) => r.apiKey === KafkaApi.Produce).length).toBe(2)
    // kafkajs asks Metadata for topic2 first: that request is the one denied.
    const denied = records.find((r) => r.verdict === 'denied')
    expect(denied?.kafka).toMatchObject({ apiKey: 'metadata', errorCode: 29 })
    expect(denied?.kafka?.topic?.split(',')).toContain('topic2')
    expect(denied?.source.identity).toBe(1001)
  })

  it('keeps responses in request order when denied and allowed requests are pipelined', async () => {
    const topics = (t: string) => [{ topic: t, partitions: [0] }]
    const frames = await Promise.all([
      encodeRequest({
        correlationId: 1,
        clientId: 'c',
        request: proto('metadata', 1, { topics: ['topic1'] }).request,
      }),
      encodeRequest({
        correlationId: 2,
        clientId: 'c',
        request: proto('fetch', 4, {
          maxWaitTime: 10,
          minBytes: 1,
          maxBytes: 100,
          topics: topics('topic1').map((t) => ({
            topic: t.topic,
            partitions: [{ partition: 0, fetchOffset: '0', maxBytes: 100 }],
          })),
        }).request,
      }),
      encodeRequest({
        correlationId: 3,
        clientId: 'c',
        request: proto('metadata', 1, { topics: ['topic1'] }).request,
      }),
      encodeRequest({
        correlationId: 4,
        clientId: 'c',
        request: proto('produce', 2, {
          acks: 1,
          timeout: 100,
          topicData: [
            { topic: 'topic2', partitions: [{ partition: 0, messages: [{ value: 'x' }] }] },
          ],
        }).request,
      }),
      encodeRequest({
        correlationId: 5,
        clientId: 'c',
        request: proto('produce', 2, {
          acks: 1,
          timeout: 100,
          topicData: [
            { topic: 'topic1', partitions: [{ partition: 0, messages: [{ value: 'y' }] }] },
          ],
        }).request,
      }),
    ])
    const seenBefore = broker.seen.length
    const out = await exchange(
      proxy.port,
      frames.map((f) => f.buffer),
      5,
    )
    expect(out.map((f) => f.readInt32BE(4))).toEqual([1, 2, 3, 4, 5])
    // Only the allowed requests reached the broker.
    expect(broker.seen.slice(seenBefore).map((r) => [r.apiKey, r.topics])).toEqual([
      [KafkaApi.Metadata, ['topic1']],
      [KafkaApi.Metadata, ['topic1']],
      [KafkaApi.Produce, ['topic1']],
    ])
    const produce = proto('produce', 2, { topicData: [] }).response
    await expect(
      produce.parse(await produce.decode((out[3] as Buffer).subarray(8))),
    ).rejects.toMatchObject({
      type: 'TOPIC_AUTHORIZATION_FAILED',
    })
    const ok = (await produce.decode((out[4] as Buffer).subarray(8))) as {
      topics: Array<{ partitions: Array<{ errorCode: number }> }>
    }
    expect(ok.topics[0]?.partitions[0]?.errorCode).toBe(0)
    // The Fetch (not in the produce role) was answered by the proxy, readable by kafkajs.
    const { response } = proto('fetch', 4, { topics: [] })
    await expect(
      response.parse(await response.decode((out[1] as Buffer).subarray(8))),
    ).rejects.toMatchObject({
      type: 'TOPIC_AUTHORIZATION_FAILED',
    })
  })

  it('closes connections on malformed and oversized frames, counted, without leaks', async () => {
    const before = proxy.stats()
    const garbage = new KafkaWriter().i32(4).i32(0x7fff0000).frame()
    await expect(exchange(proxy.port, [garbage], 1)).rejects.toThrow(/closed/)
    const huge = Buffer.alloc(8)
    huge.writeInt32BE(1 << 30, 0)
    await expect(exchange(proxy.port, [huge], 1)).rejects.toThrow(/closed/)
    // A truncated frame: the size promises more than ever arrives, then the client goes away.
    const truncated = new KafkaWriter().i16(0).i16(2).i32(9).string('c').frame().subarray(0, 9)
    await new Promise<void>((resolve) => {
      const s = connect(proxy.port, '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => resolve())
      s.write(truncated, () => setTimeout(() => s.destroy(), 50))
    })
    const after = proxy.stats()
    expect(after.malformed - before.malformed).toBe(1)
    expect(after.tooLarge - before.tooLarge).toBe(1)
    await eventually(() => proxy.stats().activeConnections === 0)
    await eventually(async () => (await broker.open()) === 0)
  })
})
