/**
 * One proxy port for every parser: a TCP listener and a UDP socket on the same port. Each
 * accepted connection is handed to the HTTP, Kafka or DNS proxy by the `parser` of the L7 policy
 * of its flow, so a node needs a single proxy port in its policy map entries.
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram'
import { createServer, type Server, type Socket } from 'node:net'
import type { L7Parser } from '@membrane/policy'
import { type ProxyOrigin, unmapIp } from '@membrane/types'
import { type DnsCounter, DnsProxy, type DnsProxyOptions } from './dns/proxy'
import { L7ProxyError, L7ProxyErrorCode } from './errors'
import { type HttpCounter, HttpProxy, type HttpProxyOptions } from './http/proxy'
import { type KafkaCounter, KafkaProxy, type KafkaProxyOptions } from './kafka/proxy'
import type { OriginResolver } from './origin'
import type { L7PolicySource } from './policy'
import type { RecordSink } from './records'
import { Counters } from './stats'
import type { SocketMarker } from './upstream'

type Shared = 'origins' | 'policy' | 'onRecord' | 'markSockets'

/** Options of {@link L7Proxy}. */
export interface L7ProxyOptions {
  origins: OriginResolver
  policy: L7PolicySource
  onRecord?: RecordSink
  /** Upstream SO_MARK for all parsers (see HttpProxyOptions.markSockets). Default true. */
  markSockets?: boolean | SocketMarker
  http?: Omit<HttpProxyOptions, Shared>
  kafka?: Omit<KafkaProxyOptions, Shared>
  /** DNS options: `onLearn` (awaited before answers), `onExpire`, `minTtlSeconds`, ... */
  dns?: Omit<DnsProxyOptions, Shared>
}

/** Counters of the dispatcher itself. */
export const DISPATCH_COUNTERS = [
  'tcpConnections',
  'udpDatagrams',
  /** No original destination for the peer (closed / dropped). */
  'noOrigin',
  /** No L7 policy for the flow and no way to tell the protocol (closed). */
  'noPolicy',
  'policyErrors',
] as const

/** One of {@link DISPATCH_COUNTERS}. */
export type DispatchCounter = (typeof DISPATCH_COUNTERS)[number]

/** Everything {@link L7Proxy.stats} reports. */
export interface L7ProxyStats {
  dispatch: Record<DispatchCounter, number>
  http: Record<HttpCounter, number>
  kafka: Record<KafkaCounter, number>
  dns: Record<DnsCounter, number>
}

/**
 * The node's L7 proxy: one port (TCP and UDP) for HTTP, Kafka and DNS.
 *
 * @example
 * const proxy = new L7Proxy({
 *   origins: datapathOriginResolver(dp),
 *   policy: repositoryPolicySource(repo, (id) => endpoints.get(id)),
 *   onRecord: (r) => observer.ingestL7(r),
 *   dns: { onLearn: async (e) => agent.learnFqdn(e) },
 * })
 * await proxy.listen({ port: 15001 })
 */
export class L7Proxy {
  readonly http: HttpProxy
  readonly kafka: KafkaProxy
  readonly dns: DnsProxy
  readonly counters = new Counters<DispatchCounter>(DISPATCH_COUNTERS)
  readonly #options: L7ProxyOptions
  #tcp: Server | undefined
  #udp: DgramSocket | undefined
  #port = 0
  #closed = false

  constructor(options: L7ProxyOptions) {
    this.#options = options
    const shared = {
      origins: options.origins,
      policy: options.policy,
      ...(options.onRecord ? { onRecord: options.onRecord } : {}),
      ...(options.markSockets !== undefined ? { markSockets: options.markSockets } : {}),
    }
    this.http = new HttpProxy({ ...options.http, ...shared })
    this.kafka = new KafkaProxy({ ...options.kafka, ...shared })
    this.dns = new DnsProxy({ ...options.dns, ...shared })
  }

  /** The listening port (0 before listen). */
  get port(): number {
    return this.#port
  }

