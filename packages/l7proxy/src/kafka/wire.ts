/**
 * Kafka wire protocol: request headers, the topics of topic-bearing requests, and error
 * responses for denied requests. Versions follow the Apache Kafka protocol guide; "flexible"
 * versions (KIP-482: compact strings/arrays and tagged fields) are parsed for topics too.
 */
import { KafkaApi, kafkaApiName } from '@membrane/policy'
import { WireFormatError } from '../errors'

/** Kafka error codes the proxy sends. */
export const KafkaError = {
  NONE: 0,
  TOPIC_AUTHORIZATION_FAILED: 29,
  GROUP_AUTHORIZATION_FAILED: 30,
  CLUSTER_AUTHORIZATION_FAILED: 31,
} as const

/** First flexible version of each API (request header v2, compact encodings, tagged fields). */
const FIRST_FLEXIBLE: Record<number, number> = {
  0: 9,
  1: 12,
  2: 6,
  3: 9,
  4: 4,
  5: 2,
  6: 6,
  7: 3,
  8: 8,
  9: 6,
  10: 3,
  11: 6,
  12: 4,
  13: 4,
  14: 4,
  15: 5,
  16: 3,
  18: 3,
  19: 5,
  20: 4,
  21: 2,
  22: 2,
  23: 4,
  24: 3,
  25: 3,
  26: 3,
  27: 1,
  28: 3,
  29: 2,
  30: 2,
  31: 2,
  32: 4,
  33: 2,
}

/** Is this request version flexible (KIP-482)? */
function isFlexible(apiKey: number, apiVersion: number): boolean {
  const f = FIRST_FLEXIBLE[apiKey]
  return f !== undefined && apiVersion >= f
}

/** A parsed request header and the topics it names. */
export interface KafkaRequestInfo {
  apiKey: number
  apiVersion: number
  correlationId: number
  clientId: string | null
  /** Topics of a topic-bearing request (empty for other requests and "all topics"). */
  topics: string[]
  /** Was the topic list parsed? false for API versions the parser does not know. */
  topicsParsed: boolean
  /** Produce with acks=0: the broker sends no response. */
  noResponse: boolean
  /** Byte offset of the body (after the header). */
  bodyOffset: number
}

const MAX_ARRAY = 100_000

/** A bounds-checked reader over one frame (without the 4-byte size). */
export class KafkaReader {
  off = 0
  constructor(
    readonly buf: Uint8Array,
    readonly flexible: boolean,
    readonly context: string,
  ) {}

  #need(n: number, field: string, what: string): void {
    if (n < 0 || this.off + n > this.buf.length)
      throw new WireFormatError('kafka', `${this.context}.${field}`, this.off, what)
  }

  i8(field: string): number {
    this.#need(1, field, 'an int8')
    const v = this.buf[this.off] as number
    this.off += 1
    return (v << 24) >> 24
  }

  i16(field: string): number {
    this.#need(2, field, 'an int16')
    const v = ((this.buf[this.off] as number) << 8) | (this.buf[this.off + 1] as number)
    this.off += 2
    return (v << 16) >> 16
  }

  i32(field: string): number {
    this.#need(4, field, 'an int32')
    const b = this.buf
    const o = this.off
    const v =
      ((b[o] as number) << 24) |
      ((b[o + 1] as number) << 16) |
      ((b[o + 2] as number) << 8) |
      (b[o + 3] as number)
    this.off += 4
    return v
  }

  skip(n: number, field: string): void {
    this.#need(n, field, `${n} bytes`)
    this.off += n
  }

  uvarint(field: string): number {
    let v = 0
    for (let shift = 0; shift < 35; shift += 7) {
      this.#need(1, field, 'a varint')
      const b = this.buf[this.off++] as number
      v += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return v
    }
    throw new WireFormatError(
      'kafka',
      `${this.context}.${field}`,
      this.off,
      'a varint of at most 5 bytes',
    )
  }

  /** A STRING (int16 length) or COMPACT_STRING; null only when `nullable`. */
  string(field: string, nullable = false, compact = this.flexible): string | null {
    const at = this.off
    const n = compact ? this.uvarint(field) - 1 : this.i16(field)
    if (n < 0) {
      if (nullable) return null
      throw new WireFormatError('kafka', `${this.context}.${field}`, at, 'a non-null string')
    }
    this.#need(n, field, `a string of ${n} bytes`)
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.off, n).toString('utf8')
    this.off += n
    return s
  }

  /** BYTES/RECORDS (int32 length, -1 null) or the compact forms: skipped. */
  skipBytes(field: string): void {
    const n = this.flexible ? this.uvarint(field) - 1 : this.i32(field)
    if (n < 0) return
    this.skip(n, field)
  }

  /** An ARRAY (int32 count, -1 null) or COMPACT_ARRAY; each element then its tagged fields. */
  array<T>(field: string, element: (i: number) => T): T[] | null {
    const at = this.off
    const n = this.flexible ? this.uvarint(field) - 1 : this.i32(field)
    if (n < 0) return null
    if (n > MAX_ARRAY || n > this.buf.length - this.off)
      throw new WireFormatError(
        'kafka',
        `${this.context}.${field}`,
        at,
        'an array count that fits the frame',
      )
    const out: T[] = []
    for (let i = 0; i < n; i++) {
      out.push(element(i))
      if (this.flexible) this.taggedFields(`${field}[${i}]`)
    }
    return out
  }

  taggedFields(field: string): void {
    const n = this.uvarint(`${field}.tagged`)
    if (n > MAX_ARRAY)
      throw new WireFormatError('kafka', `${this.context}.${field}`, this.off, 'few tagged fields')
    for (let i = 0; i < n; i++) {
      this.uvarint(`${field}.tag`)
      this.skip(this.uvarint(`${field}.tagSize`), `${field}.tagData`)
    }
  }
}

