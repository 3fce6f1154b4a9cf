import type { Prefix } from '@membrane/types'
import {
  type AllocateResult,
  classifyLabels,
  closedError,
  type IdentityAllocator,
  IdentityEvents,
  type IdentityListener,
  IdentityPool,
  localIdentityPool,
  reservedSnapshot,
  type WatchOptions,
} from './allocator'
import { IdentityError, IdentityErrorCode } from './errors'
import {
  cidrLabels,
  clusterIdentityRange,
  type Identity,
  type IdentityRecord,
  makeIdentity,
  reservedIdentity,
  toIdentityRecord,
} from './identity'
import type { Labels, LabelsInput } from './labels'

/** Options of {@link MemoryAllocator}. */
export interface MemoryAllocatorOptions {
  /** Cluster id 0..255; cluster identities are `clusterId << 16 | 256..65535`. Default 0. */
  clusterId?: number
  /**
   * Narrow the cluster identity range (for tests of exhaustion). Default: the whole range of
   * the cluster id.
   */
  minId?: number
  maxId?: number
  /**
   * Identities from before a restart (e.g. a saved `list()`): the same labels get the same ids
   * back. They hold no reference until allocated; `pruneUnreferenced()` drops the rest.
   * Reserved records are ignored.
   */
  restore?: readonly IdentityRecord[]
}

/**
 * The embedded default allocator: every identity lives in this process. An identity disappears
 * (a `delete` event) when its last reference is released.
 *
 * @example
 * const ids = new MemoryAllocator()
 * const { id } = await ids.allocate(['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default'])
 * ids.list() // [{ id: 1, labels: ['reserved:host'] }, ..., { id: 256, labels: [...] }]
 */
export class MemoryAllocator implements IdentityAllocator {
  readonly backend = 'memory'
  readonly #cluster: IdentityPool
  readonly #local = localIdentityPool()
  readonly #events = new IdentityEvents()
  #closed = false

  constructor(options: MemoryAllocatorOptions = {}) {
    const range = clusterIdentityRange(options.clusterId ?? 0)
    const min = options.minId ?? range.min
    const max = options.maxId ?? range.max
    if (
      !Number.isInteger(min) ||
      !Number.isInteger(max) ||
      min < range.min ||
      max > range.max ||
      min > max
    ) {
      throw new IdentityError(
        IdentityErrorCode.INVALID_OPTION,
        `identity range ${min}..${max}: expected integers within ${range.min}..${range.max}`,
        { input: { minId: min, maxId: max } },
      )
    }
    this.#cluster = new IdentityPool(min, max)
    for (const record of options.restore ?? []) {
      if (reservedIdentity(record.id)) continue
      const c = classifyLabels(record.labels)
      const pool = c.kind === 'local' ? this.#local : this.#cluster
      if (c.kind === 'reserved' || !pool.inRange(record.id)) {
        throw new IdentityError(
          IdentityErrorCode.INVALID_IDENTITY,
          `cannot restore identity ${record.id} ${JSON.stringify(record.labels)}: the id is outside the ${c.kind === 'local' ? 'node-local' : 'cluster'} range`,
          { input: record },
        )
      }
      pool.restore(makeIdentity(record.id, c.labels))
    }
  }

  /**
   * Forget every identity nobody references (restored ones nobody allocated again); each gets a
   * `delete` event. Returns their ids.
   */
  pruneUnreferenced(): number[] {
    const removed = [...this.#cluster.pruneUnreferenced(), ...this.#local.pruneUnreferenced()]
    for (const identity of removed) this.#events.emit('delete', identity)
    return removed.map((i) => i.id)
  }

  async allocate(labels: LabelsInput): Promise<AllocateResult> {
    return this.allocateSync(labels)
  }

  /** {@link allocate} without the Promise (the memory backend never waits). */
  allocateSync(labels: LabelsInput): AllocateResult {
    if (this.#closed) throw closedError('allocate')
    const c = classifyLabels(labels)
    if (c.kind === 'reserved') return { id: c.identity.id, isNew: false, identity: c.identity }
    const pool = c.kind === 'local' ? this.#local : this.#cluster
    const { identity, isNew } = pool.allocate(c.labels)
    if (isNew) this.#events.emit('add', identity)
    return { id: identity.id, isNew, identity }
  }

  async allocateCIDR(prefix: string | Prefix): Promise<AllocateResult> {
    return this.allocateSync(cidrLabels(prefix))
  }

  async release(target: number | LabelsInput): Promise<boolean> {
    return this.releaseSync(target)
  }

  /** {@link release} without the Promise. */
  releaseSync(target: number | LabelsInput): boolean {
    if (this.#closed) throw closedError('release')
    let pool: IdentityPool
    let key: number | Labels
    if (typeof target === 'number') {
      if (reservedIdentity(target)) return false
      pool = target >= this.#localMin() ? this.#local : this.#cluster
      key = target
    } else {
      const c = classifyLabels(target)
      if (c.kind === 'reserved') return false
      pool = c.kind === 'local' ? this.#local : this.#cluster
      key = c.labels
    }
    const { removed } = pool.release(key)
    if (removed) {
      this.#events.emit('delete', removed)
      return true
    }
    return false
  }

  #localMin(): number {
    return 1 << 24
  }

  lookupById(id: number): Identity | undefined {
    return (
      reservedIdentity(id) ??
      (id >= this.#localMin() ? this.#local.byId(id) : this.#cluster.byId(id))
    )
  }

  lookupByLabels(labels: LabelsInput): Identity | undefined {
    const c = classifyLabels(labels)
    if (c.kind === 'reserved') return c.identity
    return (c.kind === 'local' ? this.#local : this.#cluster).byKey(c.labels.key())
  }

  /** How many references this allocator holds on `id` (0 when unknown; reserved ids: 0). */
  references(id: number): number {
    return id >= this.#localMin() ? this.#local.refs(id) : this.#cluster.refs(id)
  }

  list(): IdentityRecord[] {
    const all: Identity[] = [
      ...reservedSnapshot(),
      ...this.#cluster.values(),
      ...this.#local.values(),
    ]
    return all.sort((a, b) => a.id - b.id).map(toIdentityRecord)
  }

  watch(listener: IdentityListener, options: WatchOptions = {}): () => void {
    if (this.#closed) throw closedError('watch')
    return this.#events.watch(listener, options, () => this.list())
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#events.clear()
  }
}
