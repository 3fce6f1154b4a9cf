/** The Observer gRPC service (@grpc/grpc-js): server and client, wire-compatible with Hubble's. */
import * as grpc from '@grpc/grpc-js'
import type { GetAgentEventsRequest } from './agent-events'
import { compileFieldMask } from './fieldmask'
import { FilterError } from './filter'
import type { FlowObserver, GetFlowsRequest, ObserverStatus, SeenNamespace } from './observer'
import { decodeFlowsResponse, decodeMessage, encodeMessage } from './proto'
import { assertSocketDirectory, decodeRequest, NO_DEBUG_EVENTS } from './server'
import type { FlowsResponse } from './types'

/** A node as reported by GetNodes. */
export interface ObserverNode {
  name: string
  version: string
  address: string
  /** 1 = connected. */
  state: number
  uptimeNs: number
  numFlows: number
  maxFlows: number
  seenFlows: number
}

const pass = (b: Buffer) => b

/**
 * The grpc-js service definition of observer.Observer. Streaming requests reach the server
 * undecoded (it decodes them and answers INVALID_ARGUMENT for unknown or invalid fields).
 */
export const observerServiceDefinition = {
  GetFlows: {
    path: '/observer.Observer/GetFlows',
    requestStream: false,
    responseStream: true,
    requestSerialize: (r: GetFlowsRequest) =>
      encodeMessage('observer.GetFlowsRequest', r as Record<string, unknown>),
    requestDeserialize: pass,
    // The server writes ready-encoded GetFlowsResponse bytes (a flow is encoded once per flow).
    responseSerialize: pass,
    responseDeserialize: (b: Buffer) => decodeFlowsResponse(b),
  },
  GetAgentEvents: {
    path: '/observer.Observer/GetAgentEvents',
    requestStream: false,
    responseStream: true,
    requestSerialize: (r: GetAgentEventsRequest) =>
      encodeMessage('observer.GetAgentEventsRequest', r as Record<string, unknown>),
    requestDeserialize: pass,
    responseSerialize: pass,
    responseDeserialize: (b: Buffer) => decodeMessage('observer.GetAgentEventsResponse', b, true),
  },
  GetDebugEvents: {
    path: '/observer.Observer/GetDebugEvents',
    requestStream: false,
    responseStream: true,
    requestSerialize: pass,
    requestDeserialize: pass,
    responseSerialize: pass,
    responseDeserialize: pass,
  },
  GetNamespaces: {
    path: '/observer.Observer/GetNamespaces',
    requestStream: false,
    responseStream: false,
    requestSerialize: () => Buffer.alloc(0),
    requestDeserialize: () => ({}),
    responseSerialize: (r: { namespaces: SeenNamespace[] }) =>
      encodeMessage('observer.GetNamespacesResponse', r as unknown as Record<string, unknown>),
    responseDeserialize: (b: Buffer) =>
      decodeMessage('observer.GetNamespacesResponse', b) as { namespaces?: SeenNamespace[] },
  },
  GetNodes: {
    path: '/observer.Observer/GetNodes',
    requestStream: false,
    responseStream: false,
    requestSerialize: () => Buffer.alloc(0),
    requestDeserialize: () => ({}),
    responseSerialize: (r: { nodes: ObserverNode[] }) =>
      encodeMessage('observer.GetNodesResponse', r as unknown as Record<string, unknown>),
    responseDeserialize: (b: Buffer) =>
      decodeMessage('observer.GetNodesResponse', b, true) as unknown as { nodes?: ObserverNode[] },
  },
  ServerStatus: {
    path: '/observer.Observer/ServerStatus',
    requestStream: false,
    responseStream: false,
    requestSerialize: () => Buffer.alloc(0),
    requestDeserialize: () => ({}),
    responseSerialize: (r: Record<string, unknown>) =>
      encodeMessage('observer.ServerStatusResponse', r),
    responseDeserialize: (b: Buffer) => decodeMessage('observer.ServerStatusResponse', b, true),
  },
} as const

/** Default number of responses queued per GetFlows stream before waiting for the socket. */
const DEFAULT_MAX_BUFFERED = 1024

/** Options of {@link startGrpcJsObserverServer}. */
export interface GrpcJsServerOptions {
  /**
   * Responses queued per GetFlows stream before the server waits for the client (default 1024).
   * Bounds the memory a slow reader can hold; what it misses meanwhile is reported as lost.
   */
  maxBuffered?: number
  /** `host:port` (port 0 = any free port) or `unix:///path/to.sock`. Default '127.0.0.1:4245'. */
  address?: string
  /** Default: insecure (local use). */
  credentials?: grpc.ServerCredentials
}

