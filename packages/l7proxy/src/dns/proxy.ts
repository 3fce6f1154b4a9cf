/**
 * The DNS proxy (UDP and TCP on one port): queries of endpoints whose policy has DNS rules are
 * checked against matchName/matchPattern; denied names get REFUSED; allowed queries go to the
 * original DNS server from a marked socket, and the names and IPs of the answer are learned —
 * the `onLearn` hook runs and is awaited BEFORE the answer is forwarded, so the agent can
 * allocate CIDR identities and update policy maps before the client can connect.
 */
import { createSocket, type Socket as DgramSocket, type RemoteInfo } from 'node:dgram'
import { createServer, type Server, type Socket } from 'node:net'
import { evaluateDns, type L7Policy } from '@membrane/policy'
import { type ProxyOrigin, unmapIp } from '@membrane/types'
import { L7ProxyError, L7ProxyErrorCode } from '../errors'
import { ConnectionPolicy } from '../internal/conn-policy'
import type { OriginResolver } from '../origin'
import type { L7PolicySource } from '../policy'
import type { L7ProxyRecord, RecordSink } from '../records'
import { Counters } from '../stats'
import {
  bindMarkedUdp,
  connectMarked,
  defaultSocketMarker,
  type SocketMarker,
  upstreamMarkFor,
} from '../upstream'
import { FqdnCache, type FqdnExpiry } from './cache'
import {
  answerAddresses,
  buildDnsError,
  type DnsMessage,
  DnsRcode,
  dnsTypeName,
  parseDnsMessage,
} from './wire'

/** What the DNS proxy learned from one allowed answer. */
export interface DnsLearnEvent {
  /** The queried name, normalized (lower case, no trailing dot). */
  name: string
  /** A/AAAA addresses of the name and its CNAME chain. */
  ips: string[]
  cnames: string[]
  /** TTL the cache applies (the answer's smallest TTL, at least the minimum TTL), seconds. */
  ttl: number
  /** TTL in the answer, seconds. */
  answerTtl: number
  /** The endpoint that asked, and its identity. */
  endpointId: number
  srcIdentity: number
}

/** Options of {@link DnsProxy}. */
export interface DnsProxyOptions {
  origins: OriginResolver
  policy: L7PolicySource
  onRecord?: RecordSink
  /**
   * Called with every allowed answer that has addresses, and awaited before the answer is sent
   * to the client (allocate identities, `repo.learnFqdn`, apply map diffs here). If it throws or
   * exceeds `learnTimeoutMs`, the answer is still forwarded and `learnErrors` counted.
   */
  onLearn?: (event: DnsLearnEvent) => void | Promise<void>
  /** Called when learned IPs expire (checked every second). */
  onExpire?: (expired: FqdnExpiry[]) => void
  /** The name cache; default a new one with `minTtlSeconds`. */
  cache?: FqdnCache
  /** Minimum TTL of learned names, seconds. Default 3600 (Cilium's `--tofqdns-min-ttl`). */
  minTtlSeconds?: number
  /** How long to wait for the DNS server, ms; then SERVFAIL. Default 5000. */
  upstreamTimeoutMs?: number
  /** Bound on the `onLearn` wait, ms. Default 5000. */
  learnTimeoutMs?: number
  /** Idle time of a TCP client connection, ms. Default 30000. */
  tcpIdleMs?: number
  /** Upstream SO_MARK (see HttpProxyOptions.markSockets). Default true. */
  markSockets?: boolean | SocketMarker
  /** Queries in flight to DNS servers at most; beyond, queries are dropped. Default 20000. */
  maxPending?: number
}

/** Counter names of {@link DnsProxy.stats}. */
export const DNS_COUNTERS = [
  'queries',
  'allowed',
  'denied',
  'responses',
  /** Queries or TCP frames that are not DNS (dropped; a TCP connection is closed). */
  'malformed',
  /** Answers from servers that did not parse, did not match a query, or came from elsewhere. */
  'badResponses',
  /** Queries whose server did not answer in time (SERVFAIL sent). */
  'timeouts',
  'noOrigin',
  'learned',
  'learnErrors',
  'expired',
  /** Queries dropped because too many were in flight. */
  'overload',
  'policyErrors',
  'tcpConnections',
  'activeTcpConnections',
] as const

/** One of {@link DNS_COUNTERS}. */
export type DnsCounter = (typeof DNS_COUNTERS)[number]

