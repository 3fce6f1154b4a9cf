import { isIpv4 } from '@membrane/types'
import type { Etcd3, IKeyValue, Lease, Watcher } from 'etcd3'
import { retryUntil, sleep, validateKeyPrefix, validateNodeName } from './_etcd'
import { ClusterError, ClusterErrorCode } from './errors'
import { type ClusterPool, checkPodCidr, firstFreePodCidr, parseClusterPool } from './pod-cidr'

/** The default key prefix of the cluster state. */
export const DEFAULT_CLUSTER_PREFIX = 'membrane/cluster/v1'

/** How the datapath reaches other nodes' pods. */
export type RoutingMode = 'tunnel' | 'native'

/** A node as the registry holds it (the JSON value of `<prefix>/nodes/<name>`, leased). */
export interface NodeRecord {
  /** Node name, unique among live nodes. */
  name: string
  /** The node's underlay IPv4 address: the tunnel endpoint of its pods. */
  nodeIP: string
  /** The node's pod CIDR, claimed from the cluster pool. */
  podCidr: string
  /** Identifies one life of the node: a record with another boot id is another node. */
  bootId: string
  /** How this node routes to other nodes' pods. */
  routingMode: RoutingMode
  /** `ready`, or what is degraded (set with {@link NodeRegistry.setHealth}). */
  health: string
  /** When this life of the node registered (ISO time). */
  registeredAt: string
}

/** A change of the node set. */
export type NodeEvent =
  | { type: 'join'; node: NodeRecord }
  | { type: 'update'; node: NodeRecord; previous: NodeRecord }
  | { type: 'leave'; node: NodeRecord }

/** Options of {@link NodeRegistry.join}. */
export interface NodeRegistryOptions {
  /** An etcd3 client (`createEtcdClient` of `@membrane/identity/etcd`); not closed by `close()`. */
  client: Etcd3
  /** This node's name: [A-Za-z0-9._-], 1..253 characters. */
  name: string
  /** This node's underlay IPv4 address. */
  nodeIP: string
  /** Identifies this life of the node (a restart with the same state keeps it). */
  bootId: string
  /** The cluster pool pod CIDRs are cut from, e.g. `10.0.0.0/16`. */
  clusterPoolCidr: string
  /** Length of each node's pod CIDR. Default 24. */
  clusterPoolMaskSize?: number
  /** Ask for this pod CIDR (refused when another node holds it). Default: the node's previous one, else the lowest free. */
  podCidr?: string
  /** Default `tunnel`. */
  routingMode?: RoutingMode
  /** Key prefix. Default {@link DEFAULT_CLUSTER_PREFIX}. */
  prefix?: string
  /** Lease TTL in seconds: a dead node disappears from every other node this long after it died. Default 15. */
  leaseTtlSeconds?: number
  /** How long `join` waits for etcd. Default 15000 ms. */
  timeoutMs?: number
  /** Background errors (lease loss, re-registration, malformed records). */
  onError?: (error: Error) => void
}

/**
 * The cluster's node registry in etcd, one per agent:
 *
 * - `<prefix>/nodes/<name>` -> {@link NodeRecord}, written with the node's lease: it exists
 *   exactly while the node is alive, so a node that dies disappears from every other node within
 *   the lease TTL;
 * - `<prefix>/podcidrs/<network>_<length>` -> node name, no lease: the pod CIDR claims, created
 *   in the same transaction as the record (create only if absent), so no two nodes ever hold
 *   the same pod CIDR and a returning node gets its own back.
 *
 * Every record is watched into {@link nodes}; {@link subscribe} follows joins and leaves. When
 * the lease is lost (etcd was away longer than the TTL), the node registers again by itself.
 *
 * @example
 * const reg = await NodeRegistry.join({ client, name: 'node-1', nodeIP: '192.168.0.1',
 *   bootId: randomUUID(), clusterPoolCidr: '10.0.0.0/16' })
 * reg.self.podCidr // '10.0.0.0/24'
 */
