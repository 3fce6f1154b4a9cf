/**
 * The contract between the datapath and the L7 proxy: where a redirected connection was going.
 * The datapath records it when it sends a client's connection to the proxy; the proxy asks for
 * it by the client's address.
 */

/** The original destination and identities of one redirected client connection or datagram. */
export interface ProxyOrigin {
  /** The destination address the client used (after service translation). */
  address: string
  port: number
  /** Security identity of the client. */
  srcIdentity: number
  /** Security identity of the original destination. */
  dstIdentity: number
  /** The endpoint whose policy redirected the traffic. */
  endpointId: number
  /** Whose policy redirected: the client's egress or the server's ingress. */
  direction: 'ingress' | 'egress'
}
