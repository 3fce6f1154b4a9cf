/**
 * The flow observer: takes datapath events and L7 records in, keeps the newest flows in a ring,
 * and serves GetFlows-style reads (last/first N, time window, follow) with filters.
 */
import { hostname } from 'node:os'
import { eventToFlow, type MonotonicClock, monotonicClock } from './convert'
import type { Enricher } from './enrich'
import { decodeEvent, EventDecodeError } from './event'
import { compileFilters, type FlowFilter } from './filter'
import { type L7Record, l7RecordToFlow } from './l7'
import { encodeFlow, encodeFlowsResponse } from './proto'
import { DEFAULT_RING_CAPACITY, FlowRing, type RingEntry } from './ring'
import { type Flow, type LostEvent, LostEventSource, type Timestamp } from './types'

/** Receives every flow the observer stores (e.g. {@link FlowMetrics}). */
export interface FlowSink {
  /** @param wireBytes packet length from the datapath event (0 for L7 and synthetic flows). */
  observeFlow(flow: Flow, wireBytes: number): void
  observeLost(source: LostEventSource, count: number): void
}

/** Options of {@link FlowObserver}. */
export interface ObserverOptions {
  /** Node name stamped on flows and responses (default: os.hostname()). */
  nodeName?: string
  /** Ring capacity in flows (default 4095, Hubble's default). */
  capacity?: number
  /** Metadata lookups (identity labels, pods, services, DNS names). */
  enricher?: Enricher
  /** Monotonic -> wall clock conversion (default: measured once at construction). */
  clock?: MonotonicClock
  /**
   * Cumulative number of events the datapath could not write (the sum over CPUs of the
   * `mb_events_lost` per-CPU array). Polled every `lostPollMs` after {@link FlowObserver.start};
   * increases are stored in the ring as LostEvent(PERF_EVENT_RING_BUFFER).
   */
  lostEvents?: () => number | bigint
  /** Poll interval of `lostEvents` in ms (default 1000). */
  lostPollMs?: number
  /** Flow consumers such as metrics. */
  sinks?: FlowSink[]
  /** Version reported by ServerStatus/GetNodes (default 'membrane-0.1.0'). */
  version?: string
}

/** A GetFlows request (the decoded observer.GetFlowsRequest). */
export interface GetFlowsRequest {
  /** How many flows: the last N (or the first N with `first`); 0 = all (or only new ones with follow). */
  number?: number
  first?: boolean
  follow?: boolean
  whitelist?: FlowFilter[]
  blacklist?: FlowFilter[]
  since?: Timestamp
  until?: Timestamp
}

/** One item of a GetFlows stream: a ring entry (flow or datapath loss) or a reader-loss notice. */
export type StreamItem = { entry: RingEntry } | { lost: LostEvent }

/** ServerStatus numbers. */
export interface ObserverStatus {
  numFlows: number
  maxFlows: number
  seenFlows: number
  uptimeNs: number
  version: string
}

const tsNs = (t: Timestamp | undefined): number =>
  t ? t.seconds * 1e9 + (t.nanos ?? 0) : Number.NEGATIVE_INFINITY

/**
 * The observer. Writers (`ingestEvent`, `ingestL7`, `addFlow`) are synchronous and never wait
 * for readers: a reader that falls behind the ring is told how many entries it missed.
 *
 * @example
 * const observer = new FlowObserver({ nodeName: 'node-1', enricher })
 * const rb = new RingBuffer(eventsMap, (rec) => observer.ingestEvent(rec))
 * for await (const item of observer.getFlows({ follow: true })) console.log(item)
 */
export class FlowObserver {
  readonly ring: FlowRing
  readonly nodeName: string
  readonly version: string
  private readonly enricher: Enricher | undefined
  private readonly clock: MonotonicClock
  private readonly sinks: FlowSink[]
  private readonly startedNs = process.hrtime.bigint()
  private readonly lostProvider: (() => number | bigint) | undefined
  private readonly lostPollMs: number
  private lastLost: number | undefined
  private lostTimer: NodeJS.Timeout | undefined
  /** Flows seen since start (including those already overwritten). */
  seenFlows = 0
  /** Records that could not be decoded. */
  decodeErrors = 0

