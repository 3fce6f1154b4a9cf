import { isIpv4, isIpv6, type ProxyOrigin, unmapIp } from '@membrane/types'
import type { MapLike } from '../internal/loader'
import { proxy4KeyCodec, proxy4ValueCodec, proxy6KeyCodec, proxy6ValueCodec } from '../layouts'

const PROTO: Record<string, number> = { TCP: 6, UDP: 17 }

/**
 * `mb_proxy4` and `mb_proxy6`: the L7 proxy's original-destination tables, keyed by the
 * client's {address, port, protocol}. A lookup picks the table by the client's address family.
 */
export class ProxyMap {
  readonly #map4: MapLike
  readonly #map6: MapLike | undefined

  /** `map6` (mb_proxy6) is optional: without it IPv6 clients have no origin. */
  constructor(map4: MapLike, map6?: MapLike) {
    this.#map4 = map4
    this.#map6 = map6
  }

  /**
   * The original destination of the client connection {clientIp, clientPort, protocol} that
   * the datapath redirected to the proxy, or undefined. `clientIp` is IPv4 or IPv6; an
   * IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack listener reports an IPv4
   * peer) is looked up as the IPv4 address it holds.
   */
  lookup(
    clientIp: string,
    clientPort: number,
    protocol: 'TCP' | 'UDP' | number = 'TCP',
  ): ProxyOrigin | undefined {
    const proto = typeof protocol === 'number' ? protocol : PROTO[protocol]
    if (proto === undefined) return undefined
    const ip = unmapIp(clientIp)
    if (isIpv4(ip)) {
      const vb = this.#map4.lookup(proxy4KeyCodec.encode({ clientIp: ip, clientPort, proto }))
      if (!vb) return undefined
      const v = proxy4ValueCodec.decode(vb)
      return origin(v.origDaddr, v)
    }
    if (!this.#map6 || !isIpv6(ip)) return undefined
    const vb = this.#map6.lookup(proxy6KeyCodec.encode({ clientIp: ip, clientPort, proto }))
    if (!vb) return undefined
    const v = proxy6ValueCodec.decode(vb)
    return origin(v.origDaddr, v)
  }
}

function origin(
  address: string,
  v: {
    origDport: number
    srcIdentity: number
    dstIdentity: number
    endpointId: number
    direction: number
  },
): ProxyOrigin {
  return {
    address,
    port: v.origDport,
    srcIdentity: v.srcIdentity,
    dstIdentity: v.dstIdentity,
    endpointId: v.endpointId,
    direction: v.direction === 0 ? 'ingress' : 'egress',
  }
}