/** A running grpc-js Observer server. */
export interface GrpcJsObserverServer {
  /** The bound port (0 for unix sockets). */
  port: number
  /** A target string clients can dial. */
  target: string
  server: grpc.Server
  /** Stop: ends open streams and releases the address. */
  close(): Promise<void>
}

function statusResponse(s: ObserverStatus) {
  return {
    numFlows: s.numFlows,
    maxFlows: s.maxFlows,
    seenFlows: s.seenFlows,
    uptimeNs: s.uptimeNs,
    numConnectedNodes: { value: 1 },
    numUnavailableNodes: { value: 0 },
    version: s.version,
    flowsRate: s.flowsRate,
  }
}

/** Implementation of the Observer service over a {@link FlowObserver}. */
export function observerServiceImpl(
  observer: FlowObserver,
  address = '',
  maxBuffered = DEFAULT_MAX_BUFFERED,
): grpc.UntypedServiceImplementation {
  return {
    GetFlows: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      void serveGetFlows(observer, call, maxBuffered)
    },
    GetAgentEvents: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      void serveAgentEvents(observer, call)
    },
    GetDebugEvents: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: NO_DEBUG_EVENTS })
    },
    GetNamespaces: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      cb(null, { namespaces: observer.namespaces() })
    },
    ServerStatus: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      cb(null, statusResponse(observer.status()))
    },
    GetNodes: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      const s = observer.status()
      const node: ObserverNode = {
        name: observer.nodeName,
        version: s.version,
        address,
        state: 1,
        uptimeNs: s.uptimeNs,
        numFlows: s.numFlows,
        maxFlows: s.maxFlows,
        seenFlows: s.seenFlows,
      }
      cb(null, { nodes: [node] })
    },
  }
}

async function serveAgentEvents(
  observer: FlowObserver,
  call: grpc.ServerWritableStream<Buffer, Buffer>,
): Promise<void> {
  const ac = new AbortController()
  call.on('cancelled', () => ac.abort())
  call.on('close', () => ac.abort())
  let req: GetAgentEventsRequest
  try {
    req = decodeRequest<GetAgentEventsRequest>('observer.GetAgentEventsRequest', call.request)
  } catch (e) {
    call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message })
    return
  }
  for await (const e of observer.getAgentEvents(req, ac.signal))
    call.write(observer.agentEventResponseBytes(e))
  if (!ac.signal.aborted) call.end()
}

async function serveGetFlows(
  observer: FlowObserver,
  call: grpc.ServerWritableStream<Buffer, Buffer>,
  maxBuffered: number,
): Promise<void> {
  const ac = new AbortController()
  call.on('cancelled', () => ac.abort())
  call.on('close', () => ac.abort())
  let items: ReturnType<FlowObserver['getFlows']>
  let mask: ReturnType<typeof compileFieldMask>
  try {
    const req = decodeRequest<GetFlowsRequest>('observer.GetFlowsRequest', call.request)
    mask = compileFieldMask(req.fieldMask?.paths)
    items = observer.getFlows(req, ac.signal)
  } catch (e) {
    const code = e instanceof FilterError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL
    call.emit('error', { code, details: (e as Error).message })
    return
  }
  try {
    for await (const item of items) {
      const buf =
        'entry' in item
          ? observer.framedResponse(item.entry, mask).subarray(5)
          : observer.lostResponseBytes(item.lost)
      call.write(buf)
      // Keep up to `maxBuffered` responses queued for the transport (bounded memory per reader),
      // then wait for the socket to drain; meanwhile the ring moves on and the reader is told
      // what it missed.
      if (call.writableLength >= maxBuffered && call.writableNeedDrain) {
        await new Promise<void>((resolve) => {
          const done = () => {
            call.off('drain', done)
            ac.signal.removeEventListener('abort', done)
            resolve()
          }
          call.on('drain', done)
          ac.signal.addEventListener('abort', done, { once: true })
        })
      }
      if (ac.signal.aborted) break
    }
    if (!ac.signal.aborted) call.end()
  } catch (e) {
    if (!ac.signal.aborted) call.emit('error', { code: grpc.status.INTERNAL, details: String(e) })
  }
}

/**
 * Serve the Observer API on a grpc-js Server (for embedding next to other grpc-js services; the
 * default {@link startObserverServer} on node:http2 streams much faster, see server.ts).
 * @example
 * const srv = await startGrpcJsObserverServer(observer, { address: '127.0.0.1:0' })
 */