  /** Listen on TCP and UDP `port` (default 0.0.0.0; port 0 = a free port for both). */
  async listen(options: { port?: number; host?: string } = {}): Promise<{ port: number }> {
    if (this.#closed) throw new L7ProxyError(L7ProxyErrorCode.CLOSED, 'the proxy is closed')
    await Promise.all([this.http.prepare(), this.kafka.prepare(), this.dns.prepare()])
    const host = options.host ?? '0.0.0.0'
    for (let attempt = 0; ; attempt++) {
      const tcp = createServer((s) => this.#onTcp(s))
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject)
          tcp.listen(options.port ?? 0, host, () => {
            tcp.removeListener('error', reject)
            resolve()
          })
        })
        const port = (tcp.address() as { port: number }).port
        const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4')
        try {
          await new Promise<void>((resolve, reject) => {
            udp.once('error', reject)
            udp.bind(port, host, () => {
              udp.removeListener('error', reject)
              resolve()
            })
          })
        } catch (error) {
          udp.close()
          throw error
        }
        this.#tcp = tcp
        this.#udp = udp
        this.#port = port
        break
      } catch (cause) {
        tcp.close()
        if (options.port || attempt >= 10)
          throw new L7ProxyError(
            L7ProxyErrorCode.LISTEN_FAILED,
            `cannot listen: ${(cause as Error).message}`,
            { path: `listen(${host}:${options.port ?? 0})`, cause },
          )
      }
    }
    this.#udp.on('message', (m, r) => this.#onUdp(m, r.address, r.port))
    this.#udp.on('error', () => {})
    return { port: this.#port }
  }

  /** Counters of the dispatcher and of each parser's proxy. */
  stats(): L7ProxyStats {
    return {
      dispatch: this.counters.snapshot(),
      http: this.http.stats(),
      kafka: this.kafka.stats(),
      dns: this.dns.stats(),
    }
  }

  /** Stop listening and close every connection of every parser. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const tcp = this.#tcp
    const closed = new Promise<void>((r) => (tcp ? tcp.close(() => r()) : r()))
    this.#udp?.close()
    await Promise.all([this.http.close(), this.kafka.close(), this.dns.close()])
    await closed
  }

  #resolve(address: string, port: number, protocol: 'TCP' | 'UDP'): ProxyOrigin | undefined {
    try {
      return this.#options.origins.resolve({ address, port, protocol })
    } catch {
      return undefined
    }
  }

  #parserOf(origin: ProxyOrigin, protocol: 'TCP' | 'UDP'): L7Parser | undefined | 'error' {
    try {
      return this.#options.policy.rulesFor({
        endpointId: origin.endpointId,
        direction: origin.direction,
        peerIdentity: origin.direction === 'ingress' ? origin.srcIdentity : origin.dstIdentity,
        port: origin.port,
        protocol,
      })?.parser
    } catch {
      return 'error'
    }
  }

  #onTcp(socket: Socket): void {
    this.counters.inc('tcpConnections')
    const origin = this.#resolve(unmapIp(socket.remoteAddress ?? ''), socket.remotePort ?? 0, 'TCP')
    if (!origin) {
      this.counters.inc('noOrigin')
      socket.destroy()
      return
    }
    let parser = this.#parserOf(origin, 'TCP')
    if (parser === 'error') {
      this.counters.inc('policyErrors')
      parser = undefined
    }
    // Without a policy the proxy cannot know the protocol; DNS's port is well known (and the DNS
    // proxy then refuses every name).
    if (parser === undefined && origin.port === 53) parser = 'dns'
    switch (parser) {
      case 'http':
        this.http.accept(socket, origin, this.#port)
        return
      case 'kafka':
        this.kafka.accept(socket, origin, this.#port)
        return
      case 'dns':
        this.dns.acceptTcp(socket, origin, this.#port)
        return
      default:
        this.counters.inc('noPolicy')
        socket.destroy()
    }
  }

  #onUdp(buf: Buffer, address: string, port: number): void {
    this.counters.inc('udpDatagrams')
    const client = { address: unmapIp(address), port }
    const origin = this.#resolve(client.address, port, 'UDP')
    if (!origin) {
      this.counters.inc('noOrigin')
      return
    }
    const udp = this.#udp
    // UDP is only proxied for DNS; the DNS proxy refuses names its policy does not allow.
    this.dns.handleDatagram(buf, client, origin, (b) => udp?.send(b, port, address))
  }
}
