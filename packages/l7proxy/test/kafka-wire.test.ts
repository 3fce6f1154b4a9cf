/**
 * Kafka parsers and error responses, checked against an independent implementation: kafkajs's
 * own request encoders produce the frames, and kafkajs's response decoders read our
 * TOPIC_AUTHORIZATION_FAILED answers. Plus fast-check for arbitrary and truncated bytes.
 */
import { createRequire } from 'node:module'
import { KafkaApi } from '@membrane/policy'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  buildKafkaErrorResponse,
  KafkaWriter,
  parseKafkaRequest,
  WireFormatError,
} from '../src/index'

const require = createRequire(import.meta.url)
type Proto = {
  versions: string[]
  protocol: (o: { version: number }) => (args: unknown) => {
    request: unknown
    response: { decode: (b: Buffer) => Promise<unknown>; parse: (d: unknown) => Promise<unknown> }
  }
}
const encodeRequest = require('kafkajs/src/protocol/request') as (o: {
  correlationId: number
  clientId: string
  request: unknown
}) => Promise<{ buffer: Buffer }>
const api = (name: string) => require(`kafkajs/src/protocol/requests/${name}`) as Proto

type Topics = Array<{ topic: string; partitions: number[] }>

/** Request arguments of each kafkajs API for a topic list. */
const ARGS: Record<string, (t: Topics) => unknown> = {
  produce: (t) => ({
    acks: 1,
    timeout: 1000,
    producerId: -1,
    producerEpoch: 0,
    topicData: t.map(({ topic, partitions }) => ({
      topic,
      partitions: partitions.map((partition) => ({
        partition,
        messages: [{ key: 'k', value: `value of ${topic}/${partition}` }],
      })),
    })),
  }),
  fetch: (t) => ({
    maxWaitTime: 100,
    minBytes: 1,
    maxBytes: 1000,
    sessionId: 0,
    sessionEpoch: -1,
    forgottenTopics: [],
    rackId: '',
    topics: t.map(({ topic, partitions }) => ({
      topic,
      partitions: partitions.map((partition) => ({
        partition,
        fetchOffset: '0',
        maxBytes: 1000,
        logStartOffset: '0',
        currentLeaderEpoch: -1,
      })),
    })),
  }),
  listOffsets: (t) => ({
    topics: t.map(({ topic, partitions }) => ({
      topic,
      partitions: partitions.map((partition) => ({ partition, timestamp: -1 })),
    })),
  }),
  metadata: (t) => ({ topics: t.map((x) => x.topic), allowAutoTopicCreation: false }),
  offsetCommit: (t) => ({
    groupId: 'g',
    groupGenerationId: 1,
    memberId: 'm',
    topics: t.map(({ topic, partitions }) => ({
      topic,
      partitions: partitions.map((partition) => ({ partition, offset: '5' })),
    })),
  }),
  offsetFetch: (t) => ({
    groupId: 'g',
    topics: t.map(({ topic, partitions }) => ({
      topic,
      partitions: partitions.map((partition) => ({ partition })),
    })),
  }),
}

const KEYS: Record<string, number> = {
  produce: KafkaApi.Produce,
  fetch: KafkaApi.Fetch,
  listOffsets: KafkaApi.ListOffsets,
  metadata: KafkaApi.Metadata,
  offsetCommit: KafkaApi.OffsetCommit,
  offsetFetch: KafkaApi.OffsetFetch,
}

async function frameOf(name: string, version: number, topics: Topics, correlationId = 7) {
  const { request, response } = api(name).protocol({ version })(ARGS[name]?.(topics))
  const { buffer } = await encodeRequest({ correlationId, clientId: 'client-1', request })
  return { frame: buffer, body: buffer.subarray(4), response }
}

const topicName = fc.stringMatching(/^[a-zA-Z0-9._-]{1,30}$/)
const topicsArb = fc.uniqueArray(
  fc.record({
    topic: topicName,
    partitions: fc.uniqueArray(fc.nat(50), { minLength: 1, maxLength: 4 }),
  }),
  { minLength: 1, maxLength: 4, selector: (t) => t.topic },
)