export async function startGrpcJsObserverServer(
  observer: FlowObserver,
  opts: GrpcJsServerOptions = {},
): Promise<GrpcJsObserverServer> {
  const address = opts.address ?? '127.0.0.1:4245'
  assertSocketDirectory(address)
  const server = new grpc.Server()
  server.addService(
    observerServiceDefinition as unknown as grpc.ServiceDefinition,
    observerServiceImpl(observer, address, opts.maxBuffered ?? DEFAULT_MAX_BUFFERED),
  )
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      address,
      opts.credentials ?? grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    )
  })
  const target = address.startsWith('unix:') ? address : address.replace(/:(\d+)$/, `:${port}`)
  return {
    port,
    target,
    server,
    close: async () => {
      // Open follow streams never finish on their own: cancel them.
      server.forceShutdown()
    },
  }
}

const ClientCtor = grpc.makeGenericClientConstructor(
  observerServiceDefinition as unknown as grpc.ServiceDefinition,
  'Observer',
)

/** A client of the Observer API. */
export class ObserverClient {
  private readonly client: grpc.Client

  /**
   * @param target `host:port` or `unix:///path`.
   * @param options grpc-js channel options; the HTTP/2 flow-control window defaults to 8 MiB
   *   (`grpc-node.flow_control_window`) so a busy flow stream is not held to 64 KiB per round trip.
   */
  constructor(
    target: string,
    credentials = grpc.credentials.createInsecure(),
    options: grpc.ChannelOptions = {},
  ) {
    this.client = new ClientCtor(target, credentials, {
      'grpc-node.flow_control_window': 8 << 20,
      ...options,
    })
  }

  /**
   * Stream GetFlows responses. Break out of the loop (or abort `signal`) to cancel.
   * @throws the gRPC error (code + details) when the server rejects the request.
   */
  async *getFlows(req: GetFlowsRequest = {}, signal?: AbortSignal): AsyncGenerator<FlowsResponse> {
    yield* this.stream<FlowsResponse>('GetFlows', req, signal)
  }

  private async *stream<T>(method: string, req: unknown, signal?: AbortSignal): AsyncGenerator<T> {
    const call = (
      this.client as unknown as Record<string, (r: unknown) => grpc.ClientReadableStream<T>>
    )[method]?.call(this.client, req) as grpc.ClientReadableStream<T>
    const onAbort = () => call.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      for await (const r of call) yield r as T
    } catch (e) {
      if ((e as { code?: number }).code === grpc.status.CANCELLED && (signal?.aborted ?? true))
        return
      throw e
    } finally {
      signal?.removeEventListener('abort', onAbort)
      call.cancel()
    }
  }

  private unary<T>(method: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = (
        this.client as unknown as Record<
          string,
          (r: unknown, cb: (e: Error | null, v: T) => void) => void
        >
      )[method]
      fn?.call(this.client, {}, (e, v) => (e ? reject(e) : resolve(v)))
    })
  }

  /** ServerStatus: numFlows, maxFlows, seenFlows, uptimeNs, version. */
  serverStatus(): Promise<Record<string, unknown>> {
    return this.unary('ServerStatus')
  }

  /** GetNamespaces: the namespaces seen in flows during the last hour, with their cluster. */
  async getNamespaces(): Promise<SeenNamespace[]> {
    const r = await this.unary<{ namespaces?: SeenNamespace[] }>('GetNamespaces')
    return (r.namespaces ?? []).map((n) => ({ cluster: n.cluster ?? '', namespace: n.namespace }))
  }

  /**
   * Stream GetAgentEvents responses (`agentEvent`, `nodeName`, `time`).
   * @throws the gRPC error when the server rejects the request.
   */
  async *getAgentEvents(
    req: GetAgentEventsRequest = {},
    signal?: AbortSignal,
  ): AsyncGenerator<Record<string, unknown>> {
    yield* this.stream<Record<string, unknown>>('GetAgentEvents', req, signal)
  }

  /** GetNodes. */
  async getNodes(): Promise<ObserverNode[]> {
    const r = await this.unary<{ nodes?: ObserverNode[] }>('GetNodes')
    return r.nodes ?? []
  }

  /** Wait until connected (rejects after `timeoutMs`). */
  waitForReady(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (e) => (e ? reject(e) : resolve()))
    })
  }

  close(): void {
    this.client.close()
  }
}
