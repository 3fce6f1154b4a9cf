import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  ClusterDocuments,
  ClusterError,
  type DocumentSet,
  type NodeRecord,
  NodeRegistry,
} from '@membrane/cluster'
import type { IPCache } from '@membrane/identity'
import type { EtcdIPCacheSync } from '@membrane/identity/etcd'
import type { Etcd3 } from 'etcd3'
import type { AgentConfig } from '../config'
import { AgentError } from '../errors'

/** What the agent does with the cluster's document sets (through its own import paths). */
export interface ClusterHooks {
  policies(set: DocumentSet): Promise<void>
  services(set: DocumentSet): Promise<void>
}

/**
 * The node's identity across restarts: kept in the state directory, so an agent restart is the
 * same node (its record is taken over) while another machine or a fresh state directory with
 * the same node name is another node (refused while the first one lives).
 */
function bootId(stateDir: string): string {
  const file = join(stateDir, 'cluster-boot-id')
  try {
    const id = readFileSync(file, 'utf8').trim()
    if (/^[A-Za-z0-9-]{1,64}$/.test(id)) return id
  } catch {}
  const id = randomUUID()
  writeFileSync(file, `${id}\n`, { mode: 0o600 })
  return id
}

/** A refusal of the cluster (name in use, pod CIDR taken) or etcd being away, as an AgentError. */
function agentError(error: unknown, what: string): AgentError {
  if (error instanceof AgentError) return error
  const e = error as Error
  if (error instanceof ClusterError) {
    const code =
      error.code === 'BACKEND_UNAVAILABLE'
        ? 'UNAVAILABLE'
        : error.code === 'POD_CIDR_EXHAUSTED'
          ? 'EXHAUSTED'
          : error.code === 'INVALID_OPTION'
            ? 'INVALID_INPUT'
            : 'CONFLICT'
    return new AgentError(code, `${what}: ${e.message}`, { field: 'cluster', cause: error })
  }
  return new AgentError('UNAVAILABLE', `${what}: ${e.message}`, { field: 'kvstore', cause: error })
}

/**
 * The agent's part of a cluster (config `clusterPoolCidr` with kvstore etcd): its node record and
 * pod CIDR (@membrane/cluster), its endpoints in the shared ipcache with this node's IP as their
 * tunnel endpoint (@membrane/identity/etcd), and the cluster's policy and service sets, handed
 * to the agent's import paths whole. Owns no algorithm.
 */
export class ClusterPlane {
  readonly registry: NodeRegistry
  #sync: EtcdIPCacheSync | undefined
  readonly #config: AgentConfig
  #policies: ClusterDocuments | undefined
  #services: ClusterDocuments | undefined
  readonly #client: Etcd3
  readonly #onError: (e: Error) => void

  private constructor(
    client: Etcd3,
    registry: NodeRegistry,
    config: AgentConfig,
    onError: (e: Error) => void,
  ) {
    this.#client = client
    this.registry = registry
    this.#config = config
    this.#onError = onError
  }

  /**
   * Register the node (claiming its pod CIDR). Before anything else touches etcd under this
   * node's name: a name in use by another live node is refused here.
   */
  static async join(
    config: AgentConfig,
    client: Etcd3,
    onError: (e: Error) => void,
  ): Promise<ClusterPlane> {
    try {
      const registry = await NodeRegistry.join({
        client,
        name: config.nodeName,
        nodeIP: config.nodeIP,
        bootId: bootId(config.stateDir),
        clusterPoolCidr: config.clusterPoolCidr,
        clusterPoolMaskSize: config.clusterPoolMaskSize,
        routingMode: config.routingMode,
        timeoutMs: 10_000,
        onError,
      })
      return new ClusterPlane(client, registry, config, onError)
    } catch (error) {
      throw agentError(error, `joining the cluster as ${config.nodeName}`)
    }
  }

  /** Load the shared ipcache into `ipcache` and follow it; publish this node's endpoints. */
  async shareIpcache(ipcache: IPCache): Promise<void> {
    try {
      // Loaded here: @membrane/identity/etcd needs the optional peer etcd3, which a single node
      // (memory kvstore) does not install.
      const { EtcdIPCacheSync } = await import('@membrane/identity/etcd')
      this.#sync = await EtcdIPCacheSync.create({
        client: this.#client,
        node: this.#config.nodeName,
        ipcache,
        tunnelEndpoint: this.#config.nodeIP,
        connectTimeoutMs: 10_000,
        timeoutMs: 2000,
        onError: this.#onError,
      })
    } catch (error) {
      throw agentError(error, 'sharing the ipcache')
    }
  }

  /** The node's pod CIDR: its endpoint pool. */
  get podCidr(): string {
    return this.registry.self.podCidr
  }

  /** Follow the cluster's policies and services (the current sets are applied first). */
  async follow(hooks: ClusterHooks): Promise<void> {
    try {
      this.#policies = await ClusterDocuments.open({
        client: this.#client,
        kind: 'policies',
        onChange: (set) => hooks.policies(set),
        onError: this.#onError,
      })
      this.#services = await ClusterDocuments.open({
        client: this.#client,
        kind: 'services',
        onChange: (set) => hooks.services(set),
        onError: this.#onError,
      })
    } catch (error) {
      throw agentError(error, 'following the cluster policies and services')
    }
  }

  /**
   * Change a cluster set (all or nothing, one cluster revision) and wait until this node has
   * applied it. Returns the cluster revision.
   */
  async change(
    kind: 'policies' | 'services',
    change: { put?: { key: string; document: unknown }[]; delete?: string[] },
  ): Promise<number> {
    const docs = kind === 'policies' ? this.#policies : this.#services
    if (!docs) throw new AgentError('UNAVAILABLE', `the cluster ${kind} are not followed yet`)
    try {
      const revision = await docs.update(change)
      await docs.waitApplied(revision, 30_000)
      return revision
    } catch (error) {
      throw agentError(error, `cluster ${kind}`)
    }
  }

  /** Publish an endpoint's address (applied locally at once; in etcd when it answers). */
  publish(ip: string, identity: number): void {
    const sync = this.#sync
    if (!sync) throw new AgentError('INTERNAL', 'the ipcache is not shared yet')
    sync.upsert(ip, { identity }).catch((e: Error) => this.#onError(e))
  }

  /** Withdraw an endpoint's address (locally at once; in etcd when it answers). */
  withdraw(ip: string): void {
    const sync = this.#sync
    if (!sync) throw new AgentError('INTERNAL', 'the ipcache is not shared yet')
    sync.delete(ip).catch((e: Error) => this.#onError(e))
  }

  /** Every live node. */
  nodes(): NodeRecord[] {
    return this.registry.nodes()
  }

  /** One line for `status`. */
  detail(): string {
    const self = this.registry.self
    return `node ${self.name} (${self.nodeIP}, pod CIDR ${self.podCidr}, ${self.routingMode}), ${this.registry.nodes().length} nodes, policy revision ${this.#policies?.applied ?? 0}, service revision ${this.#services?.applied ?? 0}`
  }

  /**
   * Leave. `revoke` (a purge) removes the node and its ipcache entries everywhere now; a plain
   * stop lets the lease run out, so a restart within the TTL is seamless for other nodes.
   */
  async close(options: { revoke: boolean }): Promise<void> {
    await this.#policies?.close()
    await this.#services?.close()
    await this.#sync?.close({ revoke: options.revoke })
    await this.registry.close({ revoke: options.revoke })
  }
}