  constructor(opts: ObserverOptions = {}) {
    this.ring = new FlowRing(opts.capacity ?? DEFAULT_RING_CAPACITY)
    this.nodeName = opts.nodeName ?? hostname()
    this.version = opts.version ?? 'membrane-0.1.0'
    this.enricher = opts.enricher
    this.clock = opts.clock ?? monotonicClock()
    this.sinks = [...(opts.sinks ?? [])]
    this.lostProvider = opts.lostEvents
    this.lostPollMs = opts.lostPollMs ?? 1000
  }

  /** Add a flow consumer (e.g. metrics) after construction. */
  addSink(sink: FlowSink): void {
    this.sinks.push(sink)
  }

  /** Start polling the datapath loss counter (no-op without `lostEvents`). */
  start(): void {
    if (!this.lostProvider || this.lostTimer) return
    this.pollLost()
    this.lostTimer = setInterval(() => this.pollLost(), this.lostPollMs)
    this.lostTimer.unref()
  }

  /** Stop polling. */
  stop(): void {
    if (this.lostTimer) clearInterval(this.lostTimer)
    this.lostTimer = undefined
  }

  /**
   * Read the datapath loss counter now; an increase is stored as a LostEvent entry. The first
   * reading is the baseline. Returns the increase.
   */
  pollLost(): number {
    if (!this.lostProvider) return 0
    const now = Number(this.lostProvider())
    const prev = this.lastLost
    this.lastLost = now
    if (prev === undefined || now <= prev) return 0
    const n = now - prev
    this.reportLost(LostEventSource.PERF_EVENT_RING_BUFFER, n)
    return n
  }

  /** Store a loss notice in the ring (delivered to readers in order with the flows). */
  reportLost(source: LostEventSource, count: number, cpu?: number): void {
    const lost: LostEvent = { source, numEventsLost: count }
    if (cpu !== undefined) lost.cpu = { value: cpu }
    this.ring.push({ time: this.clock.now(), lost })
    for (const s of this.sinks) s.observeLost(source, count)
  }

  /**
   * Decode one ring-buffer record, enrich it, store the flow. Undecodable records are counted in
   * `decodeErrors` (never thrown: this runs in the ring-buffer callback). Returns the flow, if any.
   */
  ingestEvent(record: Buffer): Flow | undefined {
    let ev: ReturnType<typeof decodeEvent>
    try {
      ev = decodeEvent(record)
    } catch (e) {
      if (e instanceof EventDecodeError) {
        this.decodeErrors++
        return undefined
      }
      throw e
    }
    const flow = eventToFlow(ev, {
      nodeName: this.nodeName,
      enricher: this.enricher,
      clock: this.clock,
    })
    if (!flow) return undefined
    this.store(flow, ev.len)
    return flow
  }

  /** Consume an event stream (e.g. an async iterator over ring-buffer records) until it ends. */
  async ingestEvents(source: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    for await (const rec of source) this.ingestEvent(rec)
  }

  /**
   * Store an L7 record from the proxy as a Flow (Type L7).
   * @throws L7RecordError for a malformed record.
   */
  ingestL7(record: L7Record): Flow {
    const flow = l7RecordToFlow(record, { nodeName: this.nodeName, enricher: this.enricher })
    this.store(flow, 0)
    return flow
  }

  /** Store a ready-made flow (time defaults to now). */
  addFlow(flow: Flow): void {
    if (!flow.time) flow.time = this.clock.now()
    if (!flow.nodeName) flow.nodeName = this.nodeName
    this.store(flow, 0)
  }

  private store(flow: Flow, wireBytes: number): void {
    this.seenFlows++
    this.ring.push({ time: flow.time, flow })
    for (const s of this.sinks) s.observeFlow(flow, wireBytes)
  }

  /** ServerStatus numbers. */
  status(): ObserverStatus {
    let numFlows = 0
    for (const e of this.ring.entries()) if (e.flow) numFlows++
    return {
      numFlows,
      maxFlows: this.ring.capacity,
      seenFlows: this.seenFlows,
      uptimeNs: Number(process.hrtime.bigint() - this.startedNs),
      version: this.version,
    }
  }

