/**
 * The flow observer: takes datapath events and L7 records in, keeps the newest flows in a ring,
 * and serves GetFlows-style reads (last/first N, time window, follow) with filters.
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { L7Record } from '@membrane/types'
import { fastEncodeFramedResponse } from './_encode'
import { type AgentEvent, type GetAgentEventsRequest, readAgentEvents } from './agent-events'
import { EndpointCache, eventToFlow, type MonotonicClock, monotonicClock } from './convert'
import type { Enricher } from './enrich'
import { decodeEvent, EventDecodeError } from './event'
import { compileFieldMask, type FlowMask } from './fieldmask'
import { compileFilters, type FlowFilter } from './filter'
import { l7RecordToFlow } from './l7'
import { encodeFlow, encodeFlowsResponse, encodeMessage } from './proto'
import { type RedactOptions, redactFlow } from './redact'
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
  /**
   * Redaction of L7 flows before they are stored (every reader sees the redacted flow). Default:
   * on, with URL queries, URL passwords and credential headers hidden; `{ enabled: false }`
   * keeps everything.
   */
  redact?: RedactOptions
  /** This node's labels (`key=value`), stamped on every flow as node_labels. Default none. */
  nodeLabels?: readonly string[]
  /** Agent events kept for GetAgentEvents (default 1024). */
  agentEventCapacity?: number
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
  /** Only these Flow paths are sent (`source.pod_name`, `verdict`); empty = everything. */
  fieldMask?: { paths?: string[] }
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
  /** Flows per second over the last minute. */
  flowsRate: number
}

/** A namespace seen in flows (GetNamespaces). */
export interface SeenNamespace {
  cluster: string
  namespace: string
}

const RATE_WINDOW_S = 60
const NAMESPACE_TTL_S = 3600