describe('parseKafkaRequest reads kafkajs-encoded requests', () => {
  for (const name of Object.keys(ARGS)) {
    for (const v of api(name).versions.map(Number)) {
      it(`${name} v${v}: header and topics`, async () => {
        await fc.assert(
          fc.asyncProperty(topicsArb, async (topics) => {
            const { body } = await frameOf(name, v, topics, 4242)
            const info = parseKafkaRequest(body)
            expect(info).toMatchObject({
              apiKey: KEYS[name],
              apiVersion: v,
              correlationId: 4242,
              clientId: 'client-1',
              topicsParsed: true,
            })
            expect(info.topics).toEqual(topics.map((t) => t.topic))
          }),
          { numRuns: 25 },
        )
      })
    }
  }

  it('marks produce with acks=0 as having no response', async () => {
    const { request } = api('produce').protocol({ version: 2 })({
      ...(ARGS.produce?.([{ topic: 't', partitions: [0] }]) as object),
      acks: 0,
    })
    const { buffer } = await encodeRequest({ correlationId: 1, clientId: 'c', request })
    expect(parseKafkaRequest(buffer.subarray(4)).noResponse).toBe(true)
  })
})

describe('buildKafkaErrorResponse is read by kafkajs decoders as TOPIC_AUTHORIZATION_FAILED', () => {
  for (const name of Object.keys(ARGS)) {
    for (const v of api(name).versions.map(Number)) {
      it(`${name} v${v}`, async () => {
        const topics = [
          { topic: 'topic2', partitions: [0, 3] },
          { topic: 'other', partitions: [1] },
        ]
        const { body, response } = await frameOf(name, v, topics, 99)
        const info = parseKafkaRequest(body)
        const out = buildKafkaErrorResponse(body, info) as Buffer
        expect(out.readInt32BE(0)).toBe(out.length - 4)
        expect(out.readInt32BE(4)).toBe(99) // correlation id
        const decoded = (await response.decode(out.subarray(8))) as Record<string, unknown>
        // kafkajs's parse() throws the broker error it finds, by its Kafka name.
        await expect(response.parse(decoded)).rejects.toMatchObject({
          type: 'TOPIC_AUTHORIZATION_FAILED',
        })
      })
    }
  }
})

describe('Kafka parser robustness', () => {
  it('throws only WireFormatError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          parseKafkaRequest(b)
        } catch (e) {
          expect(e).toBeInstanceOf(WireFormatError)
        }
      }),
      { numRuns: 3000 },
    )
  })

  it('rejects every truncation of a valid request with WireFormatError', async () => {
    const { body } = await frameOf('produce', 3, [
      { topic: 'topic1', partitions: [0, 1] },
      { topic: 'topic2', partitions: [2] },
    ])
    for (let n = 0; n < body.length; n++) {
      try {
        const info = parseKafkaRequest(body.subarray(0, n))
        // A prefix that still parses cannot have found both topics.
        expect(info.topics).not.toEqual(['topic1', 'topic2'])
      } catch (e) {
        expect(e).toBeInstanceOf(WireFormatError)
      }
    }
  })

  it('rejects array counts larger than the frame', () => {
    const w = new KafkaWriter().i16(3).i16(1).i32(1).string('c').i32(0x7fffffff)
    expect(() => parseKafkaRequest(w.bytesWritten())).toThrow(/array count/)
  })

  it('parses flexible (compact) Metadata v9 topics', () => {
    // header v2: apiKey, version, correlation, client id (int16 string), tagged fields (0)
    const b = Buffer.concat([
      Buffer.from([0, 3, 0, 9, 0, 0, 0, 1, 0, 1, 0x63, 0]),
      Buffer.from([3]), // compact array of 2
      Buffer.from([3, 0x61, 0x62, 0]), // "ab" + tagged fields
      Buffer.from([2, 0x63, 0]), // "c" + tagged fields
      Buffer.from([1, 0, 0, 0]), // allow auto creation, include ops x2, tagged
    ])
    expect(parseKafkaRequest(b).topics).toEqual(['ab', 'c'])
  })
})
