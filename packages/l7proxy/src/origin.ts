/**
 * Where a redirected connection was going. The datapath records it when it DNATs a client's
 * connection to the proxy (see the README, "Redirect"); the proxy asks by the client's address.
 */

import { type ProxyOrigin, unmapIp } from '@membrane/types'

export type { ProxyOrigin }

/** The client side of a connection the proxy accepted (or the sender of a datagram). */
export interface ProxyPeer {
  address: string
  port: number
  protocol: 'TCP' | 'UDP'
}

/**
 * Answers "where was this client going?". The datapath's `lookupProxyOrigin` is the real one
 * ({@link datapathOriginResolver}); tests without a datapath use {@link StaticOriginResolver}.
 */
export interface OriginResolver {
  resolve(peer: ProxyPeer): ProxyOrigin | undefined
}

/** Anything with the datapath's lookup (`Datapath` of @membrane/datapath has it). */
export interface ProxyOriginLookup {
  lookupProxyOrigin(
    clientIp: string,
    clientPort: number,
    protocol?: 'TCP' | 'UDP' | number,
  ): ProxyOrigin | undefined
}

/**
 * The origin resolver of the real redirect: reads `mb_proxy4` (IPv4 clients) or `mb_proxy6`
 * (IPv6 clients) through the datapath. IPv6 peers are passed as they are; IPv4 peers of a
 * dual-stack listener (`::ffff:a.b.c.d`) as their IPv4 address.
 *
 * @example
 * const origins = datapathOriginResolver(await Datapath.open({ routerIp4: '10.0.0.1' }))
 */
export function datapathOriginResolver(datapath: ProxyOriginLookup): OriginResolver {
  return {
    resolve: (peer) => datapath.lookupProxyOrigin(unmapIp(peer.address), peer.port, peer.protocol),
  }
}

/**
 * A stand-in for the datapath: origins set by hand, by client `address:port`, by client address
 * (any port), or one fallback for every client. For tests and for running the proxy in front of
 * a fixed upstream without BPF.
 *
 * @example
 * const origins = new StaticOriginResolver({ fallback: { address: '127.0.0.1', port: 8080,
 *   srcIdentity: 1000, dstIdentity: 2000, endpointId: 7, direction: 'ingress' } })
 */
export class StaticOriginResolver implements OriginResolver {
  readonly #byPeer = new Map<string, ProxyOrigin>()
  fallback: ProxyOrigin | undefined

  constructor(options: { fallback?: ProxyOrigin } = {}) {
    this.fallback = options.fallback
  }

  /** Set the origin of one client (`port` omitted: every port of that address). */
  set(address: string, port: number | undefined, origin: ProxyOrigin): this {
    this.#byPeer.set(port === undefined ? address : `${address}:${port}`, origin)
    return this
  }

  delete(address: string, port?: number): boolean {
    return this.#byPeer.delete(port === undefined ? address : `${address}:${port}`)
  }

  resolve(peer: ProxyPeer): ProxyOrigin | undefined {
    const a = unmapIp(peer.address)
    return this.#byPeer.get(`${a}:${peer.port}`) ?? this.#byPeer.get(a) ?? this.fallback
  }
}
