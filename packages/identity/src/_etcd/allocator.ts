import { LOCAL_IDENTITY_FLAG, type Prefix } from '@membrane/types'
import type { Etcd3, IKeyValue, Watcher } from 'etcd3'
import {
  type AllocateResult,
  classifyLabels,
  closedError,
  type IdentityAllocator,
  IdentityEvents,
  type IdentityListener,
  localIdentityPool,
  reservedSnapshot,
  type WatchOptions,
} from '../allocator'
import { IdentityError, IdentityErrorCode } from '../errors'
import {
  cidrLabels,
  clusterIdentityRange,
  type Identity,
  type IdentityRecord,
  makeIdentity,
  reservedIdentity,
  toIdentityRecord,
} from '../identity'
import { Labels, type LabelsInput } from '../labels'
import {
  connect,
  type EtcdConnectionOptions,
  NodeLease,
  retryUntil,
  sleep,
  TransientError,
  txnValue,
  validateKeyPrefix,
  validateNodeName,
} from './client'

/** The default key prefix of the identity allocator. */
export const DEFAULT_IDENTITY_PREFIX = 'membrane/state/identities/v1'

/** Options of {@link EtcdAllocator.create}. */
export interface EtcdAllocatorOptions extends EtcdConnectionOptions {
  /** This node's name: its reference keys are `value/<labels>/<node>`. [A-Za-z0-9._-]. */
  node: string
  /** Key prefix. Default {@link DEFAULT_IDENTITY_PREFIX}. */
  prefix?: string
  /** Cluster id 0..255 (identities `clusterId << 16 | 256..65535`). Default 0. */
  clusterId?: number
  /** Narrow the identity range (tests). Default: the cluster's whole range. */
  minId?: number
  maxId?: number
  /**
   * TTL of the node lease in seconds: a node that dies loses its references (and locks) this
   * long after its last keepalive. Default 15.
   */
  leaseTtlSeconds?: number
  /**
   * How long an allocation may wait for etcd (or for another node's lock) before it fails with
   * the retryable `BACKEND_UNAVAILABLE`. Default 5000 ms.
   */
  timeoutMs?: number
  /**
   * How long an allocation of labels the cache already knows (an identity some node created)
   * waits for etcd before it is answered from the cache; the reference key is then written in
   * the background once etcd is back. Default 1000 ms.
   */
  cachedFallbackMs?: number
  /** How long `create` waits for etcd. Default 15000 ms. */
  connectTimeoutMs?: number
  /** Run {@link EtcdAllocator.collectGarbage} this often (ms). Default 0: never by itself. */
  gcIntervalMs?: number
  /** Called with background errors (lease re-grant, reference resync, deferred deletes). */
  onError?: (error: Error) => void
}

/** The answer of {@link EtcdAllocator.collectGarbage}. */
export interface GarbageCollectionResult {
  /** Unreferenced identities seen for the first time (deleted next round if still unused). */
  marked: number
  /** Identities deleted this round. */
  deleted: number[]
}

interface LocalRef {
  count: number
  id: number | undefined
  ready: Promise<number>
  labels: Labels
}

/**
 * The etcd backend of {@link IdentityAllocator}: identities shared by every node using the same
 * etcd and prefix, laid out like Cilium's kvstore allocator:
 *
 * - `<prefix>/id/<id>` -> canonical labels key (no lease): the master key, created by
 *   compare-and-swap (create only if absent), so an id never names two label sets;
 * - `<prefix>/labels/<labels key>` -> id (no lease): the index that makes the same labels get
 *   the same id, created in the same transaction as the master key;
 * - `<prefix>/value/<labels key>/<node>` -> id, with the node's lease: the node's reference;
 * - `<prefix>/locks/<labels key>` -> `<node>@<lease>`, with the node's lease: serializes
 *   allocation and garbage collection of one label set between nodes.
 *
 * Every master key is watched into a local cache, so lookups never wait for etcd and keep
 * answering while etcd is down. An identity nobody references is deleted by the two-phase
 * {@link collectGarbage}.
 *
 * @example
 * const ids = await EtcdAllocator.create({ endpoints: 'http://127.0.0.1:2379', node: 'node-1' })
 * const { id } = await ids.allocate(['k8s:app=web'])
 * await ids.close()
 */