/** Parse the request header (v1, or v2 for flexible versions; v0 for ControlledShutdown v0). */
function parseKafkaHeader(
  frame: Uint8Array,
): Omit<KafkaRequestInfo, 'topics' | 'topicsParsed' | 'noResponse'> {
  const r = new KafkaReader(frame, false, 'header')
  const apiKey = r.i16('apiKey')
  const apiVersion = r.i16('apiVersion')
  const correlationId = r.i32('correlationId')
  if (apiKey < 0 || apiVersion < 0)
    throw new WireFormatError('kafka', 'header.apiKey', 0, 'a non-negative api key and version')
  let clientId: string | null = null
  if (!(apiKey === KafkaApi.ControlledShutdown && apiVersion === 0))
    clientId = r.string('clientId', true, false)
  if (isFlexible(apiKey, apiVersion)) r.taggedFields('header')
  return { apiKey, apiVersion, correlationId, clientId, bodyOffset: r.off }
}

function topicNames(r: KafkaReader, field: string, rest: (v: number) => void, v: number): string[] {
  return (
    r.array(field, () => {
      const name = r.string(`${field}.name`) as string
      rest(v)
      return name
    }) ?? []
  )
}

function int32s(r: KafkaReader, field: string): void {
  r.array(field, () => r.i32(field))
}

/**
 * Topics of a topic-bearing request body. Returns undefined for request types or versions
 * without a topic list this parser knows.
 */