interface Pending {
  reply: (b: Buffer) => void
  id: number
  origId: number
  client: { address: string; port: number }
  server: { address: string; port: number }
  origin: ProxyOrigin
  name: string
  qtype: number
  t0: bigint
  timer: NodeJS.Timeout
  query: Buffer
  msg: DnsMessage
}

interface Upstream {
  socket: DgramSocket
  pending: Map<number, Pending>
}

const POLICY_CACHE_MAX = 4096

/**
 * A transparent DNS proxy.
 *
 * @example
 * const dns = new DnsProxy({ origins, policy, onLearn: async (e) => agent.learnFqdn(e) })
 * await dns.listen({ port: 15053 })
 */
export class DnsProxy {
  readonly counters = new Counters<DnsCounter>(DNS_COUNTERS)
  readonly cache: FqdnCache
  readonly #options: DnsProxyOptions
  #udp: DgramSocket | undefined
  #tcp: Server | undefined
  readonly #tcpConns = new Set<Socket>()
  readonly #upstreams = new Map<string, Promise<Upstream>>()
  readonly #policies = new Map<string, ConnectionPolicy>()
  #marker: SocketMarker | undefined
  #prepared = false
  #expiryTimer: NodeJS.Timeout | undefined
  #port = 0
  #closed = false

  constructor(options: DnsProxyOptions) {
    this.#options = options
    this.cache = options.cache ?? new FqdnCache({ minTtlSeconds: options.minTtlSeconds ?? 3600 })
  }

  get port(): number {
    return this.#port
  }

  stats(): Record<DnsCounter, number> {
    return this.counters.snapshot()
  }