/** Prefix a message with gRPC's 5-byte header (uncompressed). */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length)
  out[0] = 0
  out.writeUInt32BE(message.length, 1)
  out.set(message, 5)
  return out
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
  private readonly endpoints = new EndpointCache()
  private readonly startedNs = process.hrtime.bigint()
  private readonly lostProvider: (() => number | bigint) | undefined
  private readonly lostPollMs: number
  private readonly redact: RedactOptions
  private lastLost: number | undefined
  private lostTimer: NodeJS.Timeout | undefined
  /** Flows seen since start (including those already overwritten). */
  seenFlows = 0
  /** Records that could not be decoded. */
  decodeErrors = 0
  /** Events dropped because enrichment threw (see `lastIngestError`). */
  ingestErrors = 0
  /** The last error thrown while converting an event. */
  lastIngestError: unknown
  /** Failed polls of the `lostEvents` provider (see {@link FlowObserver.start}). */
  lostPollErrors = 0
  /** The last error of the `lostEvents` provider. */
  lastLostPollError: unknown
  /** Agent events (endpoint, policy, service, ipcache changes) for GetAgentEvents. */
  readonly agentEvents: FlowRing
  private readonly nodeLabels: string[] | undefined
  // flows per wall-clock second, for flows_rate: count and second of each of the last 60 slots
  private readonly rateCounts = new Float64Array(RATE_WINDOW_S)
  private readonly rateSeconds = new Float64Array(RATE_WINDOW_S).fill(-1)
  // namespace -> cluster -> last second a flow named it
  private readonly namespacesSeen = new Map<string, Map<string, number>>()

  constructor(opts: ObserverOptions = {}) {
    this.ring = new FlowRing(opts.capacity ?? DEFAULT_RING_CAPACITY)
    this.nodeName = opts.nodeName ?? hostname()
    this.version = opts.version ?? 'membrane-0.1.0'
    this.enricher = opts.enricher
    this.clock = opts.clock ?? monotonicClock()
    this.sinks = [...(opts.sinks ?? [])]
    this.lostProvider = opts.lostEvents
    this.lostPollMs = opts.lostPollMs ?? 1000
    this.redact = opts.redact ?? {}
    this.nodeLabels = opts.nodeLabels?.length
      ? (Object.freeze([...opts.nodeLabels]) as string[])
      : undefined
    this.agentEvents = new FlowRing(opts.agentEventCapacity ?? 1024)
  }

  /** Add a flow consumer (e.g. metrics) after construction. */
  addSink(sink: FlowSink): void {
    this.sinks.push(sink)
  }

  /** Start polling the datapath loss counter (no-op without `lostEvents`). */
  start(): void {
    if (!this.lostProvider || this.lostTimer) return
    const poll = () => {
      try {
        this.pollLost()
      } catch (e) {
        // A failing counter (a closed map, say) must not take the process down from a timer.
        this.lostPollErrors++
        this.lastLostPollError = e
      }
    }
    poll()
    this.lostTimer = setInterval(poll, this.lostPollMs)
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
    let flow: Flow | undefined
    try {
      flow = eventToFlow(ev, {
        nodeName: this.nodeName,
        enricher: this.enricher,
        clock: this.clock,
        endpoints: this.endpoints,
      })
    } catch (e) {
      // An enricher bug must not break the ring-buffer callback: count it and keep going.
      this.ingestErrors++
      this.lastIngestError = e
      return undefined
    }
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
    const flow = redactFlow(
      l7RecordToFlow(record, { nodeName: this.nodeName, enricher: this.enricher }),
      this.redact,
    )
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
    // One random v4 uuid per stored flow: every reader of the ring sees the same one.
    flow.uuid ||= randomUUID()
    if (this.nodeLabels && !flow.nodeLabels) flow.nodeLabels = this.nodeLabels
    const sec = flow.time ? flow.time.seconds : Math.floor(Date.now() / 1000)
    const slot = sec % RATE_WINDOW_S
    if (this.rateSeconds[slot] !== sec) {
      this.rateSeconds[slot] = sec
      this.rateCounts[slot] = 0
    }
    ;(this.rateCounts[slot] as number)++
    this.seeNamespace(flow.source, sec)
    this.seeNamespace(flow.destination, sec)
    this.ring.push({ time: flow.time, flow })
    for (const s of this.sinks) s.observeFlow(flow, wireBytes)
  }

  private seeNamespace(ep: Flow['source'], sec: number): void {
    const ns = ep?.namespace
    if (!ns) return
    let clusters = this.namespacesSeen.get(ns)
    if (!clusters) {
      clusters = new Map()
      this.namespacesSeen.set(ns, clusters)
    }
    clusters.set(ep.clusterName ?? '', sec)
  }

  /** Flows per second over the last minute (over the uptime while it is shorter). */
  flowsRate(nowMs = Date.now()): number {
    const now = Math.floor(nowMs / 1000)
    let n = 0
    for (let i = 0; i < RATE_WINDOW_S; i++) {
      const s = this.rateSeconds[i] as number
      if (s > now - RATE_WINDOW_S && s <= now) n += this.rateCounts[i] as number
    }
    const upS = Number(process.hrtime.bigint() - this.startedNs) / 1e9
    return n / Math.min(RATE_WINDOW_S, Math.max(1, upS))
  }

  /** Namespaces (with their cluster) seen in flows during the last hour, sorted. */
  namespaces(nowMs = Date.now()): SeenNamespace[] {
    const oldest = Math.floor(nowMs / 1000) - NAMESPACE_TTL_S
    const out: SeenNamespace[] = []
    for (const [namespace, clusters] of this.namespacesSeen) {
      for (const [cluster, sec] of clusters) {
        if (sec >= oldest) out.push({ cluster, namespace })
        else clusters.delete(cluster)
      }
      if (clusters.size === 0) this.namespacesSeen.delete(namespace)
    }
    return out.sort(
      (a, b) => a.cluster.localeCompare(b.cluster) || a.namespace.localeCompare(b.namespace),
    )
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
      flowsRate: this.flowsRate(),
    }
  }

  /**
   * Publish an agent event (the agent calls this for endpoint, policy, service and ipcache
   * changes); GetAgentEvents readers get it in order.
   */
  publishAgentEvent(event: AgentEvent): void {
    this.agentEvents.push({ time: this.clock.now(), agentEvent: event })
  }

  /** Read agent events like Hubble's GetAgentEvents (see {@link readAgentEvents}). */
  getAgentEvents(req: GetAgentEventsRequest = {}, signal?: AbortSignal): AsyncGenerator<RingEntry> {
    return readAgentEvents(this.agentEvents, req, signal)
  }

  /** The GetAgentEventsResponse bytes of an agent-event entry. */
  agentEventResponseBytes(entry: RingEntry): Buffer {
    return encodeMessage('observer.GetAgentEventsResponse', {
      agentEvent: entry.agentEvent,
      nodeName: this.nodeName,
      time: entry.time,
    })
  }

  /**
   * The GetFlowsResponse of a ring entry as a gRPC length-prefixed message (flag byte, 4-byte
   * big-endian length, bytes). Encoded once per entry and cached, whatever the number of readers.
   */
  framedResponse(entry: RingEntry, mask?: FlowMask): Buffer {
    // A masked flow is encoded for its reader alone (the cache holds the whole flow).
    if (mask && entry.flow)
      return fastEncodeFramedResponse({
        flow: mask.apply(entry.flow),
        nodeName: this.nodeName,
        time: entry.time,
      })
    const cached = (entry as RingEntry & { framed?: Buffer }).framed
    if (cached) return cached
    const framed = entry.flow
      ? fastEncodeFramedResponse({ flow: entry.flow, nodeName: this.nodeName, time: entry.time })
      : frame(this.responseBytes(entry))
    ;(entry as RingEntry & { framed?: Buffer }).framed = framed
    return framed
  }

  /** The GetFlowsResponse bytes of a ring entry (not cached; see {@link FlowObserver.framedResponse}). */
  responseBytes(entry: RingEntry): Buffer {
    if (entry.flow && !entry.flowBytes) entry.flowBytes = encodeFlow(entry.flow)
    const body = entry.flowBytes
      ? { flowBytes: entry.flowBytes }
      : { lost: entry.lost as LostEvent }
    return encodeFlowsResponse(body, this.nodeName, entry.time)
  }

  /** GetFlowsResponse bytes for a reader-loss notice. */
  lostResponseBytes(lost: LostEvent): Buffer {
    return encodeFlowsResponse({ lost }, this.nodeName, this.clock.now())
  }

  /**
   * Open a reader over the ring with GetFlows semantics (see {@link FlowCursor}). Where it starts
   * and stops is decided now.
   * @throws FilterError for an invalid filter or field mask.
   */
  openCursor(req: GetFlowsRequest = {}): FlowCursor {
    return new FlowCursor(this.ring, req)
  }

  /**
   * Read flows like Hubble's GetFlows. Without follow the stream ends at the ring's head as of the
   * call. Readers that fall behind get `{ lost: { source: HUBBLE_RING_BUFFER, numEventsLost } }`.
   * @throws FilterError for an invalid filter (at the call, before the first item).
   */
  getFlows(req: GetFlowsRequest = {}, signal?: AbortSignal): AsyncGenerator<StreamItem> {
    const cursor = this.openCursor(req)
    return (async function* () {
      while (!signal?.aborted) {
        const item = cursor.poll()
        if (item === null) return
        if (item === undefined) {
          await cursor.wait(signal)
          continue
        }
        yield item
      }
    })()
  }
}