export class NodeRegistry {
  readonly name: string
  readonly keyPrefix: string
  readonly pool: ClusterPool
  readonly #client: Etcd3
  readonly #ttl: number
  readonly #timeoutMs: number
  readonly #onError: (e: Error) => void
  readonly #wanted: Omit<NodeRecord, 'podCidr' | 'registeredAt'> & { podCidr?: string }
  readonly #nodes = new Map<string, NodeRecord>()
  readonly #listeners = new Set<(e: NodeEvent) => void>()
  #self: NodeRecord | undefined
  #lease: Lease | undefined
  #watcher: Watcher | undefined
  #closed = false
  #rejoining = false

  private constructor(options: NodeRegistryOptions) {
    this.name = validateNodeName(options.name)
    if (!isIpv4(options.nodeIP)) {
      throw new ClusterError(
        ClusterErrorCode.INVALID_OPTION,
        `nodeIP ${JSON.stringify(options.nodeIP)}: expected an IPv4 address`,
        { input: options.nodeIP },
      )
    }
    if (typeof options.bootId !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(options.bootId)) {
      throw new ClusterError(
        ClusterErrorCode.INVALID_OPTION,
        `bootId ${JSON.stringify(options.bootId)}: expected 1..64 characters of [A-Za-z0-9-]`,
        { input: options.bootId },
      )
    }
    const mode = options.routingMode ?? 'tunnel'
    if (mode !== 'tunnel' && mode !== 'native') {
      throw new ClusterError(
        ClusterErrorCode.INVALID_OPTION,
        `routingMode ${JSON.stringify(mode)}: expected tunnel or native`,
        { input: mode },
      )
    }
    this.pool = parseClusterPool(options.clusterPoolCidr, options.clusterPoolMaskSize ?? 24)
    this.keyPrefix = `${validateKeyPrefix(options.prefix ?? DEFAULT_CLUSTER_PREFIX, 'cluster key prefix')}/`
    this.#ttl = options.leaseTtlSeconds ?? 15
    if (!Number.isInteger(this.#ttl) || this.#ttl < 1) {
      throw new ClusterError(
        ClusterErrorCode.INVALID_OPTION,
        `leaseTtlSeconds ${JSON.stringify(this.#ttl)}: expected an integer >= 1`,
      )
    }
    this.#timeoutMs = options.timeoutMs ?? 15_000
    this.#onError = options.onError ?? (() => {})
    this.#client = options.client
    this.#wanted = {
      name: this.name,
      nodeIP: options.nodeIP,
      bootId: options.bootId,
      routingMode: mode,
      health: 'ready',
      ...(options.podCidr !== undefined
        ? { podCidr: checkPodCidr(this.pool, options.podCidr) }
        : {}),
    }
  }

  /**
   * Register this node (claiming its pod CIDR), load every node and follow changes.
   *
   * @throws ClusterError `NODE_NAME_IN_USE` (a live node with another boot id has the name),
   *   `POD_CIDR_TAKEN`, `POD_CIDR_EXHAUSTED`, `INVALID_OPTION`, or the retryable
   *   `BACKEND_UNAVAILABLE` when etcd does not answer within `timeoutMs`. Nothing is left
   *   registered when it throws.
   */
  static async join(options: NodeRegistryOptions): Promise<NodeRegistry> {
    const reg = new NodeRegistry(options)
    try {
      await reg.#register(Date.now() + reg.#timeoutMs)
      await reg.#follow(Date.now() + reg.#timeoutMs)
    } catch (error) {
      await reg.close()
      throw error
    }
    return reg
  }

  /** This node's record as registered. */
  get self(): NodeRecord {
    return this.#self as NodeRecord
  }

