import type { MapLike } from '../internal/loader'
import { proxy4KeyCodec, proxy4ValueCodec } from '../layouts'

/** Where a proxied client connection was going. */
export interface ProxyOrigin {
  /** The destination the client's packet had (after service DNAT). */
  address: string
  port: number
  srcIdentity: number
  dstIdentity: number
  /** Endpoint whose policy redirected the flow. */
  endpointId: number
  /** Whose policy redirected: the sender's egress or the receiver's ingress. */
  direction: 'ingress' | 'egress'
}

const PROTO: Record<string, number> = { TCP: 6, UDP: 17 }

/** `mb_proxy4`: the L7 proxy's original-destination table. */
export class ProxyMap {
  readonly #map: MapLike

  constructor(map: MapLike) {
    this.#map = map
  }

  /**
   * The original destination of the client connection {clientIp, clientPort, protocol} that
   * the datapath redirected to the proxy, or undefined.
   */
  lookup(
    clientIp: string,
    clientPort: number,
    protocol: 'TCP' | 'UDP' | number = 'TCP',
  ): ProxyOrigin | undefined {
    const proto = typeof protocol === 'number' ? protocol : PROTO[protocol]
    if (proto === undefined) return undefined
    const vb = this.#map.lookup(proxy4KeyCodec.encode({ clientIp, clientPort, proto }))
    if (!vb) return undefined
    const v = proxy4ValueCodec.decode(vb)
    return {
      address: v.origDaddr,
      port: v.origDport,
      srcIdentity: v.srcIdentity,
      dstIdentity: v.dstIdentity,
      endpointId: v.endpointId,
      direction: v.direction === 0 ? 'ingress' : 'egress',
    }
  }
}
