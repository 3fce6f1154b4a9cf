/**
 * The HTTP/1.1 proxy: accepts redirected connections, checks every request against the L7 rules
 * of its flow, forwards allowed requests to the original destination over a marked upstream
 * connection (one per client connection, kept alive), answers denied ones `403 Access denied`.
 */
import {
  Agent,
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import {
  type AddressInfo,
  createServer as createNetServer,
  type OnReadOpts,
  type Socket,
} from 'node:net'
import {
  evaluateHttp,
  type HeaderEdit,
  type HttpRequestView,
  type HttpVerdict,
  type L7Policy,
  l7Attribution,
} from '@membrane/policy'
import { type ProxyOrigin, unmapIp } from '@membrane/types'
import { L7ProxyError, L7ProxyErrorCode } from '../errors'
import { ConnectionPolicy } from '../internal/conn-policy'
import { applyHeaderEdits, headerView } from '../internal/http-headers'
import type { OriginResolver } from '../origin'
import type { L7PolicySource } from '../policy'
import type { L7ProxyRecord, RecordSink } from '../records'
import { Counters } from '../stats'
import { connectMarked, defaultSocketMarker, type SocketMarker, upstreamMarkFor } from '../upstream'
import { serveFast } from './fast'
import { HOP_BY_HOP, type RequestHead } from './wire'

/** Options of {@link HttpProxy}. */
export interface HttpProxyOptions {
  /** Where each accepted connection was going (the datapath, or a stand-in). */
  origins: OriginResolver
  /** The L7 rules to enforce. */
  policy: L7PolicySource
  /** Receives a request record per request and a response record per response. */
  onRecord?: RecordSink
  /**
   * SO_MARK for upstream sockets: `true` (default) uses @membrane/bpf-loader-napi's
   * setSocketMark, a function marks with it, `false` never marks (no datapath).
   */
  markSockets?: boolean | SocketMarker
  /** Largest request head (request line + headers) in bytes. Default 16384; larger gets 431. */
  maxHeaderSize?: number
  /** Time allowed to receive a request head, ms. Default 30000 (408 after). */
  headersTimeoutMs?: number
  /** Time allowed to receive a whole request, ms; 0 = no limit (streamed uploads). Default 0. */
  requestTimeoutMs?: number
  /** Idle keep-alive time of client connections, ms. Default 60000. */
  keepAliveTimeoutMs?: number
  /** Put the request headers into records. Default false (they may carry secrets). */
  recordHeaders?: boolean
  /**
   * `fast` (default): this package's strict HTTP/1.1 engine, bodies forwarded as bytes.
   * `node`: Node's http server and client (llhttp), re-framing bodies. Same rules, records and
   * counters.
   */
  engine?: 'fast' | 'node'
}

/** What a record needs to know about a request. */
interface RequestInfo {
  method: string
  url: string
  host: string
  version: string
  rawHeaders: readonly string[]
}

/** Counter names of {@link HttpProxy.stats}. */
export const HTTP_COUNTERS = [
  /** Client connections accepted. */
  'connections',
  /** Client connections open now. */
  'activeConnections',
  /** Connections closed at once because the datapath had no original destination. */
  'noOrigin',
  'requests',
  'allowed',
  'denied',
  /** Responses relayed from upstream. */
  'responses',
  /** Upstream connect failures or resets before the response head (answered 503). */
  'upstreamErrors',
  /** Unparseable requests (answered 400 and closed). */
  'malformed',
  /** Request heads over maxHeaderSize (answered 431 and closed). */
  'headersTooLarge',
  /** Clients too slow to send a request (408). */
  'timeouts',
  /** Policy lookups that threw (request denied). */
  'policyErrors',
  /** Upstream connections opened. */
  'upstreamConnections',
  /** Upstream connections open now. */
  'activeUpstreamConnections',
] as const

/** One of {@link HTTP_COUNTERS}. */
export type HttpCounter = (typeof HTTP_COUNTERS)[number]

/** Drop hop-by-hop headers (and those the Connection header names); keep Transfer-Encoding. */
function forwardable(raw: readonly string[]): string[] {
  let extra: Set<string> | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === 'connection') {
      for (const t of (raw[i + 1] as string).split(',')) {
        const n = t.trim().toLowerCase()
        if (!n || n === 'close' || n === 'keep-alive') continue
        extra ??= new Set()
        extra.add(n)
      }
    }
  }
  const out: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase()
    if (HOP_BY_HOP.has(k) || extra?.has(k)) continue
    out.push(raw[i] as string, raw[i + 1] as string)
  }
  return out
}

const DENIED_BODY = 'Access denied\r\n'
const NO_EDITS: readonly HeaderEdit[] = []
const UPSTREAM_ERROR_BODY = 'upstream connect error or disconnect/reset before headers\r\n'

