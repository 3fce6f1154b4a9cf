/**
 * A Kafka broker STAND-IN for tests: no Kafka broker can run here, so this small server speaks
 * just the protocol bytes a kafkajs producer needs — ApiVersions v0-2, Metadata v0-1,
 * Produce v0-2 (and an empty Fetch v0-4) — and records what reached it.
 */
import { createRequire } from 'node:module'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { KafkaApi } from '@membrane/policy'
import { KafkaWriter, parseKafkaRequest } from '../src/index'

export interface BrokerStandIn {
  port: number
  /** The address advertised in Metadata (set it to the proxy's so clients come back through it). */
  advertise: { host: string; port: number }
  /** API key, version and topics of every request that reached the broker. */
  seen: Array<{ apiKey: number; apiVersion: number; topics: string[] }>
  open(): Promise<number>
  close(): Promise<void>
}

const VERSIONS: Array<[number, number, number]> = [
  [KafkaApi.Produce, 0, 2],
  [KafkaApi.Fetch, 0, 4],
  [KafkaApi.ListOffsets, 0, 1],
  [KafkaApi.Metadata, 0, 1],
  [KafkaApi.ApiVersions, 0, 2],
]

export async function startBrokerStandIn(
  options: { host?: string; port?: number } = {},
): Promise<BrokerStandIn> {
  const host = options.host ?? '127.0.0.1'
  const seen: BrokerStandIn['seen'] = []
  const advertise = { host, port: options.port ?? 0 }
  let offset = 0n
  const respond = (socket: Socket, body: Buffer) => {
    const info = parseKafkaRequest(body)
    seen.push({ apiKey: info.apiKey, apiVersion: info.apiVersion, topics: info.topics })
    const v = info.apiVersion
    const w = new KafkaWriter().i32(info.correlationId)
    switch (info.apiKey) {
      case KafkaApi.ApiVersions:
        w.i16(0).array(VERSIONS, ([k, min, max]) => w.i16(k).i16(min).i16(max))
        if (v >= 1) w.i32(0)
        break
      case KafkaApi.Metadata:
        w.array([0], () => {
          w.i32(0).string(advertise.host).i32(advertise.port)
          if (v >= 1) w.string(null)
        })
        if (v >= 1) w.i32(0)
        w.array(info.topics, (t) => {
          w.i16(0).string(t)
          if (v >= 1) w.i8(0)
          w.array([0], () =>
            w
              .i16(0)
              .i32(0)
              .i32(0)
              .array([0], (n) => w.i32(n))
              .array([0], (n) => w.i32(n)),
          )
        })
        break
      case KafkaApi.Produce:
        if (info.noResponse) return
        w.array(info.topics, (t) => {
          w.string(t).array([0], () => {
            w.i32(0).i16(0).i64(offset++)
            if (v >= 2) w.i64(-1)
          })
        })
        if (v >= 1) w.i32(0)
        break
      case KafkaApi.Fetch:
        if (v >= 1) w.i32(0)
        w.array(info.topics, (t) => {
          w.string(t).array([0], () => {
            w.i32(0).i16(0).i64(0)
            if (v >= 4) w.i64(0).array([], () => {})
            w.bytes(Buffer.alloc(0))
          })
        })
        break
      default:
        socket.destroy()
        return
    }
    socket.write(w.frame())
  }
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    let buf = Buffer.alloc(0)
    socket.on('error', () => {})
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const n = buf.readInt32BE(0)
        respond(socket, buf.subarray(4, 4 + n))
        buf = buf.subarray(4 + n)
      }
    })
  })
  await new Promise<void>((r) => server.listen(options.port ?? 0, host, () => r()))
  return {
    port: (server.address() as AddressInfo).port,
    advertise,
    seen,
    open: () =>
      new Promise((resolve, reject) =>
        server.getConnections((e, n) => (e ? reject(e) : resolve(n))),
      ),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

const require = createRequire(import.meta.url)

/** kafkajs' request framing (size, header, body), used to send real client bytes. */
export const encodeRequest = require('kafkajs/src/protocol/request') as (o: {
  correlationId: number
  clientId: string
  request: unknown
}) => Promise<{ buffer: Buffer }>
/** kafkajs' encoder and decoder of one API version (`name` as in kafkajs/src/protocol/requests). */
export const proto = (name: string, version: number, args: unknown) =>
  (
    require(`kafkajs/src/protocol/requests/${name}`) as {
      protocol: (o: { version: number }) => (a: unknown) => {
        request: unknown
        response: {
          decode: (b: Buffer) => Promise<unknown>
          parse: (d: unknown) => Promise<unknown>
        }
      }
    }
  ).protocol({ version })(args)