export class EtcdAllocator implements IdentityAllocator {
  readonly backend = 'etcd'
  readonly node: string
  readonly prefix: string
  readonly #client: Etcd3
  readonly #ownsClient: boolean
  readonly #where: string
  readonly #min: number
  readonly #max: number
  readonly #ttl: number
  readonly #timeoutMs: number
  readonly #fallbackMs: number
  readonly #onError: (error: Error) => void
  readonly #events = new IdentityEvents()
  readonly #local = localIdentityPool()
  /** Master keys seen in etcd: id -> identity, labels key -> id. */
  readonly #cache = new Map<number, Identity>()
  readonly #cacheByKey = new Map<string, number>()
  /** This node's references by labels key, and id -> labels key. */
  readonly #refs = new Map<string, LocalRef>()
  readonly #refById = new Map<number, string>()
  /** Remote operations of one labels key run one after the other. */
  readonly #chains = new Map<string, Promise<unknown>>()
  /** Reference keys to delete once etcd answers again. */
  readonly #orphans = new Set<string>()
  /** Unreferenced masters seen by the last GC round: id -> mod revision. */
  readonly #gcMarks = new Map<number, string>()
  readonly #lease: NodeLease
  #watcher: Watcher | undefined
  #timers: ReturnType<typeof setInterval>[] = []
  #closed = false

