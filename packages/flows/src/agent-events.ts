/**
 * Agent events (Hubble's flow.AgentEvent): the changes an agent makes (endpoints, policies,
 * services, ipcache entries) as the agent publishes them to the observer, read back with
 * GetAgentEvents' number/first/follow/since/until.
 */
import type { FlowRing, RingEntry } from './ring'
import type { Timestamp } from './types'

/** Hubble's AgentEventType numbers. */
export const AgentEventType = {
  AGENT_EVENT_UNKNOWN: 0,
  AGENT_STARTED: 2,
  POLICY_UPDATED: 3,
  POLICY_DELETED: 4,
  ENDPOINT_REGENERATE_SUCCESS: 5,
  ENDPOINT_REGENERATE_FAILURE: 6,
  ENDPOINT_CREATED: 7,
  ENDPOINT_DELETED: 8,
  IPCACHE_UPSERTED: 9,
  IPCACHE_DELETED: 10,
  SERVICE_UPSERTED: 11,
  SERVICE_DELETED: 12,
} as const
export type AgentEventType = (typeof AgentEventType)[keyof typeof AgentEventType]

/** An address of a service notification. */
export interface ServiceAddr {
  ip: string
  port: number
}

/**
 * One agent event: `type` and the notification that goes with it (camelCase like the decoded
 * protobuf). POLICY_* carry `policyUpdate`, ENDPOINT_CREATED/DELETED `endpointUpdate`,
 * ENDPOINT_REGENERATE_* `endpointRegenerate`, IPCACHE_* `ipcacheUpdate`, SERVICE_UPSERTED
 * `serviceUpsert`, SERVICE_DELETED `serviceDelete`, AGENT_STARTED `agentStart`.
 */
export interface AgentEvent {
  type: AgentEventType
  agentStart?: { time: Timestamp }
  policyUpdate?: { labels?: string[]; revision?: number; ruleCount?: number }
  endpointRegenerate?: { id: number; labels?: string[]; error?: string }
  endpointUpdate?: {
    id: number
    labels?: string[]
    error?: string
    podName?: string
    namespace?: string
  }
  ipcacheUpdate?: {
    cidr: string
    identity: number
    oldIdentity?: { value: number }
    hostIp?: string
    oldHostIp?: string
    encryptKey?: number
    namespace?: string
    podName?: string
  }
  serviceUpsert?: {
    id: number
    frontendAddress?: ServiceAddr
    backendAddresses?: ServiceAddr[]
    type?: string
    name?: string
    namespace?: string
    extTrafficPolicy?: string
    intTrafficPolicy?: string
  }
  serviceDelete?: { id: number }
}

/** A GetAgentEvents request (the decoded observer.GetAgentEventsRequest). */
export interface GetAgentEventsRequest {
  /** The last N events (the first N with `first`); 0 = all (or only new ones with follow). */
  number?: number
  first?: boolean
  follow?: boolean
  since?: Timestamp
  until?: Timestamp
}

const tsNs = (t: Timestamp | undefined): number =>
  t ? t.seconds * 1e9 + (t.nanos ?? 0) : Number.NEGATIVE_INFINITY

/**
 * Read agent-event entries of `ring` with GetAgentEvents semantics. Without follow the stream
 * ends at the ring's head as of the call; entries overwritten before they are read are skipped.
 */
export async function* readAgentEvents(
  ring: FlowRing,
  req: GetAgentEventsRequest,
  signal?: AbortSignal,
): AsyncGenerator<RingEntry> {
  const since = tsNs(req.since)
  const until = req.until ? tsNs(req.until) : Number.POSITIVE_INFINITY
  const inWindow = (e: RingEntry) => tsNs(e.time) >= since && tsNs(e.time) <= until
  const number = req.number ?? 0
  let seq = ring.oldest
  if (!req.first && number > 0) {
    let count = 0
    for (let s = ring.head - 1; s >= ring.oldest; s--) {
      const e = ring.at(s)
      if (e && inWindow(e) && ++count === number) {
        seq = s
        break
      }
    }
  } else if (!req.first && !req.since && req.follow) seq = ring.head
  const end = req.follow && !req.first ? Number.POSITIVE_INFINITY : ring.head
  const limit = req.first && number > 0 ? number : Number.POSITIVE_INFINITY
  let sent = 0
  while (!signal?.aborted && seq < end && sent < limit) {
    if (seq >= ring.head) {
      await new Promise<void>((resolve) => {
        const done = () => {
          cancel()
          signal?.removeEventListener('abort', done)
          resolve()
        }
        const cancel = ring.waitForWrite(done)
        signal?.addEventListener('abort', done, { once: true })
      })
      continue
    }
    seq = Math.max(seq, ring.oldest)
    const e = ring.at(seq++)
    if (!e?.agentEvent) continue
    if (tsNs(e.time) > until) return
    if (!inWindow(e)) continue
    sent++
    yield e
  }
}