  /** Every live node (this one included), by name. */
  nodes(): NodeRecord[] {
    return [...this.#nodes.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  /** One node by name. */
  get(name: string): NodeRecord | undefined {
    return this.#nodes.get(name)
  }

  /**
   * Follow joins, updates and leaves. With `replay` (default true) a `join` of every known node
   * comes first. Returns the unsubscribe function.
   */
  subscribe(listener: (e: NodeEvent) => void, options: { replay?: boolean } = {}): () => void {
    if (options.replay !== false) for (const node of this.nodes()) listener({ type: 'join', node })
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Publish this node's health (`ready` or what is degraded); one etcd write. */
  async setHealth(health: string): Promise<void> {
    const self = this.#self
    if (!self || self.health === health) return
    this.#wanted.health = health
    const lease = this.#lease
    const next = { ...self, health }
    this.#self = next
    if (lease) await lease.put(this.#nodeKey(this.name)).value(JSON.stringify(next)).exec()
  }

  #nodeKey(name: string): string {
    return `${this.keyPrefix}nodes/${name}`
  }

  #cidrKey(cidr: string): string {
    return `${this.keyPrefix}podcidrs/${cidr.replace('/', '_')}`
  }

  /** One registration: name check, pod CIDR claim and leased record in one transaction. */
  async #register(deadline: number): Promise<void> {
    const c = this.#client
    const nodeKey = this.#nodeKey(this.name)
    const lease = c.lease(this.#ttl, { autoKeepAlive: true })
    let leaseId: string
    try {
      leaseId = await retryUntil(
        'grant the node lease',
        deadline,
        () => this.#closed,
        () => lease.grant(),
      )
    } catch (error) {
      lease.release()
      throw error
    }
    try {
      const record = await retryUntil(
        `register node ${this.name}`,
        deadline,
        () => this.#closed,
        () => this.#attempt(nodeKey, leaseId),
      )
      this.#self = record
      this.#lease = lease
      lease.on('lost', (error: Error) => {
        if (this.#lease !== lease || this.#closed) return
        this.#lease = undefined
        this.#onError(new Error(`node lease lost (${error.message}); registering again`))
        void this.#rejoin()
      })
    } catch (error) {
      await lease.revoke().catch(() => lease.release())
      throw error
    }
  }

  async #attempt(nodeKey: string, leaseId: string): Promise<NodeRecord | never> {
    const c = this.#client
    const [current, claims] = await Promise.all([
      c.get(nodeKey).exec(),
      c.getAll().prefix(`${this.keyPrefix}podcidrs/`).exec(),
    ])
    const existing = current.kvs[0]
    if (existing) {
      const rec = parseRecord(existing)
      if (rec && rec.bootId !== this.#wanted.bootId) {
        throw new ClusterError(
          ClusterErrorCode.NODE_NAME_IN_USE,
          `node name ${this.name} is in use by a live node (node IP ${rec.nodeIP}, boot id ${rec.bootId}, registered ${rec.registeredAt}); pick another name or wait for its lease (${this.#ttl} s) to expire`,
          { input: this.name },
        )
      }
    }
    const owners = new Map<string, string>()
    for (const kv of claims.kvs) {
      const cidr = kv.key.toString().slice(`${this.keyPrefix}podcidrs/`.length).replace('_', '/')
      owners.set(cidr, kv.value.toString())
    }
    const mine = [...owners].filter(([, n]) => n === this.name).map(([cidr]) => cidr)
    let cidr: string
    if (this.#wanted.podCidr !== undefined) {
      cidr = this.#wanted.podCidr
      const owner = owners.get(cidr)
      if (owner !== undefined && owner !== this.name) {
        throw new ClusterError(
          ClusterErrorCode.POD_CIDR_TAKEN,
          `pod CIDR ${cidr} is claimed by node ${owner}`,
          { input: cidr },
        )
      }
    } else {
      const inPool = mine.filter((m) => {
        try {
          return checkPodCidr(this.pool, m) === m
        } catch {
          return false
        }
      })
      const free = inPool[0] ?? firstFreePodCidr(this.pool, new Set(owners.keys()))
      if (free === undefined) {
        throw new ClusterError(
          ClusterErrorCode.POD_CIDR_EXHAUSTED,
          `every /${this.pool.maskSize} of the cluster pool ${this.pool.cidr} is claimed (${this.pool.size} nodes)`,
        )
      }
      cidr = free
    }
    const record: NodeRecord = {
      ...this.#wanted,
      podCidr: cidr,
      registeredAt: new Date().toISOString(),
    }
    const cidrKey = this.#cidrKey(cidr)
    const claimed = owners.get(cidr) === this.name
    const txn = c
      .if(nodeKey, 'Mod', '==', existing ? existing.mod_revision : 0)
      .and(cidrKey, claimed ? 'Value' : 'Create', '==', claimed ? this.name : 0)
    const ops = [c.put(nodeKey).value(JSON.stringify(record)).lease(leaseId)]
    if (!claimed) ops.push(c.put(cidrKey).value(this.name))
    // A node that asked for a new pod CIDR gives its old claims back in the same transaction.
    const release = mine
      .filter((old) => old !== cidr)
      .map((old) => c.delete().key(this.#cidrKey(old)))
    const res = await txn.then(...ops, ...release).commit()
    if (!res.succeeded) throw new Error('another writer changed the node or pod CIDR; retrying')
    return record
  }

  async #follow(deadline: number): Promise<void> {
    const prefix = `${this.keyPrefix}nodes/`
    const res = await retryUntil(
      'load nodes',
      deadline,
      () => this.#closed,
      () => this.#client.getAll().prefix(prefix).exec(),
    )
    for (const kv of res.kvs) this.#applyPut(kv)
    const rev = (BigInt(res.header.revision) + 1n).toString()
    this.#watcher = await retryUntil(
      'watch nodes',
      deadline,
      () => this.#closed,
      () => this.#client.watch().prefix(prefix).startRevision(rev).create(),
    )
    this.#watcher.on('put', (kv) => this.#applyPut(kv))
    this.#watcher.on('delete', (kv) => this.#applyDelete(kv))
    this.#watcher.on('error', (e) => this.#onError(e))
  }

  #applyPut(kv: IKeyValue): void {
    const rec = parseRecord(kv)
    if (!rec) {
      this.#onError(
        new ClusterError(
          ClusterErrorCode.CORRUPT_STATE,
          `node record ${kv.key.toString()} is not a node record`,
        ),
      )
      return
    }
    const previous = this.#nodes.get(rec.name)
    this.#nodes.set(rec.name, rec)
    this.#emit(previous ? { type: 'update', node: rec, previous } : { type: 'join', node: rec })
  }