  private constructor(
    options: EtcdAllocatorOptions,
    conn: { client: Etcd3; owned: boolean; where: string },
  ) {
    this.node = validateNodeName(options.node)
    this.prefix = validateKeyPrefix(
      options.prefix ?? DEFAULT_IDENTITY_PREFIX,
      'identity key prefix',
    )
    const range = clusterIdentityRange(options.clusterId ?? 0)
    this.#min = options.minId ?? range.min
    this.#max = options.maxId ?? range.max
    if (
      !Number.isInteger(this.#min) ||
      !Number.isInteger(this.#max) ||
      this.#min < range.min ||
      this.#max > range.max ||
      this.#min > this.#max
    ) {
      throw new IdentityError(
        IdentityErrorCode.INVALID_OPTION,
        `identity range ${this.#min}..${this.#max}: expected integers within ${range.min}..${range.max}`,
        { input: { minId: this.#min, maxId: this.#max } },
      )
    }
    this.#ttl = options.leaseTtlSeconds ?? 15
    if (!Number.isInteger(this.#ttl) || this.#ttl < 1) {
      throw new IdentityError(
        IdentityErrorCode.INVALID_OPTION,
        `leaseTtlSeconds ${this.#ttl}: expected an integer >= 1`,
      )
    }
    this.#timeoutMs = options.timeoutMs ?? 5000
    this.#fallbackMs = Math.min(options.cachedFallbackMs ?? 1000, this.#timeoutMs)
    this.#onError = options.onError ?? (() => {})
    this.#client = conn.client
    this.#ownsClient = conn.owned
    this.#where = conn.where
    this.#lease = new NodeLease(
      this.#client,
      this.#ttl,
      this.#where,
      () => this.#closed,
      (error) => {
        this.#onError(new Error(`node lease lost (${error.message}); granting a new one`))
        this.#resyncReferences().catch((e: Error) => this.#onError(e))
      },
    )
  }

  /**
   * Connect, load every identity into the cache, start the watch and the node lease.
   *
   * @throws IdentityError `INVALID_OPTION`, `DEPENDENCY_MISSING` without the etcd3 package, or
   *   `BACKEND_UNAVAILABLE` when etcd does not answer
   *   within `connectTimeoutMs`.
   */
  static async create(options: EtcdAllocatorOptions): Promise<EtcdAllocator> {
    const conn = connect(options)
    let allocator: EtcdAllocator
    try {
      allocator = new EtcdAllocator(options, conn)
    } catch (error) {
      if (conn.owned) conn.client.close()
      throw error
    }
    try {
      await allocator.#start(Date.now() + (options.connectTimeoutMs ?? 15_000))
    } catch (error) {
      await allocator.close()
      throw error
    }
    if (options.gcIntervalMs) {
      const t = setInterval(() => {
        allocator.collectGarbage().catch((e: Error) => allocator.#onError(e))
      }, options.gcIntervalMs)
      t.unref()
      allocator.#timers.push(t)
    }
    return allocator
  }

  // --- keys -------------------------------------------------------------------------------

  #idKey(id: number): string {
    return `${this.prefix}/id/${id}`
  }
  #labelsKey(key: string): string {
    return `${this.prefix}/labels/${key}`
  }
  #valueKey(key: string, node = this.node): string {
    return `${this.prefix}/value/${key}/${node}`
  }
  #lockKey(key: string): string {
    return `${this.prefix}/locks/${key}`
  }

  // --- start, cache and watch -------------------------------------------------------------

  async #start(deadline: number): Promise<void> {
    const res = await retryUntil(
      'connect',
      this.#where,
      deadline,
      () => this.#closed,
      () => this.#client.getAll().prefix(`${this.prefix}/id/`).exec(),
    )
    for (const kv of res.kvs) this.#applyMaster(kv, false)
    const revision = BigInt(res.header.revision) + 1n
    const watcher = await retryUntil(
      'watch',
      this.#where,
      deadline,
      () => this.#closed,
      () =>
        this.#client
          .watch()
          .prefix(`${this.prefix}/id/`)
          .startRevision(revision.toString())
          .create(),
    )
    this.#watcher = watcher
    watcher.on('put', (kv) => this.#applyMaster(kv, true))
    watcher.on('delete', (kv) => this.#applyMasterDelete(kv.key.toString()))
    watcher.on('error', (e) => {
      // A watch that fails (e.g. its revision was compacted away) may have missed events.
      this.#onError(e)
      this.refresh().catch((err: Error) => this.#onError(err))
    })
    await this.#leaseIdWithin(deadline)
    const t = setInterval(() => this.#flushOrphans(), 1000)
    t.unref()
    this.#timers.push(t)
  }

  /**
   * Reload every master key and reconcile the cache with it (add/delete events for the
   * differences). Runs by itself when the watch reports an error.
   */
  async refresh(): Promise<void> {
    if (this.#closed) throw closedError('refresh')
    const res = await retryUntil(
      'refresh',
      this.#where,
      Date.now() + this.#timeoutMs,
      () => this.#closed,
      () => this.#client.getAll().prefix(`${this.prefix}/id/`).exec(),
    )
    const seen = new Set<number>()
    for (const kv of res.kvs) {
      const id = this.#parseId(kv.key.toString())
      if (id !== undefined) seen.add(id)
      this.#applyMaster(kv, true)
    }
    for (const id of [...this.#cache.keys()]) if (!seen.has(id)) this.#forget(id, true)
  }

  #parseId(key: string): number | undefined {
    const tail = key.slice(this.prefix.length + '/id/'.length)
    if (!/^[1-9][0-9]{0,9}$/.test(tail)) return undefined
    return Number(tail)
  }

  #applyMaster(kv: IKeyValue, emit: boolean): void {
    const key = kv.key.toString()
    const id = this.#parseId(key)
    let labels: Labels
    try {
      if (id === undefined) throw new Error('not an identity number')
      labels = Labels.fromKey(kv.value.toString())
    } catch (error) {
      this.#onError(
        new IdentityError(
          IdentityErrorCode.CORRUPT_STATE,
          `etcd key ${key}: ${(error as Error).message}`,
          { cause: error },
        ),
      )
      return
    }
    this.#remember(makeIdentity(id, labels), emit)
  }

  #remember(identity: Identity, emit = true): void {
    const old = this.#cache.get(identity.id)
    if (old?.labels.equals(identity.labels)) return
    if (old) this.#forget(identity.id, emit)
    this.#cache.set(identity.id, identity)
    this.#cacheByKey.set(identity.labels.key(), identity.id)
    if (emit) this.#events.emit('add', identity)
  }

  #applyMasterDelete(key: string): void {
    const id = this.#parseId(key)
    if (id !== undefined) this.#forget(id, true)
  }

  #forget(id: number, emit: boolean): void {
    const old = this.#cache.get(id)
    if (!old) return
    this.#cache.delete(id)
    if (this.#cacheByKey.get(old.labels.key()) === id) this.#cacheByKey.delete(old.labels.key())
    if (emit) this.#events.emit('delete', old)
  }

  // --- lease --------------------------------------------------------------------------------

  #leaseIdWithin(deadline: number): Promise<string> {
    return this.#lease.id(deadline)
  }

  /** After a lease loss: put every reference key again under a new lease. */
  async #resyncReferences(): Promise<void> {
    for (;;) {
      if (this.#closed) return
      try {
        await this.#leaseIdWithin(Date.now() + this.#timeoutMs)
        break
      } catch {
        await sleep(500)
      }
    }
    for (const [key, ref] of this.#refs) {
      if (ref.id !== undefined) this.#syncReference(key, ref)
    }
  }

  /** Write this node's reference key for `ref` again, retrying until etcd answers. */
  #syncReference(key: string, ref: LocalRef): void {
    this.#exclusive(key, async () => {
      for (;;) {
        if (this.#closed || this.#refs.get(key) !== ref) return
        try {
          const id = await this.#allocateRemote(ref.labels)
          if (ref.id !== undefined && id !== ref.id) {
            this.#onError(
              new IdentityError(
                IdentityErrorCode.CORRUPT_STATE,
                `identity of ${JSON.stringify(ref.labels.toStrings())} changed from ${ref.id} to ${id} while etcd or this node's lease was away`,
              ),
            )
            if (this.#refById.get(ref.id) === key) this.#refById.delete(ref.id)
            ref.id = id
            this.#refById.set(id, key)
          }
          return
        } catch (error) {
          if (error instanceof IdentityError && !error.retryable) throw error
          await sleep(500)
        }
      }
    }).catch((e: Error) => this.#onError(e))
  }

