import { LOCAL_IDENTITY_FLAG, MAX_LOCAL_IDENTITY_INDEX, type Prefix } from '@membrane/types'
import { toPrefix } from './_prefix'
import { IdentityError, IdentityErrorCode } from './errors'
import {
  cidrLabels,
  type Identity,
  type IdentityRecord,
  isCIDRLabelSet,
  makeIdentity,
  reservedIdentityList,
  reservedIdentityOf,
  toIdentityRecord,
} from './identity'
import { cidrFromLabelKey, Labels, type LabelsInput } from './labels'

/** The answer of {@link IdentityAllocator.allocate}. */
export interface AllocateResult {
  /** The numeric identity. */
  id: number
  /** True when this call created the identity (nobody held it before, anywhere). */
  isNew: boolean
  identity: Identity
}

/** An identity appeared (`add`) or was garbage collected / released by everyone (`delete`). */
export interface IdentityEvent {
  type: 'add' | 'delete'
  identity: IdentityRecord
}

/** Receives {@link IdentityEvent}s. Called synchronously; must not throw. */
export type IdentityListener = (event: IdentityEvent) => void

/** Options of {@link IdentityAllocator.watch}. */
export interface WatchOptions {
  /** First deliver an `add` for every identity known now (reserved ones included). Default true. */
  replay?: boolean
}

/**
 * The identity allocator contract. Both backends (memory: {@link MemoryAllocator}; etcd:
 * `EtcdAllocator` from `@membrane/identity/etcd`) implement it and pass one conformance suite.
 *
 * - Reserved label sets (`reserved:host`, ...) map to the reserved numbers and are not counted.
 * - CIDR label sets (see `cidrLabels`) get node-local identities `1 << 24 | n`.
 * - Anything else gets a cluster identity `clusterId << 16 | 256..65535`, the same one for the
 *   same labels on every node sharing the backend.
 *
 * Allocations are reference counted per allocator: each `allocate` needs one `release`.
 */
export interface IdentityAllocator {
  /** `memory` or `etcd`. */
  readonly backend: string
  /**
   * Allocate (or reference) the identity of `labels`.
   *
   * @throws IdentityError `INVALID_LABEL`, `INVALID_IDENTITY`, `EXHAUSTED`, `CLOSED`,
   *   `BACKEND_UNAVAILABLE` (retryable).
   */
  allocate(labels: LabelsInput): Promise<AllocateResult>
  /** Allocate the node-local identity of a CIDR prefix (labels: every containing prefix). */
  allocateCIDR(prefix: string | Prefix): Promise<AllocateResult>
  /**
   * Drop one reference taken by `allocate`. Resolves true when it was this allocator's last
   * reference (the identity may then disappear once no node references it).
   */
  release(target: number | LabelsInput): Promise<boolean>
  /** The identity of `id`, from the allocator's view (memory, or the etcd watch cache). */
  lookupById(id: number): Identity | undefined
  /** The identity of a label set, from the allocator's view. */
  lookupByLabels(labels: LabelsInput): Identity | undefined
  /** Every known identity (reserved, cluster and local) as `{ id, labels: string[] }`, by id. */
  list(): IdentityRecord[]
  /** Follow add/delete events; returns the function that stops the watch. */
  watch(listener: IdentityListener, options?: WatchOptions): () => void
  /** Release every resource. Pending and later calls fail with `CLOSED`. */
  close(): Promise<void>
}

/** How a label set is numbered. @internal */
export type Classified =
  | { kind: 'reserved'; identity: Identity }
  | { kind: 'local'; labels: Labels }
  | { kind: 'cluster'; labels: Labels }

/**
 * Sort a label set into reserved / CIDR (node-local) / cluster. A CIDR set is canonicalized to
 * the full {@link cidrLabels} of its longest prefix; it must not hold unrelated prefixes.
 * @internal
 */
export function classifyLabels(input: LabelsInput): Classified {
  const labels = Labels.from(input)
  if (labels.size === 0) {
    throw new IdentityError(
      IdentityErrorCode.INVALID_IDENTITY,
      'cannot allocate an identity for an empty label set',
      {
        input: [],
      },
    )
  }
  // The common case first: no reserved or cidr label at all.
  let special = false
  for (const l of labels) {
    if (l.source === 'reserved' || l.source === 'cidr') {
      special = true
      break
    }
  }
  if (!special) return { kind: 'cluster', labels }
  if (isCIDRLabelSet(labels)) {
    let longest: Prefix | undefined
    for (const l of labels) {
      if (l.source !== 'cidr') continue
      const p = toPrefix(cidrFromLabelKey(l.key))
      if (
        !longest ||
        p.length > longest.length ||
        (p.length === longest.length && p.family !== longest.family)
      ) {
        longest = p
      }
    }
    const full = cidrLabels(longest as Prefix)
    if (!full.includes(labels)) {
      throw new IdentityError(
        IdentityErrorCode.INVALID_IDENTITY,
        `labels ${JSON.stringify(labels.toStrings())} hold CIDR prefixes that do not contain one another`,
        { input: labels.toStrings() },
      )
    }
    return { kind: 'local', labels: full }
  }
  const reserved = reservedIdentityOf(labels)
  if (reserved) return { kind: 'reserved', identity: reserved }
  return { kind: 'cluster', labels }
}

/** Listeners with replay; a throwing listener does not stop the others. @internal */
export class IdentityEvents {
  readonly #listeners = new Set<IdentityListener>()

  get size(): number {
    return this.#listeners.size
  }