  #applyDelete(kv: IKeyValue): void {
    const name = kv.key.toString().slice(`${this.keyPrefix}nodes/`.length)
    const node = this.#nodes.get(name)
    if (!node) return
    this.#nodes.delete(name)
    this.#emit({ type: 'leave', node })
    // Our own record went (lease lost while etcd was away, or deleted by hand): register again.
    if (name === this.name && !this.#closed) void this.#rejoin()
  }

  #emit(e: NodeEvent): void {
    for (const l of [...this.#listeners]) {
      try {
        l(e)
      } catch (error) {
        this.#onError(error as Error)
      }
    }
  }

  async #rejoin(): Promise<void> {
    if (this.#rejoining) return
    this.#rejoining = true
    try {
      const old = this.#lease
      this.#lease = undefined
      old?.release()
      while (!this.#closed) {
        try {
          await this.#register(Date.now() + this.#timeoutMs)
          return
        } catch (error) {
          this.#onError(error as Error)
          await sleep(500)
        }
      }
    } finally {
      this.#rejoining = false
    }
  }

  /**
   * Leave the cluster. By default the lease is revoked (other nodes see the leave now) and the
   * pod CIDR claim is kept for the node's return; `releasePodCidr` gives it back to the pool.
   */
  async close(options: { revoke?: boolean; releasePodCidr?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const watcher = this.#watcher
    this.#watcher = undefined
    await watcher?.cancel().catch(() => {})
    const lease = this.#lease
    this.#lease = undefined
    if (lease) {
      if (options.revoke !== false)
        await lease.revoke({ deadline: Date.now() + 1000 }).catch(() => lease.release())
      else lease.release()
    }
    const self = this.#self
    if (options.releasePodCidr && self) {
      const key = this.#cidrKey(self.podCidr)
      await this.#client
        .if(key, 'Value', '==', this.name)
        .then(this.#client.delete().key(key))
        .commit()
        .catch((error: Error) => this.#onError(error))
    }
  }
}

function parseRecord(kv: IKeyValue): NodeRecord | undefined {
  try {
    const v = JSON.parse(kv.value.toString()) as NodeRecord
    if (
      typeof v === 'object' &&
      v !== null &&
      typeof v.name === 'string' &&
      typeof v.nodeIP === 'string' &&
      typeof v.podCidr === 'string' &&
      typeof v.bootId === 'string'
    )
      return v
  } catch {}
  return undefined
}
