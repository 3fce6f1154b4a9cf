/**
 * The Observer gRPC server on node:http2. gRPC is HTTP/2 with length-prefixed protobuf messages
 * and a status in the trailers; serving it directly lets GetFlows put every flow that is ready
 * into one write (grpc-js writes one message per socket round trip, which caps a stream far
 * below the datapath's event rate). Wire-compatible with any gRPC client (grpc-js, grpc-go's
 * hubble CLI, proto-loader generated clients).
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs'
import {
  createSecureServer,
  createServer,
  type Http2Server,
  constants as h2,
  type SecureServerOptions,
  type ServerHttp2Stream,
} from 'node:http2'
import { dirname } from 'node:path'
import type { GetAgentEventsRequest } from './agent-events'
import { FilterError } from './filter'
import type { ObserverNode } from './grpc'
import { type FlowObserver, frame, type GetFlowsRequest } from './observer'
import { assertKnownFields, decodeMessage, encodeMessage } from './proto'

/** gRPC status codes used here. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const

/** Why GetDebugEvents answers UNIMPLEMENTED (both servers say the same). */
export const NO_DEBUG_EVENTS =
  "GetDebugEvents: Membrane's datapath emits no debug events (bpf-src has no debug capture " +
  'points), so there is nothing to stream; use GetFlows for drops and traces'

/**
 * Decode a request of `name` for a server: fields this schema does not declare are refused
 * (a newer client's filter must not silently match everything).
 * @throws FilterError naming the unknown field, or the decode error.
 */
export function decodeRequest<T>(name: string, msg: Uint8Array): T {
  assertKnownFields(name, msg)
  return decodeMessage(name, msg, true) as T
}

/** Options of {@link startObserverServer}. */
export interface ObserverServerOptions {
  /** `host:port` (port 0 = any free port) or `unix:///path/to.sock`. Default '127.0.0.1:4245'. */
  address?: string
  /** Serve TLS (h2 with ALPN) with these options (key, cert, ca, requestCert ...). Default: h2c. */
  tls?: SecureServerOptions
  /**
   * Bytes a GetFlows stream may have queued for a reader before the server waits for it
   * (default 4 MiB). Bounds what a slow reader holds; what it misses meanwhile is reported as
   * lost (LostEvent HUBBLE_RING_BUFFER).
   */
  maxBufferedBytes?: number
  /** Most responses put into one write (default 512). */
  batch?: number
}

/** A running Observer server. */
export interface ObserverServer {
  /** Bound TCP port (0 for a unix socket). */
  port: number
  /** What clients dial: `host:port` or `unix:///path`. */
  target: string
  server: Http2Server
  /** Stop: ends open streams, closes sessions, releases the address. */
  close(): Promise<void>
}

const GRPC_HEADERS = {
  [h2.HTTP2_HEADER_STATUS]: 200,
  [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
  'grpc-accept-encoding': 'identity',
}

function encodeGrpcMessage(text: string): string {
  // grpc-message is percent-encoded (outside printable ASCII and '%').
  return text.replace(/[^\x20-\x24\x26-\x7e]/g, (c) =>
    Array.from(
      Buffer.from(c, 'utf8'),
      (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    ).join(''),
  )
}

function sendError(stream: ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed) return
  const trailers = { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) }
  if (!stream.headersSent) {
    // Trailers-Only response.
    stream.respond({ ...GRPC_HEADERS, ...trailers }, { endStream: true })
  } else {
    stream.end()
  }
}

function readRequest(stream: ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let size = 0
    stream.on('data', (d: Buffer) => {
      size += d.length
      if (size > 1 << 20) {
        reject(new Error('request larger than 1 MiB'))
        stream.destroy()
        return
      }
      parts.push(d)
    })
    stream.once('end', () => resolve(Buffer.concat(parts)))
    stream.once('error', reject)
  })
}

function unframe(body: Buffer): Buffer {
  if (body.length === 0) return body
  if (body.length < 5) throw new Error('truncated gRPC message')
  if (body[0] !== 0)
    throw Object.assign(new Error('compressed requests are not supported'), { unimplemented: true })
  const len = body.readUInt32BE(1)
  if (body.length < 5 + len) throw new Error('truncated gRPC message')
  return body.subarray(5, 5 + len)
}

