/**
 * L7 flow records the proxy emits: the shape @membrane/flows takes in `ingestL7(record)`
 * (`L7Record`), declared here so the proxy does not depend on the flows package.
 */

/** One side of a proxied connection. */
export interface L7RecordPeer {
  ip: string
  port: number
  identity?: number
}

/** One L7 flow record (a request, or its response with status and latency). */
export interface L7ProxyRecord {
  time: Date
  type: 'request' | 'response'
  verdict: 'forwarded' | 'denied' | 'error'
  trafficDirection: 'ingress' | 'egress'
  source: L7RecordPeer
  destination: L7RecordPeer
  transport: 'tcp' | 'udp'
  /** Request to response headers, in nanoseconds (responses). */
  latencyNs?: number
  proxyPort?: number
  http?: {
    code?: number
    method?: string
    url?: string
    protocol?: string
    headers?: { key: string; value: string }[]
  }
  kafka?: {
    errorCode?: number
    apiVersion?: number
    apiKey?: string
    correlationId?: number
    topic?: string
  }
  dns?: {
    query?: string
    ips?: string[]
    ttl?: number
    cnames?: string[]
    observationSource?: string
    rcode?: number
    qtypes?: string[]
    rrtypes?: string[]
  }
}

/** Receives every record (synchronously; keep it cheap). */
export type RecordSink = (record: L7ProxyRecord) => void