function bodyTopics(
  r: KafkaReader,
  apiKey: number,
  v: number,
): { topics: string[]; noResponse?: boolean } | undefined {
  switch (apiKey) {
    case KafkaApi.Produce: {
      if (v > 11) return undefined
      if (v >= 3) r.string('transactionalId', true)
      const acks = r.i16('acks')
      r.i32('timeoutMs')
      const topics = topicNames(
        r,
        'topicData',
        () => {
          r.array('partitionData', () => {
            r.i32('index')
            r.skipBytes('records')
          })
        },
        v,
      )
      return { topics, noResponse: acks === 0 }
    }
    case KafkaApi.Fetch: {
      if (v > 12) return undefined // v13+ names topics by id
      if (v <= 14) r.i32('replicaId')
      r.i32('maxWaitMs')
      r.i32('minBytes')
      if (v >= 3) r.i32('maxBytes')
      if (v >= 4) r.i8('isolationLevel')
      if (v >= 7) {
        r.i32('sessionId')
        r.i32('sessionEpoch')
      }
      const per = 4 + (v >= 9 ? 4 : 0) + 8 + (v >= 12 ? 4 : 0) + (v >= 5 ? 8 : 0) + 4
      return {
        topics: topicNames(
          r,
          'topics',
          () => r.array('partitions', () => r.skip(per, 'partition')),
          v,
        ),
      }
    }
    case KafkaApi.ListOffsets: {
      if (v > 8) return undefined
      r.i32('replicaId')
      if (v >= 2) r.i8('isolationLevel')
      const per = 4 + (v >= 4 ? 4 : 0) + 8 + (v === 0 ? 4 : 0)
      return {
        topics: topicNames(
          r,
          'topics',
          () => r.array('partitions', () => r.skip(per, 'partition')),
          v,
        ),
      }
    }
    case KafkaApi.Metadata: {
      if (v > 12) return undefined
      const topics =
        r.array('topics', () => {
          if (v >= 10) {
            r.skip(16, 'topicId')
            return r.string('name', true) ?? ''
          }
          return r.string('name') as string
        }) ?? []
      return { topics: topics.filter((t) => t !== '') }
    }
    case KafkaApi.OffsetCommit: {
      if (v > 9) return undefined
      r.string('groupId')
      if (v >= 1) {
        r.i32('generationId')
        r.string('memberId')
      }
      if (v >= 7) r.string('groupInstanceId', true)
      if (v >= 2 && v <= 4) r.skip(8, 'retentionTimeMs')
      const per = (pv: number) => {
        r.i32('partitionIndex')
        r.skip(8, 'committedOffset')
        if (pv >= 6) r.i32('committedLeaderEpoch')
        if (pv === 1) r.skip(8, 'commitTimestamp')
        r.string('committedMetadata', true)
      }
      return { topics: topicNames(r, 'topics', () => r.array('partitions', () => per(v)), v) }
    }
    case KafkaApi.OffsetFetch: {
      if (v > 7) return undefined
      r.string('groupId')
      return { topics: topicNames(r, 'topics', () => int32s(r, 'partitionIndexes'), v) }
    }
    case KafkaApi.CreateTopics: {
      if (v > 7) return undefined
      return {
        topics: topicNames(
          r,
          'topics',
          () => {
            r.i32('numPartitions')
            r.i16('replicationFactor')
            r.array('assignments', () => {
              r.i32('partitionIndex')
              int32s(r, 'brokerIds')
            })
            r.array('configs', () => {
              r.string('name')
              r.string('value', true)
            })
          },
          v,
        ),
      }
    }
    case KafkaApi.DeleteTopics: {
      if (v > 5) return undefined
      return { topics: r.array('topicNames', () => r.string('topicName') as string) ?? [] }
    }
    case KafkaApi.DeleteRecords: {
      if (v > 2) return undefined
      return {
        topics: topicNames(
          r,
          'topics',
          () => r.array('partitions', () => r.skip(12, 'partition')),
          v,
        ),
      }
    }
    case KafkaApi.OffsetForLeaderEpoch: {
      if (v > 4) return undefined
      if (v >= 3) r.i32('replicaId')
      const per = 4 + (v >= 2 ? 4 : 0) + 4
      return {
        topics: topicNames(
          r,
          'topics',
          () => r.array('partitions', () => r.skip(per, 'partition')),
          v,
        ),
      }
    }
    case KafkaApi.AddPartitionsToTxn: {
      if (v > 3) return undefined
      r.string('transactionalId')
      r.skip(8, 'producerId')
      r.i16('producerEpoch')
      return { topics: topicNames(r, 'topics', () => int32s(r, 'partitions'), v) }
    }
    case KafkaApi.TxnOffsetCommit: {
      if (v > 3) return undefined
      r.string('transactionalId')
      r.string('groupId')
      r.skip(8, 'producerId')
      r.i16('producerEpoch')
      if (v >= 3) {
        r.i32('generationId')
        r.string('memberId')
        r.string('groupInstanceId', true)
      }
      const per = () => {
        r.i32('partitionIndex')
        r.skip(8, 'committedOffset')
        if (v >= 2) r.i32('committedLeaderEpoch')
        r.string('committedMetadata', true)
      }
      return { topics: topicNames(r, 'topics', () => r.array('partitions', per), v) }
    }
    default:
      return undefined
  }
}

/** The API keys whose requests carry topics (as far as this parser reads them). */
export const TOPIC_APIS: ReadonlySet<number> = new Set([0, 1, 2, 3, 8, 9, 19, 20, 21, 23, 24, 28])

/**
 * Parse one request frame (the bytes after the 4-byte size): header, topics, acks=0.
 * @throws WireFormatError naming the field and byte offset.
 */
export function parseKafkaRequest(frame: Uint8Array): KafkaRequestInfo {
  const h = parseKafkaHeader(frame)
  const r = new KafkaReader(frame, isFlexible(h.apiKey, h.apiVersion), kafkaApiName(h.apiKey))
  r.off = h.bodyOffset
  const body = bodyTopics(r, h.apiKey, h.apiVersion)
  return {
    ...h,
    topics: body ? [...new Set(body.topics)] : [],
    topicsParsed: body !== undefined,
    noResponse: body?.noResponse ?? false,
  }
}

