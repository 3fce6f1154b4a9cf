import { type Prefix, parseIp } from '@membrane/types'
import type { Etcd3, IKeyValue, Watcher } from 'etcd3'
import { toPrefix } from '../_prefix'
import { IdentityError, IdentityErrorCode } from '../errors'
import type { IPCache, IPCacheEntry } from '../ipcache'
import {
  connect,
  type EtcdConnectionOptions,
  NodeLease,
  retryUntil,
  sleep,
  validateKeyPrefix,
  validateNodeName,
} from './client'

/** The default key prefix of shared ipcache entries. */
export const DEFAULT_IPCACHE_PREFIX = 'membrane/state/ip/v1'

/** Options of {@link EtcdIPCacheSync.create}. */
export interface EtcdIPCacheSyncOptions extends EtcdConnectionOptions {
  /** The local ipcache: remote entries land in it with source `kvstore`. */
  ipcache: IPCache
  /** This node's name (written into each entry it publishes). */
  node: string
  /** Key prefix. Default {@link DEFAULT_IPCACHE_PREFIX}. */
  prefix?: string
  /** Namespace segment under the prefix (Cilium uses the cluster name). Default `default`. */
  cluster?: string
  /**
   * This node's IP: written as the tunnel endpoint of every entry it publishes (other nodes
   * tunnel to it), while its local ipcache keeps its own entries without one. Default none.
   */
  tunnelEndpoint?: string
  /** Lease TTL of published entries: a dead node's entries vanish this long after it died. Default 15. */
  leaseTtlSeconds?: number
  /** How long a publish waits for etcd before failing retryably. Default 5000 ms. */
  timeoutMs?: number
  /** How long `create` waits for etcd. Default 15000 ms. */
  connectTimeoutMs?: number
  /** Background errors (malformed remote entries, lease loss). */
  onError?: (error: Error) => void
}

/**
 * The JSON value of a shared ipcache key `<prefix>/<cluster>/<cidr>`.
 */
export interface SharedIPCacheEntry {
  cidr: string
  identity: number
  encryptKey?: number
  tunnelEndpoint?: string
  node: string
}

/**
 * Shares ipcache entries between nodes through etcd. `upsert`/`delete` publish this node's
 * entries (leased, so they disappear when the node dies) and apply them to the local ipcache
 * with source `local`; every other node's entries are watched into the local ipcache with
 * source `kvstore`, where the datapath's subscription picks them up.
 *
 * @example
 * const ipcache = new IPCache()
 * const sync = await EtcdIPCacheSync.create({ endpoints, node: 'node-1', ipcache })
 * await sync.upsert('10.0.1.5', { identity: 256, tunnelEndpoint: '192.168.0.1' })
 */
export class EtcdIPCacheSync {
  readonly node: string
  readonly keyPrefix: string
  readonly #ipcache: IPCache
  readonly #client: Etcd3
  readonly #owns: boolean
  readonly #where: string
  readonly #ttl: number
  readonly #timeoutMs: number
  readonly #onError: (e: Error) => void
  readonly #tunnelEndpoint: string | undefined
  /** What this node publishes: cidr -> value. */
  readonly #published = new Map<string, string>()
  /** Remote entries currently applied: cidr. */
  readonly #remote = new Set<string>()
  readonly #lease: NodeLease
  #watcher: Watcher | undefined
  #closed = false

