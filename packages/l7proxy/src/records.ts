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

/** A {@link RecordSink} that hands records on in batches; `flush()` hands on what waits now. */
export type RecordBatcher = RecordSink & { flush(): void }

/** Options of {@link batchRecords}. */
export interface BatchRecordsOptions {
  /** Longest time a record waits for others, ms. Default 10. */
  maxDelayMs?: number
  /** A batch this long is handed on at once. Default 256. */
  maxRecords?: number
}

/**
 * A record sink that collects records and hands them to `deliver` in batches: at most
 * `maxDelayMs` after the first record of a batch, or at once when `maxRecords` wait. A proxy
 * makes two records per request; a sink that serialises and writes each one (a message to
 * another process, a syscall) costs more than the request and competes with it for the CPU.
 * Batched, that work leaves the request path and is paid once per batch. Records keep their
 * order; a throwing `deliver` loses its batch only.
 *
 * @example
 * const onRecord = batchRecords((records) => link.write(`${JSON.stringify(records)}\n`))
 * const proxy = new L7Proxy({ origins, policy, onRecord })
 */
export function batchRecords(
  deliver: (records: L7ProxyRecord[]) => void,
  options: BatchRecordsOptions = {},
): RecordBatcher {
  const maxDelayMs = options.maxDelayMs ?? 10
  const maxRecords = options.maxRecords ?? 256
  let batch: L7ProxyRecord[] = []
  let timer: NodeJS.Timeout | undefined
  const flush = () => {
    clearTimeout(timer)
    timer = undefined
    if (batch.length === 0) return
    const records = batch
    batch = []
    try {
      deliver(records)
    } catch {
      // a failing sink must not break the data path
    }
  }
  const sink = (record: L7ProxyRecord) => {
    batch.push(record)
    if (batch.length >= maxRecords) flush()
    else timer ??= setTimeout(flush, maxDelayMs)
  }
  return Object.assign(sink, { flush })
}