/** A growable big-endian writer (non-flexible encodings). */
export class KafkaWriter {
  #buf = Buffer.alloc(256)
  #len = 0

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return
    const next = Buffer.alloc(Math.max(this.#buf.length * 2, this.#len + n))
    this.#buf.copy(next, 0, 0, this.#len)
    this.#buf = next
  }

  i8(v: number): this {
    this.#ensure(1)
    this.#buf.writeInt8(v, this.#len)
    this.#len += 1
    return this
  }

  i16(v: number): this {
    this.#ensure(2)
    this.#buf.writeInt16BE(v, this.#len)
    this.#len += 2
    return this
  }

  i32(v: number): this {
    this.#ensure(4)
    this.#buf.writeInt32BE(v, this.#len)
    this.#len += 4
    return this
  }

  i64(v: bigint | number): this {
    this.#ensure(8)
    this.#buf.writeBigInt64BE(BigInt(v), this.#len)
    this.#len += 8
    return this
  }

  string(s: string | null): this {
    if (s === null) return this.i16(-1)
    const b = Buffer.from(s, 'utf8')
    this.i16(b.length)
    return this.raw(b)
  }

  bytes(b: Uint8Array | null): this {
    if (b === null) return this.i32(-1)
    this.i32(b.length)
    return this.raw(b)
  }

  array<T>(items: readonly T[] | null, each: (item: T) => void): this {
    if (items === null) return this.i32(-1)
    this.i32(items.length)
    for (const it of items) each(it)
    return this
  }

  raw(b: Uint8Array): this {
    this.#ensure(b.length)
    this.#buf.set(b, this.#len)
    this.#len += b.length
    return this
  }

  /** The bytes written. */
  bytesWritten(): Buffer {
    return this.#buf.subarray(0, this.#len)
  }

  /** The bytes with a 4-byte size prefix: one frame on the wire. */
  frame(): Buffer {
    const out = Buffer.alloc(4 + this.#len)
    out.writeInt32BE(this.#len, 0)
    this.#buf.copy(out, 4, 0, this.#len)
    return out
  }
}

/** Partitions of each topic in a request, for error responses (topic -> partition indexes). */
function requestPartitions(frame: Uint8Array, info: KafkaRequestInfo): Map<string, number[]> {
  const out = new Map<string, number[]>()
  const r = new KafkaReader(
    frame,
    isFlexible(info.apiKey, info.apiVersion),
    kafkaApiName(info.apiKey),
  )
  r.off = info.bodyOffset
  const v = info.apiVersion
  const topicsWith = (field: string, partition: () => number) => {
    r.array(field, () => {
      const name = r.string(`${field}.name`) as string
      const parts = r.array('partitions', partition) ?? []
      out.set(name, [...(out.get(name) ?? []), ...parts])
    })
  }
  switch (info.apiKey) {
    case KafkaApi.Produce:
      if (v >= 3) r.string('transactionalId', true)
      r.i16('acks')
      r.i32('timeoutMs')
      topicsWith('topicData', () => {
        const p = r.i32('index')
        r.skipBytes('records')
        return p
      })
      break
    case KafkaApi.Fetch: {
      r.i32('replicaId')
      r.i32('maxWaitMs')
      r.i32('minBytes')
      if (v >= 3) r.i32('maxBytes')
      if (v >= 4) r.i8('isolationLevel')
      if (v >= 7) r.skip(8, 'session')
      const per = (v >= 9 ? 4 : 0) + 8 + (v >= 12 ? 4 : 0) + (v >= 5 ? 8 : 0) + 4
      topicsWith('topics', () => {
        const p = r.i32('partition')
        r.skip(per, 'partition')
        return p
      })
      break
    }
    case KafkaApi.ListOffsets: {
      r.i32('replicaId')
      if (v >= 2) r.i8('isolationLevel')
      const per = (v >= 4 ? 4 : 0) + 8 + (v === 0 ? 4 : 0)
      topicsWith('topics', () => {
        const p = r.i32('partition')
        r.skip(per, 'partition')
        return p
      })
      break
    }
    case KafkaApi.OffsetCommit: {
      r.string('groupId')
      if (v >= 1) {
        r.i32('generationId')
        r.string('memberId')
      }
      if (v >= 7) r.string('groupInstanceId', true)
      if (v >= 2 && v <= 4) r.skip(8, 'retentionTimeMs')
      topicsWith('topics', () => {
        const p = r.i32('partitionIndex')
        r.skip(8, 'committedOffset')
        if (v >= 6) r.i32('committedLeaderEpoch')
        if (v === 1) r.skip(8, 'commitTimestamp')
        r.string('committedMetadata', true)
        return p
      })
      break
    }
    case KafkaApi.OffsetFetch:
      r.string('groupId')
      topicsWith('topics', () => r.i32('partitionIndex'))
      break
    default:
      for (const t of info.topics) out.set(t, [])
  }
  return out
}

/** Highest (non-flexible) versions whose error responses {@link buildKafkaErrorResponse} writes. */
const ERROR_RESPONSE_MAX_VERSION: Readonly<Record<number, number>> = {
  [KafkaApi.Produce]: 8,
  [KafkaApi.Fetch]: 11,
  [KafkaApi.ListOffsets]: 5,
  [KafkaApi.Metadata]: 8,
  [KafkaApi.OffsetCommit]: 7,
  [KafkaApi.OffsetFetch]: 5,
}

/**
 * The response a broker would send if every topic of the request failed with `errorCode`
 * (TOPIC_AUTHORIZATION_FAILED by default), as one frame (size prefix included). Undefined for
 * API versions it cannot write (the proxy then closes the connection).
 */
export function buildKafkaErrorResponse(
  frame: Uint8Array,
  info: KafkaRequestInfo,
  errorCode: number = KafkaError.TOPIC_AUTHORIZATION_FAILED,
): Buffer | undefined {
  const max = ERROR_RESPONSE_MAX_VERSION[info.apiKey]
  if (max === undefined || info.apiVersion > max) return undefined
  const v = info.apiVersion
  const parts = [...requestPartitions(frame, info)]
  const w = new KafkaWriter().i32(info.correlationId)
  switch (info.apiKey) {
    case KafkaApi.Produce:
      w.array(parts, ([name, ps]) => {
        w.string(name).array(ps, (p) => {
          w.i32(p).i16(errorCode).i64(-1)
          if (v >= 2) w.i64(-1)
          if (v >= 5) w.i64(-1)
          if (v >= 8) w.array([], () => {}).string(null)
        })
      })
      if (v >= 1) w.i32(0)
      break
    case KafkaApi.Fetch:
      if (v >= 1) w.i32(0)
      if (v >= 7) w.i16(0).i32(0)
      w.array(parts, ([name, ps]) => {
        w.string(name).array(ps, (p) => {
          w.i32(p).i16(errorCode).i64(-1)
          if (v >= 4) w.i64(-1)
          if (v >= 5) w.i64(-1)
          if (v >= 4) w.array([], () => {})
          if (v >= 11) w.i32(-1)
          w.bytes(Buffer.alloc(0)) // brokers send an empty record set, not null
        })
      })
      break
    case KafkaApi.ListOffsets:
      if (v >= 2) w.i32(0)
      w.array(parts, ([name, ps]) => {
        w.string(name).array(ps, (p) => {
          w.i32(p).i16(errorCode)
          if (v === 0) w.array([], () => {})
          else w.i64(-1).i64(-1)
          if (v >= 4) w.i32(-1)
        })
      })
      break
    case KafkaApi.Metadata:
      if (v >= 3) w.i32(0)
      w.array([], () => {}) // no brokers
      if (v >= 2) w.string(null)
      if (v >= 1) w.i32(-1)
      w.array(info.topics, (t) => {
        w.i16(errorCode).string(t)
        if (v >= 1) w.i8(0)
        w.array([], () => {})
        if (v >= 8) w.i32(-2147483648)
      })
      if (v >= 8) w.i32(-2147483648)
      break
    case KafkaApi.OffsetCommit:
      if (v >= 3) w.i32(0)
      w.array(parts, ([name, ps]) => {
        w.string(name).array(ps, (p) => {
          w.i32(p).i16(errorCode)
        })
      })
      break
    case KafkaApi.OffsetFetch:
      if (v >= 3) w.i32(0)
      w.array(parts, ([name, ps]) => {
        w.string(name).array(ps, (p) => {
          w.i32(p).i64(-1)
          if (v >= 5) w.i32(-1)
          w.string('').i16(errorCode)
        })
      })
      if (v >= 2) w.i16(0)
      break
  }
  return w.frame()
}
