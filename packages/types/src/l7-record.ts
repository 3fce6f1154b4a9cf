/**
 * The L7 record contract: what the L7 proxy reports for one request or response, and what the
 * flows package turns into a Hubble Flow. The proxy and the flows package both import it here,
 * so neither depends on the other and the shape exists once. Field names follow Hubble's
 * `HTTP`, `Kafka` and `DNS` messages (flow.proto).
 */

/** One side of a proxied connection. */
export interface L7Peer {
  ip: string
  port: number
  /** Security identity, when the proxy knows it. */
  identity?: number
}

/** Hubble's `HTTP` message: one request (method, url) or its response (code). */
export interface L7Http {
  code?: number
  method?: string
  url?: string
  protocol?: string
  headers?: { key: string; value: string }[]
}

/** Hubble's `Kafka` message. */
export interface L7Kafka {
  errorCode?: number
  apiVersion?: number
  apiKey?: string
  correlationId?: number
  topic?: string
}

/** Hubble's `DNS` message. */
export interface L7Dns {
  query?: string
  ips?: string[]
  ttl?: number
  cnames?: string[]
  observationSource?: string
  rcode?: number
  qtypes?: string[]
  rrtypes?: string[]
}

/**
 * One L7 record (Cilium's access-log entry, in short). Exactly one of `http`, `kafka`, `dns` is
 * set. The optional fields have the defaults the flows package applies: time now, type
 * 'request', verdict 'forwarded', direction 'ingress', transport 'udp' for DNS else 'tcp'.
 */
export interface L7Record {
  /** When it happened: a Date, or protobuf's seconds/nanos. */
  time?: Date | { seconds: number; nanos: number }
  type?: 'request' | 'response' | 'sample'
  verdict?: 'forwarded' | 'denied' | 'error' | 'redirected'
  trafficDirection?: 'ingress' | 'egress'
  source: L7Peer
  destination: L7Peer
  transport?: 'tcp' | 'udp'
  /** Request to response, in nanoseconds (responses). */
  latencyNs?: number
  /** The proxy's listening port. */
  proxyPort?: number
  http?: L7Http
  kafka?: L7Kafka
  dns?: L7Dns
  /**
   * The policies (refs, `Kind/namespace/name`) that decided the verdict: the one whose L7 rule
   * allowed the request, or on a denial every policy with L7 rules on that port.
   */
  policies?: string[]
}