  watch(
    listener: IdentityListener,
    options: WatchOptions,
    snapshot: () => IdentityRecord[],
  ): () => void {
    if (options.replay !== false) {
      for (const identity of snapshot()) safeCall(listener, { type: 'add', identity })
    }
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  emit(type: IdentityEvent['type'], identity: Identity): void {
    if (this.#listeners.size === 0) return
    const record = toIdentityRecord(identity)
    for (const l of [...this.#listeners])
      safeCall(l, { type, identity: { id: record.id, labels: [...record.labels] } })
  }

  clear(): void {
    this.#listeners.clear()
  }
}

function safeCall(listener: IdentityListener, event: IdentityEvent): void {
  try {
    listener(event)
  } catch (error) {
    // A listener bug must not corrupt the allocator; surface it without unwinding our state.
    queueMicrotask(() => {
      throw error
    })
  }
}

interface PoolEntry {
  identity: Identity
  refs: number
}

/**
 * A reference-counted id pool over `[min, max]` (ids handed out round-robin, so a released id
 * is not reused at once). Used for memory cluster identities and node-local CIDR identities.
 * @internal
 */
export class IdentityPool {
  readonly #byKey = new Map<string, PoolEntry>()
  readonly #byId = new Map<number, PoolEntry>()
  readonly #min: number
  readonly #max: number
  #next: number

  constructor(min: number, max: number) {
    this.#min = min
    this.#max = max
    this.#next = min
  }

  get size(): number {
    return this.#byId.size
  }

  allocate(labels: Labels): { identity: Identity; isNew: boolean } {
    const key = labels.key()
    const found = this.#byKey.get(key)
    if (found) {
      found.refs++
      return { identity: found.identity, isNew: false }
    }
    const capacity = this.#max - this.#min + 1
    if (this.#byId.size >= capacity) {
      throw new IdentityError(
        IdentityErrorCode.EXHAUSTED,
        `no free identity in ${this.#min}..${this.#max} for ${JSON.stringify(labels.toStrings())}`,
        { input: labels.toStrings() },
      )
    }
    let id = this.#next
    while (this.#byId.has(id)) id = id === this.#max ? this.#min : id + 1
    this.#next = id === this.#max ? this.#min : id + 1
    const entry: PoolEntry = { identity: makeIdentity(id, labels), refs: 1 }
    this.#byKey.set(key, entry)
    this.#byId.set(id, entry)
    return { identity: entry.identity, isNew: true }
  }

  /** True when `id` is within this pool's range. */
  inRange(id: number): boolean {
    return Number.isInteger(id) && id >= this.#min && id <= this.#max
  }

  /**
   * Put back an identity known from before a restart, with no reference: the next `allocate`
   * of its labels gets it; `pruneUnreferenced` drops it if nobody does.
   */
  restore(identity: Identity): void {
    const key = identity.labels.key()
    const other = this.#byId.get(identity.id) ?? this.#byKey.get(key)
    if (other) {
      if (other.identity.id === identity.id && other.identity.labels.key() === key) return
      throw new IdentityError(
        IdentityErrorCode.INVALID_IDENTITY,
        `cannot restore ${identity.id} ${JSON.stringify(identity.labels.toStrings())}: conflicts with ${other.identity.id} ${JSON.stringify(other.identity.labels.toStrings())}`,
        { input: { id: identity.id, labels: identity.labels.toStrings() } },
      )
    }
    const entry: PoolEntry = { identity, refs: 0 }
    this.#byId.set(identity.id, entry)
    this.#byKey.set(key, entry)
  }

  /** Remove every identity nobody references (restored ones never taken). */
  pruneUnreferenced(): Identity[] {
    const out: Identity[] = []
    for (const entry of [...this.#byId.values()]) {
      if (entry.refs > 0) continue
      this.#byId.delete(entry.identity.id)
      this.#byKey.delete(entry.identity.labels.key())
      out.push(entry.identity)
    }
    return out
  }

  /** Drop one reference; returns the identity when that was the last one (it is then gone). */
  release(target: number | Labels): { found: boolean; removed?: Identity } {
    const entry =
      typeof target === 'number' ? this.#byId.get(target) : this.#byKey.get(target.key())
    if (!entry || entry.refs === 0) return { found: false }
    entry.refs--
    if (entry.refs > 0) return { found: true }
    this.#byId.delete(entry.identity.id)
    this.#byKey.delete(entry.identity.labels.key())
    return { found: true, removed: entry.identity }
  }

  byId(id: number): Identity | undefined {
    return this.#byId.get(id)?.identity
  }

  byKey(key: string): Identity | undefined {
    return this.#byKey.get(key)?.identity
  }

  refs(id: number): number {
    return this.#byId.get(id)?.refs ?? 0
  }

  values(): IterableIterator<Identity> {
    const it = this.#byId.values()
    return (function* () {
      for (const e of it) yield e.identity
    })()
  }
}

/** A pool for node-local CIDR identities (`1 << 24 | 1..2^24-1`). @internal */
export function localIdentityPool(): IdentityPool {
  return new IdentityPool(LOCAL_IDENTITY_FLAG | 1, LOCAL_IDENTITY_FLAG | MAX_LOCAL_IDENTITY_INDEX)
}

/** The reserved identity list, for snapshots. @internal */
export function reservedSnapshot(): Identity[] {
  return [...reservedIdentityList()]
}

/** The error every call on a closed allocator gets. @internal */
export function closedError(what: string): IdentityError {
  return new IdentityError(IdentityErrorCode.CLOSED, `${what}: the allocator is closed`)
}