  // --- allocation ---------------------------------------------------------------------------

  #exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(key) ?? Promise.resolve()
    const next = prev.then(fn, fn)
    const tail = next.catch(() => {})
    this.#chains.set(key, tail)
    tail.then(() => {
      if (this.#chains.get(key) === tail) this.#chains.delete(key)
    })
    return next
  }

  async allocate(input: LabelsInput): Promise<AllocateResult> {
    if (this.#closed) throw closedError('allocate')
    const c = classifyLabels(input)
    if (c.kind === 'reserved') return { id: c.identity.id, isNew: false, identity: c.identity }
    if (c.kind === 'local') {
      const { identity, isNew } = this.#local.allocate(c.labels)
      if (isNew) this.#events.emit('add', identity)
      return { id: identity.id, isNew, identity }
    }
    const labels = c.labels
    const key = labels.key()
    const existing = this.#refs.get(key)
    if (existing) {
      existing.count++
      const id = existing.id ?? (await existing.ready)
      return { id, isNew: false, identity: this.#identityFor(id, labels) }
    }
    let isNew = false
    this.#orphans.delete(key)
    const ref: LocalRef = {
      count: 1,
      id: undefined,
      labels,
      ready: this.#exclusive(key, async () => {
        const onCreated = (created: boolean) => {
          isNew = created
        }
        if (!this.#cacheByKey.has(key)) return this.#allocateRemote(labels, onCreated)
        try {
          return await this.#allocateRemote(labels, onCreated, this.#fallbackMs, this.#timeoutMs)
        } catch (error) {
          const cached = this.#cacheByKey.get(key)
          if (
            !(error instanceof IdentityError) ||
            error.code !== 'BACKEND_UNAVAILABLE' ||
            // etcd answers but someone holds the labels' lock (e.g. GC): wait, do not guess.
            (typeof error.input === 'object' && error.input !== null && 'lock' in error.input) ||
            cached === undefined
          ) {
            throw error
          }
          // etcd is away but the labels are known: answer from the cache; the reference key
          // is written once etcd answers again.
          this.#onError(
            new Error(
              `${JSON.stringify(labels.toStrings())} answered from the cache (${cached}) while etcd is unavailable; the reference is written when it is back`,
            ),
          )
          setTimeout(() => this.#syncReference(key, ref), 0)
          return cached
        }
      }),
    }
    this.#refs.set(key, ref)
    try {
      const id = await ref.ready
      ref.id = id
      if (this.#refs.get(key) === ref) this.#refById.set(id, key)
      return { id, isNew, identity: this.#identityFor(id, labels) }
    } catch (error) {
      if (this.#refs.get(key) === ref) this.#refs.delete(key)
      // The reference key may have been written before the error: make sure it goes away.
      this.#orphans.add(key)
      throw error
    }
  }

  #identityFor(id: number, labels: Labels): Identity {
    const cached = this.#cache.get(id)
    if (cached?.labels.equals(labels)) return cached
    const identity = makeIdentity(id, labels)
    this.#remember(identity)
    return identity
  }

  /**
   * The common path, one transaction when nothing races: reference the known id, or claim a new
   * id together with the labels index, each on the condition that nobody holds the labels'
   * lock (so it serializes with lock holders, such as garbage collection, exactly as if it had
   * taken the lock). Resolves undefined when the lock is held, so the caller takes the locked
   * path.
   */
  async #allocateUnlocked(
    labels: Labels,
    lease: string,
    tried: Set<number>,
  ): Promise<{ id: number; isNew: boolean } | undefined> {
    const c = this.#client
    const key = labels.key()
    const lockKey = this.#lockKey(key)
    const labelsKey = this.#labelsKey(key)
    let known = this.#cacheByKey.get(key)
    for (let round = 0; round < 16; round++) {
      if (known !== undefined) {
        const id = known
        const r = await c
          .if(this.#idKey(id), 'Value', '==', key)
          .and(lockKey, 'Create', '==', 0)
          .then(c.put(this.#valueKey(key)).value(String(id)).lease(lease))
          .else(c.get(labelsKey), c.get(lockKey))
          .commit()
        if (r.succeeded) {
          this.#remember(makeIdentity(id, labels))
          return { id, isNew: false }
        }
        if (txnValue(r, 1) !== undefined) return undefined
        const index = txnValue(r, 0)
        if (index === undefined || index === String(id)) {
          // Collected meanwhile, or an index without its master: the locked path sorts it out.
          if (index === String(id)) return undefined
          known = undefined
          continue
        }
        known = this.#parseIndex(labelsKey, index)
        continue
      }
      const id = this.#pickCandidate(tried, labels)
      const r = await c
        .if(this.#idKey(id), 'Create', '==', 0)
        .and(labelsKey, 'Create', '==', 0)
        .and(lockKey, 'Create', '==', 0)
        .then(
          c.put(this.#idKey(id)).value(key),
          c.put(labelsKey).value(String(id)),
          c.put(this.#valueKey(key)).value(String(id)).lease(lease),
        )
        .else(c.get(this.#idKey(id)), c.get(labelsKey), c.get(lockKey))
        .commit()
      if (r.succeeded) {
        this.#remember(makeIdentity(id, labels))
        return { id, isNew: true }
      }
      if (txnValue(r, 2) !== undefined) return undefined
      const index = txnValue(r, 1)
      if (index !== undefined) {
        known = this.#parseIndex(labelsKey, index)
        continue
      }
      tried.add(id)
      const holder = txnValue(r, 0)
      if (holder !== undefined) {
        try {
          this.#remember(makeIdentity(id, Labels.fromKey(holder)))
        } catch {
          // a corrupt master key: just never pick this id
        }
      }
    }
    return undefined
  }

  /**
   * Under the per-labels lock: reuse the id of the labels index, or claim a new one by
   * compare-and-swap; write this node's reference key; release the lock. Retried (with the
   * lock re-entrant for this node's lease) until the deadline.
   */
  async #allocateRemote(
    labels: Labels,
    created?: (isNew: boolean) => void,
    timeoutMs = this.#timeoutMs,
    lockTimeoutMs = timeoutMs,
  ): Promise<number> {
    const key = labels.key()
    const deadline = Date.now() + timeoutMs
    const lockDeadline = Date.now() + lockTimeoutMs
    const what = `allocate ${JSON.stringify(labels.toStrings())}`
    const tried = new Set<number>()
    return retryUntil(
      what,
      this.#where,
      deadline,
      () => this.#closed,
      async () => {
        const lease = await this.#leaseIdWithin(deadline)
        const c = this.#client
        const lockKey = this.#lockKey(key)
        const labelsKey = this.#labelsKey(key)
        const token = `${this.node}@${lease}`
        const fast = await this.#allocateUnlocked(labels, lease, tried)
        if (fast !== undefined) {
          created?.(fast.isNew)
          return fast.id
        }
        const index = await this.#lock(key, token, lease, lockDeadline)
        try {
          if (index !== undefined) {
            const id = this.#parseIndex(labelsKey, index)
            const r = await c
              .if(this.#idKey(id), 'Value', '==', key)
              .and(lockKey, 'Value', '==', token)
              .then(
                c.put(this.#valueKey(key)).value(String(id)).lease(lease),
                c.delete().key(lockKey),
              )
              .else(c.get(this.#idKey(id)), c.get(lockKey))
              .commit()
            if (r.succeeded) {
              created?.(false)
              this.#remember(makeIdentity(id, labels))
              return id
            }
            if (txnValue(r, 1) !== token) throw new TransientError('lost the allocation lock')
            const master = txnValue(r, 0)
            if (master !== undefined) {
              throw new IdentityError(
                IdentityErrorCode.CORRUPT_STATE,
                `${labelsKey} says ${id} but ${this.#idKey(id)} holds ${JSON.stringify(master)}`,
              )
            }
            // The index outlived its master key (interrupted GC): put the master back.
            await c
              .if(this.#idKey(id), 'Create', '==', 0)
              .and(lockKey, 'Value', '==', token)
              .then(c.put(this.#idKey(id)).value(key))
              .commit()
            throw new TransientError('repaired a missing master key')
          }
          for (;;) {
            const id = this.#pickCandidate(tried, labels)
            const r = await c
              .if(this.#idKey(id), 'Create', '==', 0)
              .and(labelsKey, 'Create', '==', 0)
              .and(lockKey, 'Value', '==', token)
              .then(
                c.put(this.#idKey(id)).value(key),
                c.put(labelsKey).value(String(id)),
                c.put(this.#valueKey(key)).value(String(id)).lease(lease),
                c.delete().key(lockKey),
              )
              .else(c.get(this.#idKey(id)), c.get(labelsKey), c.get(lockKey))
              .commit()
            if (r.succeeded) {
              created?.(true)
              this.#remember(makeIdentity(id, labels))
              return id
            }
            if (txnValue(r, 2) !== token) throw new TransientError('lost the allocation lock')
            if (txnValue(r, 1) !== undefined)
              throw new TransientError('the labels got an id meanwhile')
            tried.add(id)
            const holder = txnValue(r, 0)
            if (holder !== undefined) {
              try {
                this.#remember(makeIdentity(id, Labels.fromKey(holder)))
              } catch {
                // a corrupt master key: just never pick this id
              }
            }
          }
        } catch (error) {
          // Best effort: free the lock now rather than after the lease TTL.
          c.if(lockKey, 'Value', '==', token)
            .then(c.delete().key(lockKey))
            .commit()
            .catch(() => {})
          throw error
        }
      },
    )
  }

  #parseIndex(labelsKey: string, value: string): number {
    if (!/^[1-9][0-9]{0,9}$/.test(value)) {
      throw new IdentityError(
        IdentityErrorCode.CORRUPT_STATE,
        `${labelsKey} holds ${JSON.stringify(value)}, not an id`,
      )
    }
    return Number(value)
  }

  /** Take the per-labels lock; resolves with the labels index value (the id), if any. */
  async #lock(
    key: string,
    token: string,
    lease: string,
    deadline: number,
  ): Promise<string | undefined> {
    const c = this.#client
    const lockKey = this.#lockKey(key)
    const labelsKey = this.#labelsKey(key)
    let delay = 2
    for (;;) {
      const r = await c
        .if(lockKey, 'Create', '==', 0)
        .then(c.put(lockKey).value(token).lease(lease), c.get(labelsKey))
        .else(c.get(lockKey), c.get(labelsKey))
        .commit()
      if (r.succeeded) return txnValue(r, 1)
      const holder = txnValue(r, 0)
      if (holder === token) return txnValue(r, 1)
      if (Date.now() + delay > deadline) {
        throw new IdentityError(
          IdentityErrorCode.BACKEND_UNAVAILABLE,
          `lock ${lockKey} is held by ${holder ?? 'someone'} for longer than ${this.#timeoutMs} ms; retry later`,
          { retryable: true, input: { lock: lockKey, holder } },
        )
      }
      await sleep(delay)
      delay = Math.min(delay * 2, 50)
    }
  }

  /** A free-looking id: random start, then the next one not known to be taken. */
  #pickCandidate(tried: Set<number>, labels: Labels): number {
    const size = this.#max - this.#min + 1
    const start = Math.floor(Math.random() * size)
    for (let k = 0; k < size; k++) {
      const id = this.#min + ((start + k) % size)
      if (!this.#cache.has(id) && !tried.has(id)) return id
    }
    throw new IdentityError(
      IdentityErrorCode.EXHAUSTED,
      `no free identity in ${this.#min}..${this.#max} for ${JSON.stringify(labels.toStrings())}`,
      { input: labels.toStrings() },
    )
  }

  async allocateCIDR(prefix: string | Prefix): Promise<AllocateResult> {
    return this.allocate(cidrLabels(prefix))
  }

  // --- release and garbage collection ---------------------------------------------------------

  async release(target: number | LabelsInput): Promise<boolean> {
    if (this.#closed) throw closedError('release')
    let key: string | undefined
    if (typeof target === 'number') {
      if (reservedIdentity(target)) return false
      if (target >= LOCAL_IDENTITY_FLAG) return this.#releaseLocal(target)
      key = this.#refById.get(target)
      if (key === undefined) return false
    } else {
      const c = classifyLabels(target)
      if (c.kind === 'reserved') return false
      if (c.kind === 'local') return this.#releaseLocal(c.labels)
      key = c.labels.key()
    }
    const ref = this.#refs.get(key)
    if (!ref) return false
    if (ref.id === undefined) {
      try {
        await ref.ready
      } catch {
        return false
      }
    }
    if (this.#refs.get(key) !== ref || ref.count === 0) return false
    ref.count--
    if (ref.count > 0) return false
    this.#refs.delete(key)
    if (ref.id !== undefined && this.#refById.get(ref.id) === key) this.#refById.delete(ref.id)
    const k = key
    await this.#exclusive(k, () => this.#deleteReference(k)).catch(() => {
      this.#orphans.add(k)
    })
    return true
  }

  #releaseLocal(target: number | Labels): boolean {
    const { removed } = this.#local.release(target)
    if (removed) this.#events.emit('delete', removed)
    return removed !== undefined
  }

  async #deleteReference(key: string): Promise<void> {
    if (this.#refs.has(key)) return // referenced again meanwhile
    await retryUntil(
      'release',
      this.#where,
      Date.now() + Math.min(this.#timeoutMs, 1000),
      () => this.#closed,
      () => this.#client.delete().key(this.#valueKey(key)).exec(),
    )
    this.#orphans.delete(key)
  }

  #flushOrphans(): void {
    for (const key of [...this.#orphans]) {
      if (this.#refs.has(key)) {
        this.#orphans.delete(key)
        continue
      }
      this.#exclusive(key, () => this.#deleteReference(key)).catch(() => {})
    }
  }

  /**
   * Two-phase garbage collection of identities no node references: a round marks unreferenced
   * master keys; the next round deletes those still unreferenced and unchanged, each under the
   * labels' lock (so it cannot race an allocation of the same labels). Safe to run on several
   * nodes at once.
   */
  async collectGarbage(): Promise<GarbageCollectionResult> {
    if (this.#closed) throw closedError('collectGarbage')
    const deadline = Date.now() + this.#timeoutMs
    const c = this.#client
    const [masters, values] = await retryUntil(
      'collect garbage',
      this.#where,
      deadline,
      () => this.#closed,
      () =>
        Promise.all([
          c.getAll().prefix(`${this.prefix}/id/`).exec(),
          c.getAll().prefix(`${this.prefix}/value/`).keys(),
        ]),
    )
    const referenced = new Set<string>()
    const valuePrefix = `${this.prefix}/value/`.length
    for (const k of values) {
      const rest = k.slice(valuePrefix)
      referenced.add(rest.slice(0, rest.lastIndexOf('/')))
    }
    const marks = new Map<number, string>()
    const deleted: number[] = []
    let marked = 0
    for (const kv of masters.kvs) {
      const id = this.#parseId(kv.key.toString())
      const key = kv.value.toString()
      if (id === undefined || referenced.has(key)) continue
      const rev = String(kv.mod_revision)
      if (this.#gcMarks.get(id) !== rev) {
        marks.set(id, rev)
        marked++
        continue
      }
      const done = await this.#sweep(id, key, rev, deadline).catch((e: Error) => {
        this.#onError(e)
        return false
      })
      if (done) deleted.push(id)
      else marks.set(id, rev)
    }
    this.#gcMarks.clear()
    for (const [id, rev] of marks) this.#gcMarks.set(id, rev)
    return { marked, deleted }
  }

  async #sweep(id: number, key: string, rev: string, deadline: number): Promise<boolean> {
    const c = this.#client
    const lease = await this.#leaseIdWithin(deadline)
    const token = `${this.node}@${lease}`
    const lockKey = this.#lockKey(key)
    const labelsKey = this.#labelsKey(key)
    const unlock = () =>
      c
        .if(lockKey, 'Value', '==', token)
        .then(c.delete().key(lockKey))
        .commit()
        .catch(() => {})
    const index = await this.#lock(key, token, lease, deadline)
    try {
      const refs = await c.getAll().prefix(`${this.prefix}/value/${key}/`).limit(1).keys()
      if (refs.length > 0) {
        await unlock()
        return false
      }
      // Master, index and lock go in one transaction: an index left behind for a moment would
      // let an allocation resurrect the master just before the index is deleted, and the next
      // node would then give the labels a second id.
      let txn = c.if(this.#idKey(id), 'Mod', '==', rev).and(lockKey, 'Value', '==', token)
      const ops = [c.delete().key(this.#idKey(id)), c.delete().key(lockKey)]
      if (index === String(id)) {
        txn = txn.and(labelsKey, 'Value', '==', index)
        ops.push(c.delete().key(labelsKey))
      } else if (index === undefined) {
        txn = txn.and(labelsKey, 'Create', '==', 0)
      } else {
        // A stray master: the labels' index names another id; keep the index.
        txn = txn.and(labelsKey, 'Value', '==', index)
      }
      const r = await txn.then(...ops).commit()
      if (!r.succeeded) {
        await unlock()
        return false
      }
      this.#forget(id, true)
      return true
    } catch (error) {
      await unlock()
      throw error
    }
  }

  // --- lookups ------------------------------------------------------------------------------

  lookupById(id: number): Identity | undefined {
    return (
      reservedIdentity(id) ??
      (id >= LOCAL_IDENTITY_FLAG ? this.#local.byId(id) : this.#cache.get(id))
    )
  }

  lookupByLabels(input: LabelsInput): Identity | undefined {
    const c = classifyLabels(input)
    if (c.kind === 'reserved') return c.identity
    if (c.kind === 'local') return this.#local.byKey(c.labels.key())
    const id = this.#cacheByKey.get(c.labels.key())
    return id === undefined ? undefined : this.#cache.get(id)
  }

  /**
   * Like {@link lookupById}, but asks etcd when the cache does not know the id (an identity
   * another node created a moment ago).
   */
  async resolve(id: number): Promise<Identity | undefined> {
    const known = this.lookupById(id)
    if (known || id >= LOCAL_IDENTITY_FLAG || id < 256) return known
    const value = await retryUntil(
      `resolve ${id}`,
      this.#where,
      Date.now() + this.#timeoutMs,
      () => this.#closed,
      () => this.#client.get(this.#idKey(id)).string(),
    )
    if (value === null) return undefined
    const identity = makeIdentity(id, Labels.fromKey(value))
    this.#remember(identity)
    return identity
  }

  /** How many references this node holds on `id`. */
  references(id: number): number {
    if (id >= LOCAL_IDENTITY_FLAG) return this.#local.refs(id)
    const key = this.#refById.get(id)
    return key === undefined ? 0 : (this.#refs.get(key)?.count ?? 0)
  }

  list(): IdentityRecord[] {
    const all = [...reservedSnapshot(), ...this.#cache.values(), ...this.#local.values()]
    return all.sort((a, b) => a.id - b.id).map(toIdentityRecord)
  }

  watch(listener: IdentityListener, options: WatchOptions = {}): () => void {
    if (this.#closed) throw closedError('watch')
    return this.#events.watch(listener, options, () => this.list())
  }

  /**
   * Stop everything. By default the node lease is revoked, so this node's references and locks
   * disappear at once (identities stay until garbage collection). With `{ revoke: false }` the
   * references stay until the lease expires (as after a crash).
   */
  async close(options: { revoke?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const t of this.#timers) clearInterval(t)
    this.#events.clear()
    const watcher = this.#watcher
    this.#watcher = undefined
    await watcher?.cancel().catch(() => {})
    await this.#lease.close(options.revoke !== false)
    if (this.#ownsClient) this.#client.close()
  }
}
