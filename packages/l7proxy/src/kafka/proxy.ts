/**
 * The Kafka proxy: reads request frames, checks each against the Kafka rules of the flow,
 * forwards allowed ones to the broker over a marked connection, and answers denied ones itself
 * with TOPIC_AUTHORIZATION_FAILED — keeping responses in request order, as Kafka clients expect.
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { evaluateKafka, kafkaApiName } from '@membrane/policy'
import { type ProxyOrigin, unmapIp } from '@membrane/types'
import { L7ProxyError, L7ProxyErrorCode } from '../errors'
import { ConnectionPolicy } from '../internal/conn-policy'
import type { OriginResolver } from '../origin'
import type { L7PolicySource } from '../policy'
import type { L7ProxyRecord, RecordSink } from '../records'
import { Counters } from '../stats'
import { connectMarked, defaultSocketMarker, type SocketMarker, upstreamMarkFor } from '../upstream'
import {
  buildKafkaErrorResponse,
  KafkaError,
  type KafkaRequestInfo,
  parseKafkaRequest,
  TOPIC_APIS,
} from './wire'

/** Options of {@link KafkaProxy}. */
export interface KafkaProxyOptions {
  origins: OriginResolver
  policy: L7PolicySource
  onRecord?: RecordSink
  /** Upstream SO_MARK (see HttpProxyOptions.markSockets). Default true. */
  markSockets?: boolean | SocketMarker
  /** Largest request or response frame, bytes. Default 16 MiB; larger closes the connection. */
  maxFrameBytes?: number
  /** Idle time of a client connection, ms. Default 10 minutes. */
  idleMs?: number
  /** Requests awaiting a response on one connection at most; beyond, it is closed. Default 1000. */
  maxInFlight?: number
}

/** Counter names of {@link KafkaProxy.stats}. */
export const KAFKA_COUNTERS = [
  'connections',
  'activeConnections',
  'noOrigin',
  'requests',
  'allowed',
  'denied',
  /** Denied requests of a type/version with no error response: connection closed. */
  'deniedClosed',
  /** Frames that did not parse (connection closed). */
  'malformed',
  /** Frames over maxFrameBytes (connection closed). */
  'tooLarge',
  'upstreamErrors',
  'policyErrors',
  /** Connections closed for having more than maxInFlight requests awaiting responses. */
  'tooManyInFlight',
] as const

/** One of {@link KAFKA_COUNTERS}. */
export type KafkaCounter = (typeof KAFKA_COUNTERS)[number]

interface Slot {
  /** Local answer (denied) or the broker's response, once known. */
  response?: Buffer
  upstream: boolean
}

/**
 * A transparent Kafka proxy.
 *
 * @example
 * const kafka = new KafkaProxy({ origins, policy })
 * await kafka.listen({ port: 15092 })
 */
export class KafkaProxy {
  readonly counters = new Counters<KafkaCounter>(KAFKA_COUNTERS)
  readonly #options: KafkaProxyOptions
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #marker: SocketMarker | undefined
  #prepared = false
  #port = 0
  #closed = false

  constructor(options: KafkaProxyOptions) {
    this.#options = options
    this.#server = createServer((s) => this.#onConnection(s))
  }

  get port(): number {
    return this.#port
  }

  stats(): Record<KafkaCounter, number> {
    return this.counters.snapshot()
  }

  /** Load the socket marker (done by listen(); call it before accept() without listen()). */
  async prepare(): Promise<void> {
    if (this.#prepared) return
    const mark = this.#options.markSockets ?? true
    this.#marker = mark === false ? undefined : mark === true ? await defaultSocketMarker() : mark
    this.#prepared = true
  }

  /** Serve a connection accepted elsewhere (the combined {@link L7Proxy}), origin resolved. */
  accept(socket: Socket, origin: ProxyOrigin, proxyPort?: number): void {
    if (this.#closed) {
      socket.destroy()
      return
    }
    if (proxyPort !== undefined) this.#port = proxyPort
    this.#onConnection(socket, origin)
  }

  async listen(options: { port?: number; host?: string } = {}): Promise<AddressInfo> {
    if (this.#closed) throw new L7ProxyError(L7ProxyErrorCode.CLOSED, 'the proxy is closed')
    await this.prepare()
    await new Promise<void>((resolve, reject) => {
      const onError = (cause: Error) =>
        reject(
          new L7ProxyError(L7ProxyErrorCode.LISTEN_FAILED, `cannot listen: ${cause.message}`, {
            path: `listen(${options.host ?? '0.0.0.0'}:${options.port ?? 0})`,
            cause,
          }),
        )
      this.#server.once('error', onError)
      this.#server.listen(options.port ?? 0, options.host ?? '0.0.0.0', () => {
        this.#server.removeListener('error', onError)
        resolve()
      })
    })
    const addr = this.#server.address() as AddressInfo
    this.#port = addr.port
    return addr
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const done = new Promise<void>((r) =>
      this.#server.listening ? this.#server.close(() => r()) : r(),
    )
    for (const s of this.#sockets) s.destroy()
    await done
  }

  #record(
    client: { address: string; port: number },
    origin: ProxyOrigin,
    info: KafkaRequestInfo,
    verdict: L7ProxyRecord['verdict'],
  ): void {
    const sink = this.#options.onRecord
    if (!sink) return
    const kafka: NonNullable<L7ProxyRecord['kafka']> = {
      apiKey: kafkaApiName(info.apiKey),
      apiVersion: info.apiVersion,
      correlationId: info.correlationId,
    }
    if (info.topics.length) kafka.topic = info.topics.join(',')
    if (verdict === 'denied') kafka.errorCode = KafkaError.TOPIC_AUTHORIZATION_FAILED
    try {
      sink({
        time: new Date(),
        type: 'request',
        verdict,
        trafficDirection: origin.direction,
        source: { ip: client.address, port: client.port, identity: origin.srcIdentity },
        destination: { ip: origin.address, port: origin.port, identity: origin.dstIdentity },
        transport: 'tcp',
        proxyPort: this.#port,
        kafka,
      })
    } catch {
      // never break the data path
    }
  }