/** Decode a request, or answer INVALID_ARGUMENT (naming the message and field) and return undefined. */
function decodeOrRefuse<T>(stream: ServerHttp2Stream, name: string, msg: Buffer): T | undefined {
  try {
    return decodeRequest<T>(`observer.${name}`, msg)
  } catch (e) {
    sendError(stream, GrpcStatus.INVALID_ARGUMENT, `${name}: ${(e as Error).message}`)
    return undefined
  }
}

/** Send one unary response with status OK. */
function unary(stream: ServerHttp2Stream, message: Buffer): void {
  stream.respond(GRPC_HEADERS, { waitForTrailers: true })
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
  stream.end(frame(message))
}

function nodeOf(observer: FlowObserver, address: string): ObserverNode {
  const s = observer.status()
  return {
    name: observer.nodeName,
    version: s.version,
    address,
    state: 1,
    uptimeNs: s.uptimeNs,
    numFlows: s.numFlows,
    maxFlows: s.maxFlows,
    seenFlows: s.seenFlows,
  }
}

async function getFlows(
  observer: FlowObserver,
  stream: ServerHttp2Stream,
  req: GetFlowsRequest,
  maxBuffered: number,
  batch: number,
): Promise<void> {
  let cursor: ReturnType<FlowObserver['openCursor']>
  try {
    cursor = observer.openCursor(req)
  } catch (e) {
    sendError(
      stream,
      e instanceof FilterError ? GrpcStatus.INVALID_ARGUMENT : GrpcStatus.INTERNAL,
      (e as Error).message,
    )
    return
  }
  const ac = new AbortController()
  stream.once('close', () => ac.abort())
  stream.respond(GRPC_HEADERS, { waitForTrailers: true })
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
  const parts: Buffer[] = []
  const flush = () => {
    if (parts.length === 0) return
    stream.write(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts))
    parts.length = 0
  }
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        stream.off('drain', done)
        ac.signal.removeEventListener('abort', done)
        resolve()
      }
      stream.on('drain', done)
      ac.signal.addEventListener('abort', done, { once: true })
    })
  while (!ac.signal.aborted) {
    // Send everything that is ready now, in writes of up to `batch` responses.
    let item = cursor.poll()
    let full = false
    while (item) {
      parts.push(
        'entry' in item
          ? observer.framedResponse(item.entry, cursor.mask)
          : frame(observer.lostResponseBytes(item.lost)),
      )
      if (parts.length >= batch) {
        flush()
        if (stream.writableLength >= maxBuffered) {
          full = true
          break
        }
      }
      item = cursor.poll()
    }
    flush()
    if (item === null) {
      if (!ac.signal.aborted) stream.end()
      return
    }
    if (full || stream.writableLength >= maxBuffered) {
      // Wait for the reader; the ring keeps moving and the cursor will report the gap.
      await drained()
    } else {
      await cursor.wait(ac.signal)
    }
  }
}

async function getAgentEvents(
  observer: FlowObserver,
  stream: ServerHttp2Stream,
  req: GetAgentEventsRequest,
): Promise<void> {
  const ac = new AbortController()
  stream.once('close', () => ac.abort())
  stream.respond(GRPC_HEADERS, { waitForTrailers: true })
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
  for await (const e of observer.getAgentEvents(req, ac.signal)) {
    if (stream.destroyed) break
    stream.write(frame(observer.agentEventResponseBytes(e)))
  }
  if (!ac.signal.aborted) stream.end()
}

function parseAddress(address: string): { path: string } | { host: string; port: number } {
  if (address.startsWith('unix:')) {
    const path = address.replace(/^unix:(\/\/)?/, '')
    if (!path.startsWith('/'))
      throw new Error(`observer address '${address}': expected unix:///absolute/path`)
    return { path }
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address)
  if (!m) throw new Error(`observer address '${address}': expected host:port or unix:///path`)
  const port = Number(m[3])
  if (port > 65535) throw new Error(`observer address '${address}': port out of range`)
  return { host: (m[1] ?? m[2]) as string, port }
}

/**
 * Refuse a unix socket address whose directory does not exist: Node reports bind() there as
 * `EACCES: permission denied`, which sends the user after permissions instead of the path.
 */
export function assertSocketDirectory(address: string): void {
  if (!address.startsWith('unix:')) return
  const dir = dirname(address.replace(/^unix:(\/\/)?/, ''))
  if (!existsSync(dir)) {
    throw new Error(
      `observer address '${address}': directory ${dir} does not exist (create it before starting the server)`,
    )
  }
}