  /** The GetFlowsResponse bytes of a ring entry (flow encoded once and cached on the entry). */
  responseBytes(entry: RingEntry): Buffer {
    const cached = (entry as RingEntry & { response?: Buffer }).response
    if (cached) return cached
    if (entry.flow && !entry.flowBytes) entry.flowBytes = encodeFlow(entry.flow)
    const body = entry.flowBytes
      ? { flowBytes: entry.flowBytes }
      : { lost: entry.lost as LostEvent }
    const bytes = encodeFlowsResponse(body, this.nodeName, entry.time)
    ;(entry as RingEntry & { response?: Buffer }).response = bytes
    return bytes
  }

  /** GetFlowsResponse bytes for a reader-loss notice. */
  lostResponseBytes(lost: LostEvent): Buffer {
    return encodeFlowsResponse({ lost }, this.nodeName, this.clock.now())
  }

  /**
   * Read flows like Hubble's GetFlows. Without follow the stream ends at the ring's head as of the
   * call. Readers that fall behind get `{ lost: { source: HUBBLE_RING_BUFFER, numEventsLost } }`.
   * @throws FilterError for an invalid filter (before the first item).
   */
  getFlows(req: GetFlowsRequest = {}, signal?: AbortSignal): AsyncGenerator<StreamItem> {
    const match = compileFilters(req.whitelist ?? [], req.blacklist ?? [])
    // Where to start and stop is decided now, not at the first pull of the generator.
    const since = tsNs(req.since)
    const until = req.until ? tsNs(req.until) : Number.POSITIVE_INFINITY
    const ok = (e: RingEntry) => {
      const t = tsNs(e.time)
      return !!e.flow && t >= since && t <= until && match(e.flow)
    }
    const start = this.startSeq(req, ok)
    const end = req.follow && !req.first ? Number.POSITIVE_INFINITY : this.ring.head
    return this.stream(req, match, start, end, signal)
  }

  private startSeq(req: GetFlowsRequest, ok: (e: RingEntry) => boolean): number {
    const ring = this.ring
    const number = req.number ?? 0
    if (req.first) return ring.oldest
    if (number > 0) {
      let count = 0
      for (let s = ring.head - 1; s >= ring.oldest; s--) {
        const e = ring.at(s)
        if (e?.flow && ok(e) && ++count === number) return s
      }
      return ring.oldest
    }
    if (req.since) return ring.oldest
    if (req.follow) return ring.head
    return ring.oldest
  }

  private async *stream(
    req: GetFlowsRequest,
    match: (f: Flow) => boolean,
    start: number,
    end: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<StreamItem> {
    const ring = this.ring
    const since = tsNs(req.since)
    const until = req.until ? tsNs(req.until) : Number.POSITIVE_INFINITY
    const inWindow = (e: RingEntry) => {
      const t = tsNs(e.time)
      return t >= since && t <= until
    }
    const number = req.number ?? 0
    const limit = req.first && number > 0 ? number : Number.POSITIVE_INFINITY
    let cursor = start
    let sent = 0
    while (!signal?.aborted) {
      while (cursor < ring.head && cursor < end) {
        if (signal?.aborted) return
        if (cursor < ring.oldest) {
          const missed = ring.oldest - cursor
          cursor = ring.oldest
          yield { lost: { source: LostEventSource.HUBBLE_RING_BUFFER, numEventsLost: missed } }
          continue
        }
        const e = ring.at(cursor++) as RingEntry
        if (e.lost) {
          if (inWindow(e)) yield { entry: e }
          continue
        }
        if (!e.flow || !match(e.flow)) continue
        const t = tsNs(e.time)
        if (t < since) continue
        if (t > until) return
        yield { entry: e }
        if (++sent >= limit) return
      }
      if (cursor >= end || signal?.aborted) return
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          cancel()
          resolve()
        }
        const cancel = ring.waitForWrite(() => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        })
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
  }
}