  #onConnection(socket: Socket, preset?: ProxyOrigin): void {
    this.counters.inc('connections')
    this.counters.inc('activeConnections')
    this.#sockets.add(socket)
    let upstream: Socket | undefined
    socket.once('close', () => {
      this.#sockets.delete(socket)
      this.counters.dec('activeConnections')
      upstream?.destroy()
    })
    socket.on('error', () => {})
    socket.setNoDelay(true)
    socket.setTimeout(this.#options.idleMs ?? 600_000, () => socket.destroy())
    const client = {
      address: unmapIp(socket.remoteAddress ?? ''),
      port: socket.remotePort ?? 0,
    }
    let origin = preset
    if (!origin) {
      try {
        origin = this.#options.origins.resolve({ ...client, protocol: 'TCP' })
      } catch {
        origin = undefined
      }
    }
    if (!origin) {
      this.counters.inc('noOrigin')
      socket.destroy()
      return
    }
    const o = origin
    const policy = new ConnectionPolicy(this.#options.policy, o, 'TCP')
    const mark = this.#marker ? upstreamMarkFor(o.srcIdentity) : undefined
    const up = connectMarked(o.address, o.port, mark, this.#marker)
    upstream = up
    up.on('error', () => {
      this.counters.inc('upstreamErrors')
      socket.destroy()
    })
    up.on('close', () => socket.destroy())
    const max = this.#options.maxFrameBytes ?? 16 << 20
    const maxInFlight = this.#options.maxInFlight ?? 1000
    const queue: Slot[] = []
    const flush = () => {
      while (queue.length && queue[0]?.response) {
        // Backpressure: a slow client stops reading from the broker.
        if (!socket.write((queue.shift() as Slot).response as Buffer)) {
          up.pause()
          socket.once('drain', () => up.resume())
        }
      }
    }
    readKafkaFrames(
      up,
      max,
      (frame) => {
        const slot = queue.find((s) => s.upstream && !s.response)
        if (!slot) {
          // A response nobody asked for: the stream is out of step.
          this.counters.inc('upstreamErrors')
          socket.destroy()
          return false
        }
        slot.response = frame
        flush()
        return true
      },
      () => {
        this.counters.inc('tooLarge')
        socket.destroy()
      },
    )
    readKafkaFrames(
      socket,
      max,
      (frame) => {
        const body = frame.subarray(4)
        let info: KafkaRequestInfo
        try {
          info = parseKafkaRequest(body)
        } catch {
          this.counters.inc('malformed')
          socket.destroy()
          return false
        }
        this.counters.inc('requests')
        let allowed: boolean
        try {
          allowed = evaluateKafka(policy.get(), {
            apiKey: info.apiKey,
            apiVersion: info.apiVersion,
            clientID: info.clientId,
            topics: info.topics,
            topicsUnknown: TOPIC_APIS.has(info.apiKey) && !info.topicsParsed,
          }).allowed
        } catch {
          this.counters.inc('policyErrors')
          allowed = false
        }
        if (allowed) {
          this.counters.inc('allowed')
          this.#record(client, o, info, 'forwarded')
          if (!info.noResponse) queue.push({ upstream: true })
          if (queue.length > maxInFlight) {
            this.counters.inc('tooManyInFlight')
            socket.destroy()
            return false
          }
          // Backpressure: a slow broker stops reading from the client.
          if (!up.write(frame)) {
            socket.pause()
            up.once('drain', () => socket.resume())
          }
          return true
        }
        this.counters.inc('denied')
        this.#record(client, o, info, 'denied')
        if (info.noResponse) return true
        let response: Buffer | undefined
        try {
          response = buildKafkaErrorResponse(body, info)
        } catch {
          response = undefined
        }
        if (!response) {
          this.counters.inc('deniedClosed')
          socket.destroy()
          return false
        }
        queue.push({ upstream: false, response })
        if (queue.length > maxInFlight) {
          this.counters.inc('tooManyInFlight')
          socket.destroy()
          return false
        }
        flush()
        return true
      },
      () => {
        this.counters.inc('tooLarge')
        socket.destroy()
      },
    )
  }
}

/**
 * Split a Kafka stream into frames (4-byte size + payload; the frame handed on includes the
 * size). `onFrame` returns false to stop; a size over `max` (or negative) calls `onTooLarge`.
 */
function readKafkaFrames(
  socket: Socket,
  max: number,
  onFrame: (frame: Buffer) => boolean,
  onTooLarge: () => void,
): void {
  let chunks: Buffer[] = []
  let have = 0
  let stopped = false
  socket.on('data', (d: Buffer) => {
    if (stopped) return
    chunks.push(d)
    have += d.length
    while (have >= 4) {
      let head = chunks[0] as Buffer
      if (head.length < 4) {
        head = Buffer.concat(chunks)
        chunks = [head]
      }
      const size = head.readInt32BE(0)
      if (size < 0 || size > max) {
        stopped = true
        onTooLarge()
        return
      }
      if (have < 4 + size) return
      const all = chunks.length === 1 ? head : Buffer.concat(chunks)
      const frame = all.subarray(0, 4 + size)
      const rest = all.subarray(4 + size)
      chunks = rest.length ? [rest] : []
      have = rest.length
      if (!onFrame(frame)) {
        stopped = true
        return
      }
    }
  })
}