/**
 * Serve the Observer API (GetFlows, GetAgentEvents, GetNodes, GetNamespaces, ServerStatus; and
 * GetDebugEvents answered UNIMPLEMENTED with the reason) for `observer`.
 * @example
 * const srv = await startObserverServer(observer, { address: 'unix:///run/membrane/observer.sock' })
 * // hubble/membrane observe --server unix:///run/membrane/observer.sock
 */
export async function startObserverServer(
  observer: FlowObserver,
  opts: ObserverServerOptions = {},
): Promise<ObserverServer> {
  const address = opts.address ?? '127.0.0.1:4245'
  const where = parseAddress(address)
  assertSocketDirectory(address)
  const maxBuffered = opts.maxBufferedBytes ?? 4 << 20
  const batch = opts.batch ?? 512
  const server = opts.tls ? createSecureServer({ ...opts.tls, allowHTTP1: false }) : createServer()
  const streams = new Set<ServerHttp2Stream>()
  server.on('stream', (stream, headers) => {
    streams.add(stream)
    stream.once('close', () => streams.delete(stream))
    stream.on('error', () => {})
    const path = String(headers[h2.HTTP2_HEADER_PATH] ?? '')
    const ctype = String(headers[h2.HTTP2_HEADER_CONTENT_TYPE] ?? '')
    if (headers[h2.HTTP2_HEADER_METHOD] !== 'POST' || !ctype.startsWith('application/grpc')) {
      stream.respond({ [h2.HTTP2_HEADER_STATUS]: 415 }, { endStream: true })
      return
    }
    readRequest(stream).then(
      (body) => {
        let msg: Buffer
        try {
          msg = unframe(body)
        } catch (e) {
          const code = (e as { unimplemented?: boolean }).unimplemented
            ? GrpcStatus.UNIMPLEMENTED
            : GrpcStatus.INTERNAL
          sendError(stream, code, (e as Error).message)
          return
        }
        switch (path) {
          case '/observer.Observer/GetFlows': {
            const req = decodeOrRefuse<GetFlowsRequest>(stream, 'GetFlowsRequest', msg)
            if (!req) return
            void getFlows(observer, stream, req, maxBuffered, batch).catch((e) =>
              sendError(stream, GrpcStatus.INTERNAL, String(e)),
            )
            return
          }
          case '/observer.Observer/GetAgentEvents': {
            const req = decodeOrRefuse<GetAgentEventsRequest>(stream, 'GetAgentEventsRequest', msg)
            if (!req) return
            void getAgentEvents(observer, stream, req).catch((e) =>
              sendError(stream, GrpcStatus.INTERNAL, String(e)),
            )
            return
          }
          case '/observer.Observer/GetDebugEvents':
            sendError(stream, GrpcStatus.UNIMPLEMENTED, NO_DEBUG_EVENTS)
            return
          case '/observer.Observer/GetNamespaces':
            unary(
              stream,
              encodeMessage('observer.GetNamespacesResponse', {
                namespaces: observer.namespaces(),
              }),
            )
            return
          case '/observer.Observer/ServerStatus': {
            const s = observer.status()
            unary(
              stream,
              encodeMessage('observer.ServerStatusResponse', {
                ...s,
                numConnectedNodes: { value: 1 },
                numUnavailableNodes: { value: 0 },
              }),
            )
            return
          }
          case '/observer.Observer/GetNodes':
            unary(
              stream,
              encodeMessage('observer.GetNodesResponse', { nodes: [nodeOf(observer, address)] }),
            )
            return
          default:
            sendError(stream, GrpcStatus.UNIMPLEMENTED, `method ${path} is not implemented`)
        }
      },
      () => stream.destroy(),
    )
  })
  if ('path' in where && existsSync(where.path) && lstatSync(where.path).isSocket())
    unlinkSync(where.path)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    if ('path' in where) server.listen(where.path, () => resolve())
    else server.listen(where.port, where.host, () => resolve())
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr ? addr.port : 0
  const target =
    'path' in where
      ? `unix://${where.path}`
      : `${where.host.includes(':') ? `[${where.host}]` : where.host}:${port}`
  return {
    port,
    target,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.close(h2.NGHTTP2_CANCEL)
        server.close(() => resolve())
      }),
  }
}