  private constructor(
    options: EtcdIPCacheSyncOptions,
    conn: { client: Etcd3; owned: boolean; where: string },
  ) {
    this.node = validateNodeName(options.node)
    const prefix = validateKeyPrefix(options.prefix ?? DEFAULT_IPCACHE_PREFIX, 'ipcache key prefix')
    const cluster = validateKeyPrefix(options.cluster ?? 'default', 'ipcache cluster')
    this.keyPrefix = `${prefix}/${cluster}/`
    this.#ipcache = options.ipcache
    this.#client = conn.client
    this.#owns = conn.owned
    this.#where = conn.where
    this.#ttl = options.leaseTtlSeconds ?? 15
    this.#timeoutMs = options.timeoutMs ?? 5000
    this.#onError = options.onError ?? (() => {})
    if (options.tunnelEndpoint !== undefined && parseIp(options.tunnelEndpoint) === undefined) {
      throw new IdentityError(
        IdentityErrorCode.INVALID_OPTION,
        `tunnelEndpoint ${JSON.stringify(options.tunnelEndpoint)}: expected an IP address`,
        { input: options.tunnelEndpoint },
      )
    }
    this.#tunnelEndpoint = options.tunnelEndpoint
    this.#lease = new NodeLease(
      this.#client,
      this.#ttl,
      this.#where,
      () => this.#closed,
      (error) => {
        this.#onError(new Error(`ipcache lease lost (${error.message}); publishing again`))
        for (const cidr of this.#published.keys()) {
          this.#republish(cidr).catch((e: Error) => this.#onError(e))
        }
      },
    )
  }

  /** Connect, load every shared entry into the ipcache and follow changes. */
  static async create(options: EtcdIPCacheSyncOptions): Promise<EtcdIPCacheSync> {
    const conn = connect(options)
    let sync: EtcdIPCacheSync
    try {
      sync = new EtcdIPCacheSync(options, conn)
    } catch (error) {
      if (conn.owned) conn.client.close()
      throw error
    }
    try {
      await sync.#start(Date.now() + (options.connectTimeoutMs ?? 15_000))
    } catch (error) {
      await sync.close()
      throw error
    }
    return sync
  }

  async #start(deadline: number): Promise<void> {
    const closed = () => this.#closed
    const res = await retryUntil('ipcache sync', this.#where, deadline, closed, () =>
      this.#client.getAll().prefix(this.keyPrefix).exec(),
    )
    for (const kv of res.kvs) this.#applyPut(kv)
    const rev = (BigInt(res.header.revision) + 1n).toString()
    const watcher = await retryUntil('ipcache watch', this.#where, deadline, closed, () =>
      this.#client.watch().prefix(this.keyPrefix).startRevision(rev).create(),
    )
    this.#watcher = watcher
    watcher.on('put', (kv) => this.#applyPut(kv))
    watcher.on('delete', (kv) => this.#applyDelete(kv))
    watcher.on('error', (e) => this.#onError(e))
    await this.#leaseIdWithin(deadline)
  }

  #cidrOf(key: string): string {
    return key.slice(this.keyPrefix.length)
  }

  #applyPut(kv: IKeyValue): void {
    const key = kv.key.toString()
    let value: SharedIPCacheEntry
    let prefix: Prefix
    try {
      value = JSON.parse(kv.value.toString()) as SharedIPCacheEntry
      prefix = toPrefix(this.#cidrOf(key))
      if (typeof value !== 'object' || value === null) throw new Error('not a JSON object')
      if (value.node === this.node) {
        // Our own entry (already applied as `local`); it replaced whatever another node had.
        if (this.#remote.delete(prefix.cidr)) this.#ipcache.delete(prefix, 'kvstore')
        return
      }
      this.#ipcache.upsert(prefix, {
        identity: value.identity,
        ...(value.encryptKey !== undefined ? { encryptKey: value.encryptKey } : {}),
        ...(value.tunnelEndpoint !== undefined ? { tunnelEndpoint: value.tunnelEndpoint } : {}),
        source: 'kvstore',
      })
      this.#remote.add(prefix.cidr)
    } catch (error) {
      this.#onError(
        new IdentityError(
          IdentityErrorCode.CORRUPT_STATE,
          `ipcache key ${key}: ${(error as Error).message}`,
          { cause: error },
        ),
      )
    }
  }

  #applyDelete(kv: IKeyValue): void {
    let cidr: string
    try {
      cidr = toPrefix(this.#cidrOf(kv.key.toString())).cidr
    } catch {
      return
    }
    if (this.#remote.delete(cidr)) this.#ipcache.delete(cidr, 'kvstore')
    // The key is gone (our lease lost, or another node that had overwritten it withdrew) while
    // this node still publishes the prefix: publish it again.
    if (this.#published.has(cidr) && !this.#closed) {
      this.#republish(cidr).catch((e: Error) => this.#onError(e))
    }
  }

  #leaseIdWithin(deadline: number): Promise<string> {
    return this.#lease.id(deadline)
  }

  async #republish(cidr: string): Promise<void> {
    for (;;) {
      if (this.#closed) return
      const value = this.#published.get(cidr)
      if (value === undefined) return
      try {
        const lease = await this.#leaseIdWithin(Date.now() + this.#timeoutMs)
        await this.#client.put(`${this.keyPrefix}${cidr}`).value(value).lease(lease).exec()
        return
      } catch {
        await sleep(500)
      }
    }
  }

  /**
   * Publish this node's entry for a prefix and apply it locally (source `local`).
   *
   * @throws IdentityError `INVALID_PREFIX`/`INVALID_IDENTITY` for bad input (nothing applied),
   *   `BACKEND_UNAVAILABLE` (retryable) when etcd does not answer; the local ipcache is then
   *   already updated and the entry is published once etcd is back.
   */
  async upsert(prefix: string | Prefix, entry: Omit<IPCacheEntry, 'source'>): Promise<void> {
    if (this.#closed) throw new IdentityError(IdentityErrorCode.CLOSED, 'ipcache sync is closed')
    const p = toPrefix(prefix)
    this.#ipcache.upsert(p, { ...entry, source: 'local' })
    const applied = this.#ipcache.sources(p).find((e) => e.source === 'local') as IPCacheEntry
    const shared: SharedIPCacheEntry = { cidr: p.cidr, identity: applied.identity, node: this.node }
    if (applied.encryptKey !== undefined) shared.encryptKey = applied.encryptKey
    const tunnel = applied.tunnelEndpoint ?? this.#tunnelEndpoint
    if (tunnel !== undefined) shared.tunnelEndpoint = tunnel
    const value = JSON.stringify(shared)
    this.#published.set(p.cidr, value)
    const deadline = Date.now() + this.#timeoutMs
    try {
      await retryUntil(
        `publish ${p.cidr}`,
        this.#where,
        deadline,
        () => this.#closed,
        async () => {
          const lease = await this.#leaseIdWithin(deadline)
          await this.#client.put(`${this.keyPrefix}${p.cidr}`).value(value).lease(lease).exec()
        },
      )
    } catch (error) {
      this.#republish(p.cidr).catch(() => {})
      throw error
    }
  }

  /**
   * Withdraw this node's entry for a prefix, locally and in etcd.
   *
   * @throws IdentityError `BACKEND_UNAVAILABLE` (retryable) when etcd does not answer; the local
   *   ipcache is then already updated and the key is withdrawn once etcd is back.
   */
  async delete(prefix: string | Prefix): Promise<void> {
    if (this.#closed) throw new IdentityError(IdentityErrorCode.CLOSED, 'ipcache sync is closed')
    const p = toPrefix(prefix)
    this.#published.delete(p.cidr)
    this.#ipcache.delete(p, 'local')
    try {
      await retryUntil(
        `withdraw ${p.cidr}`,
        this.#where,
        Date.now() + this.#timeoutMs,
        () => this.#closed,
        () => this.#withdraw(p.cidr),
      )
    } catch (error) {
      this.#withdrawLater(p.cidr).catch(() => {})
      throw error
    }
  }

  /** Delete the key of a prefix if it is still this node's (another node may own it since). */
  async #withdraw(cidr: string): Promise<void> {
    const key = `${this.keyPrefix}${cidr}`
    const c = this.#client
    const v = await c.get(key).string()
    if (v === null) return
    const owner = (JSON.parse(v) as SharedIPCacheEntry).node
    if (owner === this.node) await c.if(key, 'Value', '==', v).then(c.delete().key(key)).commit()
  }

  /** Keep trying to withdraw until etcd answers (the lease lives on, so would the key). */
  async #withdrawLater(cidr: string): Promise<void> {
    for (;;) {
      // Published again in the meantime: the publish path owns the key now.
      if (this.#closed || this.#published.has(cidr)) return
      try {
        await this.#withdraw(cidr)
        return
      } catch {
        await sleep(500)
      }
    }
  }

  /** Prefixes this node publishes. */
  published(): string[] {
    return [...this.#published.keys()]
  }

  /**
   * Stop syncing. By default the lease is revoked so other nodes drop this node's entries now.
   * Remote entries stay in the local ipcache.
   */
  async close(options: { revoke?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const watcher = this.#watcher
    this.#watcher = undefined
    await watcher?.cancel().catch(() => {})
    await this.#lease.close(options.revoke !== false)
    if (this.#owns) this.#client.close()
  }
}