interface ConnState {
  peerAddress: string
  peerPort: number
  origin: ProxyOrigin
  policy: ConnectionPolicy
  agent: Agent | undefined
  upstreams: Set<Socket>
  /** The fast engine's last decision: for this head object, under this policy generation. */
  lastHead: RequestHead | undefined
  lastGeneration: number
  lastVerdict: HttpVerdict | undefined
}

/**
 * A transparent HTTP/1.1 proxy.
 *
 * @example
 * const proxy = new HttpProxy({ origins: datapathOriginResolver(dp), policy: source,
 *   onRecord: (r) => observer.ingestL7(r) })
 * await proxy.listen({ port: 15001 })
 */
export class HttpProxy {
  readonly counters = new Counters<HttpCounter>(HTTP_COUNTERS)
  readonly #options: HttpProxyOptions
  readonly #server: Server | import('node:net').Server
  readonly #engine: 'fast' | 'node'
  readonly #conns = new Map<Socket, ConnState>()
  readonly #sockets = new Set<Socket>()
  #marker: SocketMarker | undefined
  #prepared = false
  readonly #preset = new WeakMap<Socket, ProxyOrigin>()
  #port = 0
  #closed = false

  constructor(options: HttpProxyOptions) {
    const maxHeaderSize = options.maxHeaderSize ?? 16384
    if (!Number.isInteger(maxHeaderSize) || maxHeaderSize < 256 || maxHeaderSize > 1 << 20)
      throw new L7ProxyError(
        L7ProxyErrorCode.INVALID_ARGUMENT,
        `expected 256..1048576, got ${maxHeaderSize}`,
        { path: 'maxHeaderSize' },
      )
    this.#options = options
    this.#engine = options.engine ?? 'fast'
    if (this.#engine === 'fast') {
      this.#server = createNetServer({ noDelay: true }, (s) => this.#onConnection(s))
      return
    }
    const headersTimeout = options.headersTimeoutMs ?? 30_000
    const server = createServer({
      maxHeaderSize,
      headersTimeout,
      // Node checks the timeouts on this period (default 30 s): check often enough to honour them.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 2))),
      requestTimeout: options.requestTimeoutMs ?? 0,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 60_000,
      noDelay: true,
      insecureHTTPParser: false,
    })
    this.#server = server
    server.on('connection', (s: Socket) => this.#onConnection(s))
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res))
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) =>
      this.#onRequest(req, res, true),
    )
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      this.#onClientError(err, socket),
    )
  }

  /** Which engine serves connections. */
  get engine(): 'fast' | 'node' {
    return this.#engine
  }

  /** The listening port (0 before listen). */
  get port(): number {
    return this.#port
  }

  /** Load the socket marker (done by listen(); call it before accept() without listen()). */
  async prepare(): Promise<void> {
    if (this.#prepared) return
    const mark = this.#options.markSockets ?? true
    this.#marker = mark === false ? undefined : mark === true ? await defaultSocketMarker() : mark
    this.#prepared = true
  }

  /**
   * Serve a connection accepted elsewhere (the combined {@link L7Proxy} listener), with its
   * origin already resolved.
   */
  accept(socket: Socket, origin: ProxyOrigin, proxyPort?: number): void {
    if (this.#closed) {
      socket.destroy()
      return
    }
    if (proxyPort !== undefined) this.#port = proxyPort
    this.#preset.set(socket, origin)
    if (this.#engine === 'fast') this.#onConnection(socket)
    else this.#server.emit('connection', socket)
  }

  /** Start listening (default 0.0.0.0, port 0 = any free port). Resolves with the address. */
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

  /** Counters (a copy). */
  stats(): Record<HttpCounter, number> {
    return this.counters.snapshot()
  }

  /** Stop accepting, close every client and upstream connection. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const done = new Promise<void>((resolve) => {
      if (!this.#server.listening) resolve()
      else this.#server.close(() => resolve())
    })
    for (const s of this.#sockets) s.destroy()
    for (const st of this.#conns.values()) this.#dropUpstreams(st)
    await done
  }

  #onConnection(socket: Socket): void {
    this.counters.inc('connections')
    this.counters.inc('activeConnections')
    this.#sockets.add(socket)
    socket.once('close', () => {
      this.#sockets.delete(socket)
      this.counters.dec('activeConnections')
      const st = this.#conns.get(socket)
      if (st) {
        this.#conns.delete(socket)
        this.#dropUpstreams(st)
      }
    })
    const peerAddress = unmapIp(socket.remoteAddress ?? '')
    const peerPort = socket.remotePort ?? 0
    let origin = this.#preset.get(socket)
    if (!origin) {
      try {
        origin = this.#options.origins.resolve({
          address: peerAddress,
          port: peerPort,
          protocol: 'TCP',
        })
      } catch {
        origin = undefined
      }
    }
    if (!origin) {
      this.counters.inc('noOrigin')
      socket.destroy()
      return
    }
    const st: ConnState = {
      peerAddress,
      peerPort,
      origin,
      policy: new ConnectionPolicy(this.#options.policy, origin, 'TCP'),
      agent: undefined,
      upstreams: new Set(),
      lastHead: undefined,
      lastGeneration: -1,
      lastVerdict: undefined,
    }
    this.#conns.set(socket, st)
    if (this.#engine === 'fast') this.#serveFast(socket, st)
  }

  #openUpstream(st: ConnState, onread?: OnReadOpts): Socket {
    const o = st.origin
    const mark = this.#marker ? upstreamMarkFor(o.srcIdentity) : undefined
    const s = connectMarked(o.address, o.port, mark, this.#marker, onread)
    this.counters.inc('upstreamConnections')
    this.counters.inc('activeUpstreamConnections')
    st.upstreams.add(s)
    s.once('close', () => {
      st.upstreams.delete(s)
      this.counters.dec('activeUpstreamConnections')
    })
    return s
  }

  #serveFast(socket: Socket, st: ConnState): void {
    const info = (h: RequestHead): RequestInfo => ({
      method: h.method,
      url: h.target,
      host: h.host,
      version: `1.${h.minor}`,
      rawHeaders: h.rawHeaders,
    })
    serveFast(socket, {
      maxHeaderSize: this.#options.maxHeaderSize ?? 16384,
      headersTimeoutMs: this.#options.headersTimeoutMs ?? 30_000,
      keepAliveTimeoutMs: this.#options.keepAliveTimeoutMs ?? 60_000,
      allowed: (h) => {
        this.counters.inc('requests')
        const v = this.#fastVerdict(st, h)
        return v.allowed ? (v.edits ?? NO_EDITS) : false
      },
      connect: (onread) => this.#openUpstream(st, onread),
      onRequest: (h, verdict) => {
        this.counters.inc(verdict === 'denied' ? 'denied' : 'allowed')
        const code = verdict === 'denied' ? 403 : undefined
        this.#record(st, 'request', verdict, info(h), code, undefined, {
          policy: this.#policyOf(st),
          verdict: (st.lastHead === h ? st.lastVerdict : undefined) ?? {
            allowed: verdict !== 'denied',
          },
        })
      },
      onResponse: (h, status, latencyNs, ok) => {
        if (ok) this.counters.inc('responses')
        this.#record(st, 'response', ok ? 'forwarded' : 'error', info(h), status, latencyNs)
      },
      onBadRequest: (kind) => this.counters.inc(kind),
      onUpstreamError: () => this.counters.inc('upstreamErrors'),
    })
  }

  #dropUpstreams(st: ConnState): void {
    st.agent?.destroy()
    for (const s of st.upstreams) s.destroy()
  }

  #agentFor(st: ConnState): Agent {
    if (st.agent) return st.agent
    const agent = new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 })
    ;(agent as unknown as { createConnection: () => Socket }).createConnection = () =>
      this.#openUpstream(st)
    st.agent = agent
    return agent
  }

  #record(
    st: ConnState,
    type: 'request' | 'response',
    verdict: L7ProxyRecord['verdict'],
    req: RequestInfo,
    code?: number,
    latencyNs?: number,
    decided?: { policy: L7Policy | undefined; verdict: { allowed: boolean; ruleId?: string } },
  ): void {
    const sink = this.#options.onRecord
    if (!sink) return
    const o = st.origin
    const http: NonNullable<L7ProxyRecord['http']> = {
      method: req.method,
      url: `http://${req.host || o.address}${req.url}`,
      protocol: `HTTP/${req.version}`,
    }
    if (code !== undefined) http.code = code
    if (this.#options.recordHeaders) {
      const h: { key: string; value: string }[] = []
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
        h.push({ key: req.rawHeaders[i] as string, value: req.rawHeaders[i + 1] as string })
      http.headers = h
    }
    const rec: L7ProxyRecord = {
      time: new Date(),
      type,
      verdict,
      trafficDirection: o.direction,
      source: { ip: st.peerAddress, port: st.peerPort, identity: o.srcIdentity },
      destination: { ip: o.address, port: o.port, identity: o.dstIdentity },
      transport: 'tcp',
      proxyPort: this.#port,
      http,
    }
    if (latencyNs !== undefined) rec.latencyNs = latencyNs
    if (decided) {
      const refs = l7Attribution(decided.policy, decided.verdict)
      if (refs.length) rec.policies = refs as string[]
    }
    try {
      sink(rec)
    } catch {
      // a failing sink must not break the data path
    }
  }

  #verdict(st: ConnState, req: IncomingMessage): HttpVerdict {
    return this.#verdictOf(st, {
      method: req.method ?? '',
      path: req.url ?? '',
      host: req.headers.host ?? '',
      headers: headerView(req.rawHeaders),
    })
  }

  /**
   * The verdict of a fast-engine request. The engine hands the same head object again for a
   * byte-identical head on the connection; while the connection's policy has not been re-read
   * since (a new revision, or the periodic re-read), the decision is the same and is reused.
   */
  #fastVerdict(st: ConnState, h: RequestHead): HttpVerdict {
    try {
      const policy = st.policy.get()
      const generation = st.policy.generation
      if (h === st.lastHead && generation === st.lastGeneration && st.lastVerdict)
        return st.lastVerdict
      const v = evaluateHttp(policy, {
        method: h.method,
        path: h.target,
        host: h.host,
        // Fields are read from the head's bytes on demand: a rule naming one header does not
        // turn every header into strings.
        headers: { get: (name) => h.header(name) },
      })
      st.lastHead = h
      st.lastGeneration = generation
      st.lastVerdict = v
      return v
    } catch {
      this.counters.inc('policyErrors')
      return { allowed: false, reason: 'no-policy' }
    }
  }

  /** The connection's L7 policy for attribution (undefined when it cannot be read). */
  #policyOf(st: ConnState): L7Policy | undefined {
    try {
      return st.policy.get()
    } catch {
      return undefined
    }
  }

  #verdictOf(st: ConnState, view: HttpRequestView): HttpVerdict {
    try {
      return evaluateHttp(st.policy.get(), view)
    } catch {
      this.counters.inc('policyErrors')
      return { allowed: false, reason: 'no-policy' }
    }
  }

  #onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue = false): void {
    const st = this.#conns.get(req.socket as Socket)
    if (!st) {
      req.socket.destroy()
      return
    }
    this.counters.inc('requests')
    const t0 = process.hrtime.bigint()
    const info: RequestInfo = {
      method: req.method ?? '',
      url: req.url ?? '',
      host: req.headers.host ?? '',
      version: req.httpVersion,
      rawHeaders: req.rawHeaders,
    }
    const verdict = this.#verdict(st, req)
    const decided = { policy: this.#policyOf(st), verdict }
    if (!verdict.allowed) {
      this.counters.inc('denied')
      this.#record(st, 'request', 'denied', info, 403, undefined, decided)
      res.writeHead(403, {
        'content-type': 'text/plain',
        'content-length': Buffer.byteLength(DENIED_BODY),
      })
      res.end(DENIED_BODY)
      return
    }
    this.counters.inc('allowed')
    this.#record(st, 'request', 'forwarded', info, undefined, undefined, decided)
    if (expectsContinue) res.writeContinue()
    const up: ClientRequest = httpRequest({
      agent: this.#agentFor(st),
      host: st.origin.address,
      port: st.origin.port,
      method: req.method,
      path: req.url,
      headers: (verdict.edits
        ? applyHeaderEdits(forwardable(req.rawHeaders), verdict.edits)
        : forwardable(req.rawHeaders)) as unknown as Record<string, string>,
      setHost: false,
    })
    let answered = false
    const fail = () => {
      if (answered) return
      answered = true
      this.counters.inc('upstreamErrors')
      this.#record(st, 'response', 'error', info, 503)
      if (!res.headersSent) {
        res.writeHead(503, {
          'content-type': 'text/plain',
          'content-length': Buffer.byteLength(UPSTREAM_ERROR_BODY),
          connection: 'close',
        })
        res.end(UPSTREAM_ERROR_BODY)
      } else res.destroy()
    }
    up.on('error', fail)
    up.on('response', (ur: IncomingMessage) => {
      answered = true
      this.counters.inc('responses')
      const code = ur.statusCode ?? 502
      this.#record(st, 'response', 'forwarded', info, code, Number(process.hrtime.bigint() - t0))
      res.writeHead(code, ur.statusMessage, forwardable(ur.rawHeaders))
      ur.pipe(res)
      ur.on('error', () => res.destroy())
      ur.on('aborted', () => res.destroy())
    })
    res.on('close', () => {
      // The client went away (or the response is done): an unfinished upstream exchange is
      // torn down so its socket is not reused half-way.
      if (!res.writableFinished) up.destroy()
    })
    req.on('error', () => up.destroy())
    req.pipe(up)
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    let status = 400
    let text = 'Bad Request'
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      this.counters.inc('headersTooLarge')
      status = 431
      text = 'Request Header Fields Too Large'
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.counters.inc('timeouts')
      status = 408
      text = 'Request Timeout'
    } else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
      socket.destroy()
      return
    } else this.counters.inc('malformed')
    if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      socket.end(
        `HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        () => socket.destroy(),
      )
    } else socket.destroy()
  }
}
