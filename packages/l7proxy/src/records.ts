/**
 * L7 flow records the proxy emits. The record contract (`L7Record`) is owned by
 * @membrane/types, so the proxy and @membrane/flows (`ingestL7(record)`) share one shape
 * without depending on each other; the proxy always fills the fields that are optional there.
 */
import type { L7Peer, L7Record } from '@membrane/types'

/** One side of a proxied connection. */
export type L7RecordPeer = L7Peer

/** One L7 flow record (a request, or its response with status and latency). */
export interface L7ProxyRecord extends L7Record {
  time: Date
  type: 'request' | 'response'
  verdict: 'forwarded' | 'denied' | 'error'
  trafficDirection: 'ingress' | 'egress'
  transport: 'tcp' | 'udp'
}

/** Receives every record (synchronously; keep it cheap). */
export type RecordSink = (record: L7ProxyRecord) => void