  /**
   * Load the socket marker and start the expiry timer (done by listen(); call it before
   * handleDatagram()/acceptTcp() without listen()).
   */
  async prepare(): Promise<void> {
    if (this.#prepared) return
    const mark = this.#options.markSockets ?? true
    this.#marker = mark === false ? undefined : mark === true ? await defaultSocketMarker() : mark
    this.#expiryTimer = setInterval(() => this.expireNow(), 1000)
    this.#expiryTimer.unref()
    this.#prepared = true
  }

  /**
   * Handle one query datagram received elsewhere (the combined {@link L7Proxy}); `reply` sends
   * a datagram back to the client from the proxy port.
   */
  handleDatagram(
    buf: Buffer,
    client: { address: string; port: number },
    origin: ProxyOrigin,
    reply: (b: Buffer) => void,
  ): void {
    if (this.#closed) return
    const msg = this.#admit(buf, client, origin, 'udp', reply)
    if (!msg || msg === 'malformed') return
    void this.#forwardUdp(buf, msg, client, origin, reply)
  }

  /** Serve a DNS-over-TCP connection accepted elsewhere (the combined {@link L7Proxy}). */
  acceptTcp(socket: Socket, origin: ProxyOrigin, proxyPort?: number): void {
    if (this.#closed) {
      socket.destroy()
      return
    }
    if (proxyPort !== undefined) this.#port = proxyPort
    this.#onTcp(socket, origin)
  }

  /** Listen on UDP and TCP `port` (0: a free port, the same for both). */
  async listen(options: { port?: number; host?: string } = {}): Promise<{ port: number }> {
    if (this.#closed) throw new L7ProxyError(L7ProxyErrorCode.CLOSED, 'the proxy is closed')
    const host = options.host ?? '0.0.0.0'
    await this.prepare()
    const family = host.includes(':') ? 'udp6' : 'udp4'
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket(family)
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject)
          udp.bind(options.port ?? 0, host, () => {
            udp.removeListener('error', reject)
            resolve()
          })
        })
        const port = udp.address().port
        const tcp = createServer((s) => this.#onTcp(s))
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject)
          tcp.listen(port, host, () => {
            tcp.removeListener('error', reject)
            resolve()
          })
        })
        this.#udp = udp
        this.#tcp = tcp
        this.#port = port
        break
      } catch (cause) {
        udp.close()
        // port 0: the UDP port may be taken for TCP; try another one.
        if (options.port || attempt >= 10)
          throw new L7ProxyError(
            L7ProxyErrorCode.LISTEN_FAILED,
            `cannot listen: ${(cause as Error).message}`,
            { path: `listen(${host}:${options.port ?? 0})`, cause },
          )
      }
    }
    this.#udp.on('message', (msg, rinfo) => this.#onUdp(msg, rinfo))
    this.#udp.on('error', () => {})
    return { port: this.#port }
  }

  /** Expire learned names now (also runs every second). */
  expireNow(now?: number): FqdnExpiry[] {
    const gone = this.cache.expire(now)
    if (gone.length) {
      this.counters.inc(
        'expired',
        gone.reduce((n, g) => n + g.ips.length, 0),
      )
      try {
        this.#options.onExpire?.(gone)
      } catch {
        // the hook's failure is its own
      }
    }
    return gone
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#expiryTimer) clearInterval(this.#expiryTimer)
    for (const s of this.#tcpConns) s.destroy()
    const tcp = this.#tcp
    await new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r()))
    this.#udp?.close()
    for (const p of this.#upstreams.values()) {
      const u = await p.catch(() => undefined)
      if (!u) continue
      for (const q of u.pending.values()) clearTimeout(q.timer)
      u.pending.clear()
      u.socket.close()
    }
    this.#upstreams.clear()
  }

  #policyFor(origin: ProxyOrigin, protocol: 'TCP' | 'UDP'): L7Policy | undefined {
    const peer = origin.direction === 'ingress' ? origin.srcIdentity : origin.dstIdentity
    const key = `${origin.endpointId}/${origin.direction}/${peer}/${origin.port}/${protocol}`
    let p = this.#policies.get(key)
    if (!p) {
      if (this.#policies.size >= POLICY_CACHE_MAX) this.#policies.clear()
      p = new ConnectionPolicy(this.#options.policy, origin, protocol)
      this.#policies.set(key, p)
    }
    try {
      return p.get()
    } catch {
      this.counters.inc('policyErrors')
      return undefined
    }
  }

  #record(
    type: 'request' | 'response',
    verdict: L7ProxyRecord['verdict'],
    client: { address: string; port: number },
    origin: ProxyOrigin,
    transport: 'tcp' | 'udp',
    dns: NonNullable<L7ProxyRecord['dns']>,
    latencyNs?: number,
  ): void {
    const sink = this.#options.onRecord
    if (!sink) return
    const rec: L7ProxyRecord = {
      time: new Date(),
      type,
      verdict,
      trafficDirection: origin.direction,
      source: { ip: client.address, port: client.port, identity: origin.srcIdentity },
      destination: { ip: origin.address, port: origin.port, identity: origin.dstIdentity },
      transport,
      proxyPort: this.#port,
      dns: { observationSource: 'proxy', ...dns },
    }
    if (latencyNs !== undefined) rec.latencyNs = latencyNs
    try {
      sink(rec)
    } catch {
      // never break the data path
    }
  }

  /**
   * Check a query. Returns the parsed message when it may go upstream; otherwise undefined
   * after answering (REFUSED) or dropping it.
   */
  #admit(
    buf: Buffer,
    client: { address: string; port: number },
    origin: ProxyOrigin,
    transport: 'tcp' | 'udp',
    reply: (b: Buffer) => void,
  ): DnsMessage | undefined | 'malformed' {
    let msg: DnsMessage
    try {
      msg = parseDnsMessage(buf)
    } catch {
      this.counters.inc('malformed')
      return 'malformed'
    }
    if (msg.qr || msg.opcode !== 0 || msg.questions.length !== 1) {
      this.counters.inc('malformed')
      if (!msg.qr) reply(buildDnsError(buf, msg, DnsRcode.FORMERR))
      return undefined
    }
    this.counters.inc('queries')
    const q = msg.questions[0] as { name: string; type: number }
    const allowed = evaluateDns(
      this.#policyFor(origin, transport === 'tcp' ? 'TCP' : 'UDP'),
      q.name,
    ).allowed
    const dns = { query: `${q.name}.`, qtypes: [dnsTypeName(q.type)] }
    if (!allowed) {
      this.counters.inc('denied')
      this.#record('request', 'denied', client, origin, transport, {
        ...dns,
        rcode: DnsRcode.REFUSED,
      })
      reply(buildDnsError(buf, msg, DnsRcode.REFUSED))
      return undefined
    }
    this.counters.inc('allowed')
    this.#record('request', 'forwarded', client, origin, transport, dns)
    return msg
  }

  /** Learn from an answer, await the hook, record the response. */
  async #learn(
    answer: DnsMessage,
    name: string,
    qtype: number,
    client: { address: string; port: number },
    origin: ProxyOrigin,
    transport: 'tcp' | 'udp',
    t0: bigint,
  ): Promise<void> {
    const { ips, cnames, ttl } = answerAddresses(answer, name)
    if (answer.rcode === DnsRcode.NOERROR && ips.length > 0) {
      const answerTtl = ttl ?? 0
      const eff = this.cache.effectiveTtl(answerTtl)
      this.cache.learn(name, ips, answerTtl)
      for (const c of cnames) this.cache.learn(c, ips, answerTtl)
      this.counters.inc('learned')
      const hook = this.#options.onLearn
      if (hook) {
        const limit = this.#options.learnTimeoutMs ?? 5000
        let timer: NodeJS.Timeout | undefined
        try {
          await Promise.race([
            Promise.resolve(
              hook({
                name,
                ips,
                cnames,
                ttl: eff,
                answerTtl,
                endpointId: origin.endpointId,
                srcIdentity: origin.srcIdentity,
              }),
            ),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error('onLearn timed out')), limit)
            }),
          ])
        } catch {
          this.counters.inc('learnErrors')
        } finally {
          clearTimeout(timer)
        }
      }
    }
    this.counters.inc('responses')
    const rrtypes = [...new Set(answer.answers.map((r) => dnsTypeName(r.type)))]
    const rec: NonNullable<L7ProxyRecord['dns']> = {
      query: `${name}.`,
      qtypes: [dnsTypeName(qtype)],
      rcode: answer.rcode,
      ips,
      rrtypes,
    }
    if (ttl !== undefined) rec.ttl = ttl
    if (cnames.length) rec.cnames = cnames.map((c) => `${c}.`)
    this.#record(
      'response',
      'forwarded',
      client,
      origin,
      transport,
      rec,
      Number(process.hrtime.bigint() - t0),
    )
  }

  // ------------------------------------------------------------------ UDP

  #onUdp(buf: Buffer, rinfo: RemoteInfo): void {
    const client = { address: unmapIp(rinfo.address), port: rinfo.port }
    let origin: ProxyOrigin | undefined
    try {
      origin = this.#options.origins.resolve({ ...client, protocol: 'UDP' })
    } catch {
      origin = undefined
    }
    if (!origin) {
      this.counters.inc('noOrigin')
      return
    }
    const udp = this.#udp
    this.handleDatagram(buf, client, origin, (b) => udp?.send(b, client.port, client.address))
  }

  #upstream(origin: ProxyOrigin): Promise<Upstream> {
    const mark = this.#marker ? upstreamMarkFor(origin.srcIdentity) : undefined
    const family = origin.address.includes(':') ? 'udp6' : 'udp4'
    const key = `${family}/${mark ?? 'none'}`
    let p = this.#upstreams.get(key)
    if (!p) {
      p = bindMarkedUdp(family, mark, this.#marker).then((socket) => {
        const u: Upstream = { socket, pending: new Map() }
        socket.on('message', (m, r) => this.#onUpstreamUdp(u, m, r))
        socket.on('error', () => {})
        return u
      })
      p.catch(() => this.#upstreams.delete(key))
      this.#upstreams.set(key, p)
    }
    return p
  }

  async #forwardUdp(
    buf: Buffer,
    msg: DnsMessage,
    client: { address: string; port: number },
    origin: ProxyOrigin,
    reply: (b: Buffer) => void,
  ): Promise<void> {
    let u: Upstream
    try {
      u = await this.#upstream(origin)
    } catch {
      this.counters.inc('badResponses')
      return
    }
    if (this.#closed) return
    const max = this.#options.maxPending ?? 20_000
    if (u.pending.size >= Math.min(max, 60_000)) {
      this.counters.inc('overload')
      return
    }
    let id = (Math.random() * 0x10000) | 0
    while (u.pending.has(id)) id = (id + 1) & 0xffff
    const q = msg.questions[0] as { name: string; type: number }
    const out = Buffer.from(buf)
    out.writeUInt16BE(id, 0)
    const pending: Pending = {
      reply,
      id,
      origId: msg.id,
      client,
      server: { address: origin.address, port: origin.port },
      origin,
      name: q.name,
      qtype: q.type,
      t0: process.hrtime.bigint(),
      query: buf,
      msg,
      timer: setTimeout(() => {
        if (u.pending.get(id) !== pending) return
        u.pending.delete(id)
        this.counters.inc('timeouts')
        reply(buildDnsError(buf, msg, DnsRcode.SERVFAIL))
      }, this.#options.upstreamTimeoutMs ?? 5000),
    }
    pending.timer.unref()
    u.pending.set(id, pending)
    u.socket.send(out, origin.port, origin.address)
  }

  #onUpstreamUdp(u: Upstream, buf: Buffer, rinfo: RemoteInfo): void {
    if (buf.length < 12) {
      this.counters.inc('badResponses')
      return
    }
    const p = u.pending.get(buf.readUInt16BE(0))
    const from = unmapIp(rinfo.address)
    if (!p || p.server.address !== from || p.server.port !== rinfo.port) {
      this.counters.inc('badResponses')
      return
    }
    let answer: DnsMessage
    try {
      answer = parseDnsMessage(buf)
    } catch {
      this.counters.inc('badResponses')
      return
    }
    const q = answer.questions[0]
    if (!answer.qr || answer.questions.length !== 1 || q?.name !== p.name || q.type !== p.qtype) {
      this.counters.inc('badResponses')
      return
    }
    u.pending.delete(p.id)
    clearTimeout(p.timer)
    void this.#learn(answer, p.name, p.qtype, p.client, p.origin, 'udp', p.t0).then(() => {
      const out = Buffer.from(buf)
      out.writeUInt16BE(p.origId, 0)
      p.reply(out)
    })
  }

  // ------------------------------------------------------------------ TCP

  #onTcp(socket: Socket, preset?: ProxyOrigin): void {
    this.counters.inc('tcpConnections')
    this.counters.inc('activeTcpConnections')
    this.#tcpConns.add(socket)
    let upstream: Socket | undefined
    socket.once('close', () => {
      this.#tcpConns.delete(socket)
      this.counters.dec('activeTcpConnections')
      upstream?.destroy()
    })
    socket.on('error', () => {})
    socket.setTimeout(this.#options.tcpIdleMs ?? 30_000, () => socket.destroy())
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
    const inflight = new Map<number, { name: string; qtype: number; t0: bigint }>()
    // Answers are written in the order their learning finishes; a chain keeps them in order.
    let chain = Promise.resolve()
    const send = (b: Buffer) => {
      const len = Buffer.alloc(2)
      len.writeUInt16BE(b.length)
      if (!socket.write(Buffer.concat([len, b])) && upstream) {
        const up = upstream
        up.pause()
        socket.once('drain', () => up.resume())
      }
    }
    const getUpstream = (): Socket => {
      if (upstream) return upstream
      const mark = this.#marker ? upstreamMarkFor(o.srcIdentity) : undefined
      const up = connectMarked(o.address, o.port, mark, this.#marker)
      upstream = up
      up.on('error', () => socket.destroy())
      up.on('close', () => socket.destroy())
      readFrames(up, (frame) => {
        let answer: DnsMessage
        try {
          answer = parseDnsMessage(frame)
        } catch {
          this.counters.inc('badResponses')
          socket.destroy()
          return false
        }
        const f = inflight.get(answer.id)
        const q = answer.questions[0]
        if (!f || q?.name !== f.name) {
          this.counters.inc('badResponses')
          return true
        }
        inflight.delete(answer.id)
        chain = chain
          .then(() => this.#learn(answer, f.name, f.qtype, client, o, 'tcp', f.t0))
          .then(() => {
            if (!socket.destroyed) send(frame)
          })
        return true
      })
      return up
    }
    readFrames(socket, (frame) => {
      const msg = this.#admit(frame, client, o, 'tcp', (b) => {
        chain = chain.then(() => {
          if (!socket.destroyed) send(b)
        })
      })
      if (msg === 'malformed') {
        socket.destroy()
        return false
      }
      if (!msg) return true
      const q = msg.questions[0] as { name: string; type: number }
      inflight.set(msg.id, { name: q.name, qtype: q.type, t0: process.hrtime.bigint() })
      const len = Buffer.alloc(2)
      len.writeUInt16BE(frame.length)
      if (inflight.size > 1000) {
        this.counters.inc('overload')
        socket.destroy()
        return false
      }
      const up = getUpstream()
      if (!up.write(Buffer.concat([len, frame]))) {
        socket.pause()
        up.once('drain', () => socket.resume())
      }
      return true
    })
  }
}

/**
 * Split a TCP DNS stream into messages (2-byte length prefix). `onFrame` returns false to stop.
 */
function readFrames(socket: Socket, onFrame: (frame: Buffer) => boolean): void {
  let buf: Buffer = Buffer.alloc(0)
  socket.on('data', (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d
    while (buf.length >= 2) {
      const n = buf.readUInt16BE(0)
      if (buf.length < 2 + n) break
      const frame = buf.subarray(2, 2 + n)
      buf = buf.subarray(2 + n)
      if (!onFrame(frame)) return
    }
  })
}