/**
 * A reader's position in the ring with GetFlows semantics: `number`/`first`/`follow`/`since`/
 * `until`, whitelist/blacklist. `poll()` is synchronous so a server can batch everything that is
 * ready into one write.
 */
class FlowCursor {
  /** The request's field mask, compiled (undefined: whole flows). */
  readonly mask: FlowMask | undefined
  private cursor: number
  private readonly end: number
  private readonly limit: number
  private readonly since: number
  private readonly until: number
  private readonly match: (f: Flow) => boolean
  private sent = 0
  private finished = false
  // (set by wait() when the wall clock passes `until`)

  /** @throws FilterError for an invalid filter. */
  constructor(
    private readonly ring: FlowRing,
    req: GetFlowsRequest,
  ) {
    this.match = compileFilters(req.whitelist ?? [], req.blacklist ?? [])
    this.mask = compileFieldMask(req.fieldMask?.paths)
    this.since = tsNs(req.since)
    this.until = req.until ? tsNs(req.until) : Number.POSITIVE_INFINITY
    const number = req.number ?? 0
    this.limit = req.first && number > 0 ? number : Number.POSITIVE_INFINITY
    this.cursor = this.startSeq(req)
    this.end = req.follow && !req.first ? Number.POSITIVE_INFINITY : ring.head
  }

  private ok(e: RingEntry): boolean {
    const t = tsNs(e.time)
    return !!e.flow && t >= this.since && t <= this.until && this.match(e.flow)
  }

  private startSeq(req: GetFlowsRequest): number {
    const ring = this.ring
    const number = req.number ?? 0
    if (req.first) return ring.oldest
    if (number > 0) {
      let count = 0
      for (let s = ring.head - 1; s >= ring.oldest; s--) {
        const e = ring.at(s)
        if (e && this.ok(e) && ++count === number) return s
      }
      return ring.oldest
    }
    if (req.since) return ring.oldest
    if (req.follow) return ring.head
    return ring.oldest
  }

  /**
   * The next item: a flow or datapath-loss entry, or a notice of entries this reader missed;
   * `undefined` when nothing is ready yet (call {@link FlowCursor.wait}); `null` when done.
   */
  poll(): StreamItem | undefined | null {
    const ring = this.ring
    while (!this.finished) {
      if (this.cursor >= this.end) break
      if (this.cursor >= ring.head) return undefined
      if (this.cursor < ring.oldest) {
        const missed = ring.oldest - this.cursor
        this.cursor = ring.oldest
        return { lost: { source: LostEventSource.HUBBLE_RING_BUFFER, numEventsLost: missed } }
      }
      const e = ring.at(this.cursor++) as RingEntry
      const t = tsNs(e.time)
      if (e.lost) {
        if (t >= this.since && t <= this.until) return { entry: e }
        continue
      }
      if (!e.flow || !this.match(e.flow) || t < this.since) continue
      if (t > this.until) break
      if (++this.sent >= this.limit) this.finished = true
      return { entry: e }
    }
    this.finished = true
    return null
  }

  /**
   * Resolve at the next ring write, when `signal` aborts, or when the wall clock passes the
   * request's `until` (after which `poll()` returns null: a follow stream ends at `until` even when
   * no newer flow arrives).
   */
  wait(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve()
      let timer: NodeJS.Timeout | undefined
      const done = () => {
        cancel()
        if (timer) clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const cancel = this.ring.waitForWrite(done)
      signal?.addEventListener('abort', done, { once: true })
      if (Number.isFinite(this.until)) {
        const ms = this.until / 1e6 - Date.now()
        if (ms <= 0) {
          this.finished = true
          done()
          return
        }
        timer = setTimeout(() => {
          this.finished = true
          done()
        }, ms + 1)
        timer.unref?.()
      }
    })
  }
}
