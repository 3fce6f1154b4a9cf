/** The bounded in-memory ring of flows (and loss notices) that readers follow by sequence number. */
import type { AgentEvent } from './agent-events'
import type { Flow, LostEvent, Timestamp } from './types'

/** One ring slot. */
export interface RingEntry {
  /** Position in the stream of everything ever written (0, 1, 2, ...). */
  seq: number
  time: Timestamp | undefined
  flow?: Flow
  lost?: LostEvent
  /** An agent event (in the observer's agent-event ring). */
  agentEvent?: AgentEvent
  /** Cached protobuf encoding of `flow` (filled by the first reader that needs it). */
  flowBytes?: Uint8Array
}

/** Default ring capacity: Hubble's default of 4095 flows. */
export const DEFAULT_RING_CAPACITY = 4095

/**
 * A fixed-capacity ring. Writers never wait: the oldest entry is overwritten. Readers keep a
 * sequence number; when `seq < oldest` they have missed `oldest - seq` entries.
 */
export class FlowRing {
  readonly capacity: number
  private readonly slots: (RingEntry | undefined)[]
  private next = 0
  private waiters: (() => void)[] = []

  /** @param capacity maximum number of entries kept (default 4095). */
  constructor(capacity = DEFAULT_RING_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
      throw new RangeError(`FlowRing: capacity must be an integer in 1..16777216, got ${capacity}`)
    }
    this.capacity = capacity
    this.slots = new Array(capacity)
  }

  /** Sequence number the next write gets (= number of entries ever written). */
  get head(): number {
    return this.next
  }

  /** Oldest sequence number still in the ring. */
  get oldest(): number {
    return Math.max(0, this.next - this.capacity)
  }

  /** Number of entries currently held. */
  get size(): number {
    return this.next - this.oldest
  }

  /** Append an entry, overwriting the oldest when full; wakes waiting readers. */
  push(entry: Omit<RingEntry, 'seq'>): RingEntry {
    const e = entry as RingEntry
    e.seq = this.next
    this.slots[this.next % this.capacity] = e
    this.next++
    if (this.waiters.length > 0) {
      const w = this.waiters
      this.waiters = []
      for (const fn of w) fn()
    }
    return e
  }

  /** The entry with this sequence number, or undefined if overwritten or not yet written. */
  at(seq: number): RingEntry | undefined {
    if (seq < this.oldest || seq >= this.next) return undefined
    return this.slots[seq % this.capacity]
  }

  /** Call `fn` once, at the next write. Returns a function that cancels the wait. */
  waitForWrite(fn: () => void): () => void {
    this.waiters.push(fn)
    return () => {
      const i = this.waiters.indexOf(fn)
      if (i >= 0) this.waiters.splice(i, 1)
    }
  }

  /** Entries from oldest to newest (a snapshot). */
  *entries(): IterableIterator<RingEntry> {
    for (let s = this.oldest; s < this.next; s++) {
      const e = this.slots[s % this.capacity]
      if (e) yield e
    }
  }
}
