import { EventEmitter } from 'node:events'
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { release } from 'node:os'
import { parseBandwidth } from '@membrane/bandwidth'
import type { DocumentSet } from '@membrane/cluster'
import {
  buildServiceMap,
  FlowMetrics,
  type FlowObserver,
  LostEventSource,
  renderServiceMapSvg,
  type ServiceMap,
} from '@membrane/flows'
import type { IdentityAllocator } from '@membrane/identity'
import type { DnsLearnEvent, FqdnExpiry } from '@membrane/l7proxy'
import type { DirectionTrace } from '@membrane/policy'
import { POD_NAMESPACE_LABEL, parseIpv4 } from '@membrane/types'
import { Counter } from 'prom-client'
import { type AgentConfig, resolveConfig } from './config'
import { AgentError, invalid } from './errors'
import {
  agentStartedEvent,
  endpointEvent,
  ipcacheEvent,
  policyEvent,
  serviceDeleteEvent,
  serviceUpsertEvent,
} from './internal/agent-events'
import { ClusterPlane } from './internal/cluster'
import { crashPoint } from './internal/crash'
import { type DatapathParts, openDatapath } from './internal/datapath'
import { createObserver, flowToJson } from './internal/flows'
import { endpointIdentityLabels, IdentityService } from './internal/identity'
import { Ipam, specialRange } from './internal/ipam'
import { ensureBpffsFor, ensureCgroup2At, onBpffs } from './internal/mounts'
import {
  agentDeviceNames,
  type EndpointNames,
  endpointNames,
  hostDeviceName,
  isEndpointObjectName,
  ownerOfNames,
  validateIfname,
  validateLabels,
  validateName,
} from './internal/names'
import {
  endpointNetworkIntact,
  ensureEndpointNetwork,
  ensureHostDevice,
  ensureInterfaceRoute,
  firstIpv4,
  hostRoutes,
  ifindexOf,
  linkExists,
  linkIsUp,
  listLinks,
  listNetns,
  macOf,
  netnsExists,
  removeEndpointNetwork,
  removeHostDevice,
  removeInterfaceRoute,
  removeLink,
  removeNetns,
} from './internal/net'
import {
  bpfEntryView,
  type DatapathDiff,
  entryView,
  type PolicyEntryView,
  PolicyService,
  type TraceL7,
} from './internal/policy'
import { PolicyParser } from './internal/policy-parser'
import { type ProbeEndpoint, type ProbeOptions, type ProbeResult, runProbe } from './internal/probe'
import type { PolicySnapshot } from './internal/proxy-protocol'
import { ProxySupervisor } from './internal/proxy-supervisor'
import { createLogger, type Logger } from './log'
import {
  type AgentState,
  type EndpointRecord,
  emptyState,
  type PolicyRecord,
  type ServiceBackend,
  type ServiceRecord,
  StateStore,
} from './state'

/** What `endpoint create` takes. */
export interface EndpointSpec {
  /** Endpoint name: `[a-z0-9-]`, at most 40 characters. */
  name: string
  /** Namespace (scopes policies and names). Default `default`. */
  namespace?: string
  /** Workload labels, e.g. `{ org: 'empire', class: 'deathstar' }`. */
  labels?: Record<string, string>
  /** Attach to this existing host interface instead of creating a namespace and veth. */
  interface?: string
  /** The endpoint's address (interface mode: default the interface's first IPv4; netns mode: from the pool). */
  ip?: string
  /** Egress rate limit, a Kubernetes bandwidth quantity like `10M`. */
  egressBandwidth?: string
  /** Ingress rate limit, like `egressBandwidth`. */
  ingressBandwidth?: string
}

/** An endpoint as the API shows it: its record plus live health. */
export interface EndpointView extends EndpointRecord {
  /** `ready` when every kernel object is in place; otherwise what is missing. */
  health: string
  /** Whether the datapath enforces policy on this endpoint right now. */
  enforcing: boolean
  /** Bandwidth limits as the datapath holds them (bytes/s and `edt` or `police`). */
  bandwidth?: {
    egress?: { bytesPerSecond: number; mode: string }
    ingress?: { bytesPerSecond: number; mode: string }
  }
}

/** What `service create` takes. */
export interface ServiceSpec {
  name: string
  namespace?: string
  /** The virtual IP (ClusterIP). */
  vip: string
  port: number
  protocol?: 'TCP' | 'UDP'
  /** Backend port (default: `port`). */
  targetPort?: number
  /** `random` (default) or `maglev`. */
  algorithm?: 'random' | 'maglev'
  /** Endpoints whose labels contain all of these (in the service's namespace) are backends. */
  selector?: Record<string, string>
  /** Explicit backends, `address:port` or endpoint names. */
  backends?: string[]
}

/** The answer of `status`. */
export interface AgentStatus {
  version: string
  nodeName: string
  uptimeSeconds: number
  config: AgentConfig
  router: string
  components: Record<string, { state: 'ok' | 'degraded' | 'unavailable'; detail: string }>
  kernel: Record<string, string | boolean>
  bandwidthMode: string
  counts: { endpoints: number; policies: number; services: number; identities: number }
}

/** Options of {@link Agent}. */
export interface AgentOptions {
  /** Configuration; unset fields take their defaults. */
  config?: Partial<AgentConfig>
  /** Logger; default a pino logger at `config.logLevel` on stderr. */
  logger?: Logger
}

const VERSION = '0.1.0'

/**
 * The reference agent: keeps the desired state (endpoints, policies, services) and makes the
 * kernel match it by calling the Membrane packages. It owns no algorithm.
 *
 * @example
 * const agent = new Agent({ config: { stateDir: '/tmp/mb', ipamPool: '10.201.0.0/24' } })
 * await agent.start()
 * const ep = await agent.createEndpoint({ name: 'web', labels: { app: 'web' } })
 * await agent.stop()
 */
export class Agent {
  readonly config: AgentConfig
  readonly log: Logger
  readonly #store: StateStore
  #state: AgentState = emptyState()
  #ipam: Ipam
  #identity = new IdentityService()
  /** The etcd client shared by the allocator and the cluster (kvstore etcd). */
  #etcd: { close(): void } | undefined
  /** This node's part of a cluster (config clusterPoolCidr). */
  #cluster: ClusterPlane | undefined
  /** The cluster service specs last applied: key -> JSON. */
  readonly #clusterServices = new Map<string, string>()
  #policy: PolicyService
  /** Parses policy text in a worker thread (bounded in time and memory). */
  #parser: PolicyParser | undefined
  #unwatch: () => void = () => {}
  #dp: DatapathParts | undefined
  #dpError: string | undefined
  #unsubIpcache: () => void = () => {}
  #unsubIpcacheEvents: () => void = () => {}
  /** The L7 proxy process (it outlives the agent; see internal/proxy-supervisor.ts). */
  #proxy: ProxySupervisor | undefined
  #gcTimer: NodeJS.Timeout | undefined
  /** cgroups with socket-level load balancing attached. */
  #socketLb: string[] = []
  /** The port the L7 proxy listens on (config.proxyPort, or the one picked when that is 0). */
  #proxyPort = 0
  #proxyError: string | undefined = 'not started'
  /** CIDR identities held for the prefixes policies name (toCIDR, CIDR groups): prefix -> id. */
  readonly #cidrIds = new Map<string, number>()
  /** CIDR identities held for names the DNS proxy learned: ip -> identity. */
  readonly #fqdnIps = new Map<string, number>()
  /** Names the DNS proxy learned and their addresses (the proxy's policy copy needs them). */
  readonly #fqdnNames = new Map<string, Set<string>>()
  /** Flows from the datapath and the L7 proxy (a bounded ring; Hubble's Observer semantics). */
  readonly observer: FlowObserver
  /** Prometheus metrics: datapath counters, Hubble flow metrics, agent gauges. */
  readonly metrics = new FlowMetrics()
  /** Policy changes an endpoint's policy map could not take (membrane_policy_map_overflow_total). */
  readonly #policyOverflows: Counter<'endpoint'>
  /**
   * Endpoints whose policy in the kernel is older than their computed map state (a change that
   * would have overflowed their map was not written): reconciled in full once it fits.
   */
  readonly #policyBehind = new Set<number>()
  /** `monitor` events: `{ kind: 'agent' | 'flow' | 'lost', ... }` as they happen. */
  readonly monitor = new EventEmitter()
  #queue: Promise<unknown> = Promise.resolve()
  #started = 0
  #running = false

  constructor(options: AgentOptions = {}) {
    this.config = resolveConfig(options.config as Record<string, unknown> | undefined)
    this.log = options.logger ?? createLogger(this.config.logLevel)
    this.#store = new StateStore(this.config.stateDir)
    this.#ipam = new Ipam(this.config.ipamPool)
    this.#policy = new PolicyService(() => this.#proxyPort, this.config.policyAuditNamespaces)
    this.monitor.setMaxListeners(100)
    this.observer = createObserver(
      this.config.nodeName,
      {
        identityLabels: (id) => this.#identity.labelsOf(id),
        endpointByIp: (ip) => {
          // The router address is the host (the L7 proxy's upstream connections come from it).
          if (ip === this.#ipam.router) return { identity: 1, labels: ['reserved:host'] }
          const ep = this.#state.endpoints.find((e) => e.ipv4 === ip)
          if (!ep) return undefined
          return {
            endpointId: ep.id,
            ...(ep.identity !== undefined ? { identity: ep.identity } : {}),
            clusterName: this.config.clusterName,
            namespace: ep.namespace,
            podName: ep.name,
            labels: [
              ...Object.entries(ep.labels).map(([k, v]) => `k8s:${k}=${v}`),
              `k8s:${POD_NAMESPACE_LABEL}=${ep.namespace}`,
            ],
          }
        },
        serviceByFrontend: (ip, port, proto) => {
          const p = proto === 6 ? 'TCP' : proto === 17 ? 'UDP' : ''
          const svc = this.#state.services.find(
            (s) => s.vip === ip && s.port === port && s.protocol === p,
          )
          return svc ? { name: svc.name, namespace: svc.namespace } : undefined
        },
        policiesOf: (ruleSet, endpointId, direction) =>
          this.#policy.policiesOf(ruleSet, endpointId, direction),
        policiesByRef: (refs) => this.#policy.policiesByRef(refs),
      },
      { enabled: this.config.redactFlows, httpHeadersDeny: this.config.redactHttpHeaders },
      this.config.nodeLabels,
    )
    this.observer.addSink(this.metrics)
    // Forward/drop counters come from the datapath's own per-CPU counters, exact.
    this.metrics.useDatapathCounters(() => this.#dp?.dp.counters() ?? [])
    this.#policyOverflows = new Counter({
      name: 'membrane_policy_map_overflow_total',
      help: "Policy changes not applied because an endpoint's policy would overflow the policy maps, by endpoint",
      labelNames: ['endpoint'],
      registers: [this.metrics.registry],
    })
    this.metrics.addCollector(() => {
      const capacity = this.#dp?.dp.policyCapacity()
      if (capacity) {
        let entries = 0
        for (const u of this.#policy.usage().values()) entries += u.entries
        this.metrics.setMapPressure('mb_policy', entries / capacity.entries)
      }
      this.metrics.setEndpointCount(this.#state.endpoints.length)
      this.metrics.setIdentityCount(this.#identity.list().filter((i) => i.id >= 256).length)
      this.metrics.setPolicyCount(this.#state.policies.length)
    })
    this.observer.addSink({
      observeFlow: (flow) => this.monitor.emit('event', { kind: 'flow', flow: flowToJson(flow) }),
      observeLost: (source, count) => this.monitor.emit('event', { kind: 'lost', source, count }),
    })
  }

  /** Log an agent action and tell `monitor` followers. */
  #notify(msg: string, fields: Record<string, unknown>): void {
    this.log.info(fields, msg)
    this.monitor.emit('event', { kind: 'agent', time: new Date().toISOString(), msg, ...fields })
  }

  /** The router address: the endpoints' gateway and the L7 proxy's address. */
  get router(): string {
    return this.#ipam.router
  }

  /** True between {@link start} and {@link stop}. */
  get running(): boolean {
    return this.#running
  }

  /**
   * Start: mount bpffs/cgroup2 when missing, make the host device, load the state directory and
   * reconcile the kernel with it by diff (nothing is flushed).
   */
  async start(): Promise<void> {
    if (this.#running) return
    try {
      await this.#start()
    } catch (error) {
      // Undo what this attempt opened, but never touch what is running in the kernel.
      this.#running = false
      if (this.#gcTimer) clearInterval(this.#gcTimer)
      this.#gcTimer = undefined
      this.#proxy?.detach()
      this.#proxy = undefined
      await this.#parser?.close()
      this.#parser = undefined
      if (this.#dp) {
        this.#dp.events.close()
        this.#unsubIpcache()
        await this.#dp.dp.close({ keepPrograms: true }).catch(() => {})
        this.#dp = undefined
      }
      this.#unwatch()
      this.#unsubIpcacheEvents()
      await this.#cluster?.close({ revoke: false }).catch(() => {})
      this.#cluster = undefined
      await this.#identity.close().catch(() => {})
      this.#etcd?.close()
      this.#etcd = undefined
      throw error
    }
  }

  async #start(): Promise<void> {
    this.#started = Date.now()
    this.#parser = new PolicyParser({ timeoutMs: this.config.policyParseTimeoutMs })
    this.#parser.warm()
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 })
    await ensureBpffsFor(this.config.bpffsRoot)
    mkdirSync(this.config.bpffsRoot, { recursive: true })
    await ensureCgroup2At(this.config.cgroupRoot).catch((error) => {
      this.log.warn({ err: error }, 'cgroup v2 unavailable; socket load balancing disabled')
    })
    this.#state = this.#store.load()
    this.#identity = new IdentityService(await this.#createAllocator())
    if (this.#cluster) await this.#cluster.shareIpcache(this.#identity.ipcache)
    // In a cluster the endpoint pool is the node's pod CIDR, claimed through etcd.
    const ipam = new Ipam(this.#cluster?.podCidr ?? this.config.ipamPool)
    for (const ep of this.#state.endpoints) {
      if (ipam.contains(ep.ipv4)) ipam.claim(ep.ipv4)
    }
    this.#ipam = ipam
    // Every identity given to or taken from an address is an agent event (GetAgentEvents).
    this.#unsubIpcacheEvents = this.#identity.ipcache.subscribe((e) =>
      this.observer.publishAgentEvent(ipcacheEvent(e)),
    )
    this.#policy = new PolicyService(() => this.#proxyPort, this.config.policyAuditNamespaces)
    this.#unwatch = this.#identity.allocator.watch((e) => {
      if (e.type === 'add') this.#policy.updateIdentities([e.identity])
      else this.#policy.updateIdentities([], [e.identity.id])
    })
    try {
      this.#policy.restore(this.#state.policies)
    } catch (error) {
      throw new AgentError(
        'INTERNAL',
        `saved policies no longer parse: ${(error as Error).message}`,
        {
          cause: error,
        },
      )
    }
    const changed = await this.#identity.restore(this.#state.endpoints)
    for (const ep of changed) {
      this.log.warn(
        { endpoint: `${ep.namespace}/${ep.name}`, identity: ep.identity },
        'identity changed on restore',
      )
    }
    this.#identity.ipcache.upsert(`${this.#ipam.router}/32`, { identity: 1 })
    await this.#syncCidrIdentities()
    for (const svc of this.#state.services) this.#policy.repo.updateService(serviceInfo(svc))
    for (const ep of this.#state.endpoints) {
      if (ep.identity !== undefined) this.#publishIp(ep.ipv4, ep.identity)
    }
    if (changed.length > 0) this.#save()
    await ensureHostDevice(hostDeviceName(this.config.prefix), this.#ipam.router)
    const opened = await openDatapath({
      pinRoot: this.config.bpffsRoot,
      routerIp4: this.#ipam.router,
      onEvent: (record) => this.observer.ingestEvent(record),
    })
    this.#dp = opened.parts
    this.#dpError = opened.error
    if (this.#dp) {
      const dp = this.#dp.dp
      this.#unsubIpcache = this.#identity.ipcache.subscribe((e) => dp.ipcache.applyEvent(e), {
        replay: true,
      })
      // Before the ipcache is reconciled: the proxy replays the names it learned while no agent
      // ran, and their addresses keep their entries.
      await this.#startProxy()
      // Reconcile by diff: entries of endpoints that no longer exist go; nothing is flushed.
      const wanted = new Set(this.#identity.ipcache.dump().map((e) => e.cidr))
      for (const e of dp.ipcache.entries()) if (!wanted.has(e.cidr)) dp.ipcache.delete(e.cidr)
      for (const cg of this.config.socketLbCgroups) {
        try {
          await dp.attachSocketLb(cg)
          this.#socketLb.push(cg)
        } catch (error) {
          this.log.warn({ err: error, cgroup: cg }, 'socket load balancing not attached')
        }
      }
      // Conntrack GC and removal of drained backends no connection uses any more.
      this.#gcTimer = setInterval(() => {
        void this.#serial(async () => {
          const r = this.#dp?.dp.gc()
          if (r && (r.ct.deleted > 0 || r.backendsDeleted.length > 0)) {
            this.log.debug({ ct: r.ct.deleted, backends: r.backendsDeleted.length }, 'datapath gc')
          }
        }).catch((error: unknown) => this.log.warn({ err: error }, 'datapath gc failed'))
      }, 30_000)
      this.#gcTimer.unref()
      if (this.#dp.bandwidthError) {
        this.log.warn({ reason: this.#dp.bandwidthError }, 'bandwidth manager unavailable')
      }
    } else {
      this.log.warn(
        { reason: this.#dpError },
        'datapath NOT loaded: endpoints get connectivity but policy, services and bandwidth are not enforced',
      )
    }
    await this.#rollBackCreates()
    this.#running = true
    await this.#serial(() => this.#reconcile())
    if (this.#cluster) {
      // The cluster's sets win over the saved ones (once the cluster has written them).
      await this.#cluster.follow({
        policies: (set) => this.#applyClusterPolicies(set),
        services: (set) => this.#applyClusterServices(set),
      })
      if (!this.#dp) await this.#cluster.registry.setHealth('degraded: datapath not loaded')
    }
    this.observer.publishAgentEvent(agentStartedEvent())
    this.log.info(
      {
        endpoints: this.#state.endpoints.length,
        policies: this.#state.policies.length,
        services: this.#state.services.length,
      },
      'agent started',
    )
  }

  /** The identity allocator of the configured kvstore (memory, or etcd shared between nodes). */
  async #createAllocator(): Promise<IdentityAllocator | undefined> {
    const kv = this.config.kvstore
    if (kv.type === 'memory') return undefined
    const { createEtcdClient, EtcdAllocator } = await import('@membrane/identity/etcd')
    try {
      // One connection for the allocator and the cluster; the node name is key-safe (config).
      const client = createEtcdClient({ endpoints: kv.endpoints })
      this.#etcd = client
      // The node's name is checked (and its record written) before the allocator writes
      // anything under it.
      if (this.config.clusterPoolCidr !== '') {
        this.#cluster = await ClusterPlane.join(this.config, client, (error) =>
          this.log.warn({ err: error }, 'cluster background error'),
        )
      }
      return await EtcdAllocator.create({
        client,
        node: this.config.nodeName,
        connectTimeoutMs: 10_000,
        onError: (error: unknown) =>
          this.log.warn({ err: error }, 'etcd allocator background error'),
      })
    } catch (error) {
      if (error instanceof AgentError) throw error
      throw new AgentError(
        'UNAVAILABLE',
        `kvstore etcd at ${kv.endpoints.join(', ')}: ${(error as Error).message}`,
        { field: 'kvstore', cause: error },
      )
    }
  }

  /**
   * Stop. By default the datapath keeps running (pins, programs, namespaces stay) so workloads
   * keep their connectivity and policy; with `purge` every endpoint, service, pin and the host
   * device are removed (the demo and tests use this).
   */
  async stop(options: { purge?: boolean } = {}): Promise<void> {
    if (!this.#running) return
    await this.#serial(async () => {
      if (this.#proxy) {
        // A plain stop leaves the proxy serving (it outlives the agent); purge stops it.
        if (options.purge) await this.#proxy.stop()
        else this.#proxy.detach()
        this.#proxy = undefined
        this.#proxyError = 'stopped'
      }
      if (options.purge) {
        for (const ep of [...this.#state.endpoints]) await this.#deleteEndpoint(ep)
        for (const svc of this.#state.services) {
          this.#dp?.dp.services.delete(svc.vip, svc.port, svc.protocol)
        }
        await this.#removeStrayObjects()
        this.#state = emptyState()
        this.#save()
        await removeHostDevice(hostDeviceName(this.config.prefix))
      }
      if (this.#gcTimer) clearInterval(this.#gcTimer)
      this.#gcTimer = undefined
      this.#unsubIpcacheEvents()
      if (this.#dp) {
        if (options.purge) {
          for (const cg of this.#socketLb) await this.#dp.dp.detachSocketLb(cg).catch(() => false)
        }
        this.#socketLb = []
        this.#dp.events.close()
        this.#unsubIpcache()
        await this.#dp.dp.close({ keepPrograms: options.purge !== true })
        this.#dp = undefined
      }
      if (options.purge) rmSync(this.config.bpffsRoot, { recursive: true, force: true })
    })
    this.#running = false
    await this.#parser?.close()
    this.#parser = undefined
    this.#unwatch()
    // A purge leaves the cluster now; a plain stop lets the lease run out (a restart within
    // the TTL is seamless for other nodes).
    await this.#cluster?.close({ revoke: options.purge === true }).catch(() => {})
    this.#cluster = undefined
    await this.#identity.close().catch(() => {})
    this.#etcd?.close()
    this.#etcd = undefined
    this.log.info({ purge: options.purge === true }, 'agent stopped')
  }

  // ---------------------------------------------------------------- endpoints

  /**
   * Create an endpoint (idempotent: the same spec again returns the existing endpoint and
   * repairs missing kernel objects; a different spec under the same name is a CONFLICT).
   */
  createEndpoint(input: EndpointSpec): Promise<{ endpoint: EndpointView; created: boolean }> {
    const spec = normalizeEndpointSpec(input)
    return this.#serial(async () => {
      const existing = this.#findEndpoint(spec.namespace, spec.name)
      if (existing) {
        const same =
          sameLabels(existing.labels, spec.labels) &&
          (spec.interface === undefined || existing.hostIfname === spec.interface) &&
          (spec.interface !== undefined) === (existing.mode === 'interface') &&
          (spec.ip === undefined || spec.ip === existing.ipv4) &&
          existing.egressBandwidth === spec.egressBandwidth &&
          existing.ingressBandwidth === spec.ingressBandwidth
        if (!same) {
          throw new AgentError(
            'CONFLICT',
            `endpoint ${spec.namespace}/${spec.name} already exists with a different spec; delete it first`,
            { field: 'name' },
          )
        }
        await this.#realizeEndpoint(existing)
        return { endpoint: this.#view(existing), created: false }
      }
      const record = await this.#newEndpointRecord(spec)
      // The intent goes to disk before any kernel object exists: after a crash from here on, the
      // next start finds it and removes what was made (see #rollBackCreates).
      this.#state.creating.push(record)
      const forget = () => {
        this.#state.creating = this.#state.creating.filter((r) => r !== record)
      }
      try {
        this.#save()
      } catch (error) {
        forget()
        this.#ipam.release(record.ipv4)
        throw error
      }
      crashPoint('intent-saved')
      try {
        record.identity = await this.#identity.allocate(record)
        this.#publishIp(record.ipv4, record.identity)
        crashPoint('identity-allocated')
        this.#policy.track(record)
        await this.#realizeEndpoint(record)
        crashPoint('attached')
      } catch (error) {
        await this.#unrealizeEndpoint(record).catch(() => {})
        this.#policy.untrack(record.id)
        this.#withdrawIp(record.ipv4)
        if (record.identity !== undefined) await this.#identity.release(record)
        this.#ipam.release(record.ipv4)
        forget()
        this.#save()
        throw error instanceof AgentError
          ? error
          : new AgentError(
              'INTERNAL',
              `creating endpoint ${spec.namespace}/${spec.name} failed: ${(error as Error).message}`,
              { cause: error },
            )
      }
      this.#state.endpoints.push(record)
      await this.#applyPolicy()
      this.#refreshServices()
      this.#syncServices()
      crashPoint('policy-applied')
      // One write commits the endpoint and drops its intent.
      forget()
      this.#save()
      this.observer.publishAgentEvent(endpointEvent(record, true))
      this.#notify('endpoint created', {
        endpoint: `${record.namespace}/${record.name}`,
        id: record.id,
        ip: record.ipv4,
        identity: record.identity,
      })
      return { endpoint: this.#view(record), created: true }
    })
  }

  /** Every endpoint, with health. */
  listEndpoints(): EndpointView[] {
    return this.#state.endpoints.map((e) => this.#view(e))
  }

  /** One endpoint by `namespace/name` (or `name` in `default`); NOT_FOUND otherwise. */
  getEndpoint(ref: string): EndpointView {
    return this.#view(this.#mustFindEndpoint(ref))
  }

  /** Delete an endpoint and everything made for it. */
  deleteEndpoint(ref: string): Promise<EndpointRecord> {
    return this.#serial(async () => {
      const ep = this.#mustFindEndpoint(ref)
      await this.#deleteEndpoint(ep)
      this.#save()
      this.observer.publishAgentEvent(endpointEvent(ep, false))
      this.#notify('endpoint deleted', { endpoint: `${ep.namespace}/${ep.name}` })
      return ep
    })
  }

  // ---------------------------------------------------------------- services

  /**
   * Create or replace a service. In a cluster it is saved in the cluster's service set and
   * applied on every node (this one before the answer).
   */
  async createService(input: ServiceSpec): Promise<ServiceRecord> {
    const spec = normalizeServiceSpec(input)
    const key = `${spec.namespace}/${spec.name}`
    if (this.#cluster) {
      this.#checkServiceClash(spec, key)
      await this.#cluster.change('services', { put: [{ key, document: spec }] })
      const saved = this.#state.services.find((s) => s.key === key)
      if (!saved) throw new AgentError('INTERNAL', `service ${key} was not applied`)
      return saved
    }
    return this.#serial(() => this.#saveService(spec))
  }

  #checkServiceClash(spec: ReturnType<typeof normalizeServiceSpec>, key: string): void {
    const clash = this.#state.services.find(
      (s) =>
        s.key !== key && s.vip === spec.vip && s.port === spec.port && s.protocol === spec.protocol,
    )
    if (clash) {
      throw new AgentError(
        'CONFLICT',
        `${spec.vip}:${spec.port}/${spec.protocol} is already service ${clash.key}`,
        { field: 'vip' },
      )
    }
  }

  /** Save a service locally and make the datapath and policy follow (inside the queue). */
  async #saveService(spec: ReturnType<typeof normalizeServiceSpec>): Promise<ServiceRecord> {
    {
      const key = `${spec.namespace}/${spec.name}`
      const clash = this.#state.services.find(
        (s) =>
          s.key !== key &&
          s.vip === spec.vip &&
          s.port === spec.port &&
          s.protocol === spec.protocol,
      )
      if (clash) {
        throw new AgentError(
          'CONFLICT',
          `${spec.vip}:${spec.port}/${spec.protocol} is already service ${clash.key}`,
          { field: 'vip' },
        )
      }
      const existing = this.#state.services.find((s) => s.key === key)
      const record: ServiceRecord = {
        key,
        name: spec.name,
        namespace: spec.namespace,
        id: existing?.id ?? this.#freeServiceId(),
        vip: spec.vip,
        port: spec.port,
        protocol: spec.protocol,
        algorithm: spec.algorithm,
        ...(spec.selector ? { selector: spec.selector } : {}),
        targetPort: spec.targetPort,
        backends: [],
        createdAt: existing?.createdAt ?? new Date().toISOString(),
      }
      record.backends = this.#resolveBackends(record, spec.backends)
      this.#state.services = [...this.#state.services.filter((s) => s.key !== key), record]
      this.#syncServices()
      this.#policy.repo.updateService(serviceInfo(record))
      await this.#applyPolicy()
      this.#save()
      this.observer.publishAgentEvent(serviceUpsertEvent(record))
      this.#notify('service saved', { service: key, backends: record.backends.length })
      return record
    }
  }

  /** Every service. */
  listServices(): ServiceRecord[] {
    return [...this.#state.services]
  }

  /** Delete a service by `namespace/name` (or `name` in `default`); in a cluster, on every node. */
  async deleteService(ref: string): Promise<ServiceRecord> {
    const key = ref.includes('/') ? ref : `default/${ref}`
    const cluster = this.#cluster
    if (cluster) {
      const svc = this.#state.services.find((s) => s.key === key)
      if (!svc) throw new AgentError('NOT_FOUND', `service ${key} not found`, { field: 'name' })
      await cluster.change('services', { delete: [key] })
      return svc
    }
    return this.#serial(() => this.#removeService(key))
  }

  async #removeService(key: string): Promise<ServiceRecord> {
    {
      const svc = this.#state.services.find((s) => s.key === key)
      if (!svc) throw new AgentError('NOT_FOUND', `service ${key} not found`, { field: 'name' })
      this.#state.services = this.#state.services.filter((s) => s.key !== key)
      this.#dp?.dp.services.delete(svc.vip, svc.port, svc.protocol)
      this.#policy.repo.selectorCache.deleteService(svc.namespace, svc.name)
      await this.#applyPolicy()
      this.#save()
      this.observer.publishAgentEvent(serviceDeleteEvent(svc))
      return svc
    }
  }

  /**
   * The cluster's service set changed: save what is new or different, remove what is gone, in
   * the queue like a local change. The set's first revision replaces the saved services.
   */
  #applyClusterServices(set: DocumentSet): Promise<void> {
    return this.#serial(async () => {
      for (const [key, doc] of set.documents) {
        const text = JSON.stringify(doc)
        if (this.#clusterServices.get(key) === text) continue
        try {
          await this.#saveService(normalizeServiceSpec(doc))
          this.#clusterServices.set(key, text)
        } catch (error) {
          this.log.error(
            { err: error, service: key, revision: set.revision },
            'cluster service not applied',
          )
        }
      }
      for (const svc of [...this.#state.services]) {
        if (set.documents.has(svc.key)) continue
        await this.#removeService(svc.key)
        this.#clusterServices.delete(svc.key)
      }
      this.#notify('cluster services applied', { revision: set.revision })
    })
  }

  // ---------------------------------------------------------------- policies

  /**
   * Validate and apply policy text (YAML/JSON, one or many documents) atomically: if any document
   * is invalid nothing changes.
   */
  async importPolicy(
    text: unknown,
    source = 'policy',
  ): Promise<{ revision: number; clusterRevision?: number; policies: PolicyView[] }> {
    if (typeof text !== 'string' || text.trim() === '') {
      throw invalid('text', `expected the policy document text of ${source}`)
    }
    if (!this.#parser) throw new AgentError('UNAVAILABLE', 'the agent is not running')
    // Parsed and validated in the worker, outside the queue: a long parse delays no other change.
    const { objects, docs } = await this.#parser.parse(text, source)
    if (this.#cluster) {
      // In a cluster the documents go into the cluster's set (every node applies it).
      const clusterRevision = await this.#cluster.change('policies', {
        put: docs.map((d, i) => ({ key: d.ref, document: objects[i] })),
      })
      const keys = new Set(docs.map((d) => d.ref))
      return {
        revision: this.#policy.repo.revision,
        clusterRevision,
        policies: this.#state.policies.filter((p) => keys.has(p.key)).map(policyView),
      }
    }
    return this.#serial(async () => {
      const refs = new Set(docs.map((d) => d.ref))
      const replaced = this.#policy.repo.policies.filter((d) => refs.has(d.ref))
      const revision = this.#policy.repo.upsert(docs)
      // The steps of a large import each take a while: let the API answer in between.
      await yieldToEventLoop()
      await this.#syncCidrIdentities()
      // All endpoints of the import or none: a policy that overflows any endpoint's map is
      // taken back out of the repository before anything reaches the kernel.
      const diffs = await this.#refreshPolicyOrRefuse(async () => {
        this.#policy.repo.delete([...refs])
        if (replaced.length > 0) this.#policy.repo.upsert(replaced)
        await this.#syncCidrIdentities()
      })
      const now = new Date().toISOString()
      const records: PolicyRecord[] = docs.map((d, i) => ({
        key: d.ref,
        kind: d.kind,
        name: d.name,
        ...(d.namespace !== undefined ? { namespace: d.namespace } : {}),
        document: objects[i],
        importedAt: now,
      }))
      const keys = new Set(records.map((r) => r.key))
      this.#state.policies = [...this.#state.policies.filter((p) => !keys.has(p.key)), ...records]
      this.#save()
      await yieldToEventLoop()
      const changes = await this.#installPolicy(diffs)
      this.observer.publishAgentEvent(
        policyEvent(
          docs.flatMap((d) => d.rules),
          revision,
          true,
        ),
      )
      this.#notify('policy imported', { policies: [...keys], revision, mapChanges: changes })
      return { revision, policies: records.map(policyView) }
    })
  }

  /** Every imported policy (with its document). */
  listPolicies(): (PolicyView & { document: unknown })[] {
    return this.#state.policies.map((p) => ({ ...policyView(p), document: p.document }))
  }

  /**
   * Delete policies by name (and optionally namespace and kind); NOT_FOUND when none match. In
   * a cluster they leave the cluster's set (every node).
   */
  async deletePolicy(q: {
    name: string
    namespace?: string
    kind?: string
  }): Promise<{ revision: number; deleted: PolicyView[] }> {
    const match = () => {
      const victims = this.#state.policies.filter(
        (p) =>
          p.name === q.name &&
          (q.namespace === undefined || p.namespace === q.namespace) &&
          (q.kind === undefined || p.kind === q.kind),
      )
      if (victims.length === 0) {
        throw new AgentError(
          'NOT_FOUND',
          `policy ${q.namespace ? `${q.namespace}/` : ''}${q.name} not found`,
          {
            field: 'name',
          },
        )
      }
      return victims
    }
    if (this.#cluster) {
      const victims = match()
      await this.#cluster.change('policies', { delete: victims.map((v) => v.key) })
      return { revision: this.#policy.repo.revision, deleted: victims.map(policyView) }
    }
    return this.#serial(async () => {
      const victims = match()
      const rules = victims.flatMap((v) => this.#policy.repo.rulesOf(v.key))
      const revision = this.#policy.repo.delete(victims.map((v) => v.key))
      await this.#syncCidrIdentities()
      this.#state.policies = this.#state.policies.filter((p) => !victims.includes(p))
      this.#save()
      await this.#applyPolicy()
      this.observer.publishAgentEvent(policyEvent(rules, revision, false))
      this.#notify('policy deleted', { policies: victims.map((v) => v.key), revision })
      return { revision, deleted: victims.map(policyView) }
    })
  }

  /**
   * The hook of the cluster's policy set: the documents that are new or changed are parsed
   * together (one failing document: nothing of this revision is applied), then the repository,
   * the saved state and the maps change in one step of the queue, as a local import does.
   */
  #applyClusterPolicies(set: DocumentSet): Promise<void> {
    return this.#serial(async () => {
      const parser = this.#parser
      if (!parser) return
      const current = new Map(this.#state.policies.map((p) => [p.key, p]))
      const changed = [...set.documents].filter(
        ([k, d]) => JSON.stringify(current.get(k)?.document) !== JSON.stringify(d),
      )
      const removed = [...current.keys()].filter((k) => !set.documents.has(k))
      if (changed.length === 0 && removed.length === 0) return
      let parsed: Awaited<ReturnType<PolicyParser['parse']>> | undefined
      if (changed.length > 0) {
        try {
          parsed = await parser.parse(
            changed.map(([, d]) => JSON.stringify(d)).join('\n---\n'),
            `cluster policy revision ${set.revision}`,
          )
        } catch (error) {
          this.log.error({ err: error, revision: set.revision }, 'cluster policies NOT applied')
          return
        }
      }
      let revision = this.#policy.repo.revision
      if (parsed) revision = this.#policy.repo.upsert(parsed.docs)
      if (removed.length > 0) revision = this.#policy.repo.delete(removed)
      await this.#syncCidrIdentities()
      const now = new Date().toISOString()
      const records: PolicyRecord[] = (parsed?.docs ?? []).map((d, i) => ({
        key: d.ref,
        kind: d.kind,
        name: d.name,
        ...(d.namespace !== undefined ? { namespace: d.namespace } : {}),
        document: parsed?.objects[i],
        importedAt: now,
      }))
      const replaced = new Set([...records.map((r) => r.key), ...removed])
      this.#state.policies = [
        ...this.#state.policies.filter((p) => !replaced.has(p.key)),
        ...records,
      ]
      this.#save()
      const changes = await this.#applyPolicy()
      this.#notify('cluster policies applied', {
        clusterRevision: set.revision,
        revision,
        imported: records.map((r) => r.key),
        deleted: removed,
        mapChanges: changes,
      })
    })
  }

  /** Would a connection from one endpoint to another be allowed? (both directions, L7 too). */
  tracePolicy(input: unknown): { verdict: string; explanation: string[]; trace: unknown } {
    if (typeof input !== 'object' || input === null)
      throw invalid('trace', 'expected { from, to, port, protocol?, http?, kafka?, dns? }')
    const q = input as {
      from?: unknown
      to?: unknown
      port?: unknown
      protocol?: unknown
      http?: unknown
      kafka?: unknown
      dns?: unknown
    }
    const from = this.#mustFindEndpoint(String(q.from ?? ''))
    const to = this.#mustFindEndpoint(String(q.to ?? ''))
    const port = validatePort('port', q.port)
    const protocol = q.protocol === undefined ? 'TCP' : String(q.protocol)
    const l7 = traceL7Request(q)
    const r = this.#policy.trace(from, to, port, protocol, l7)
    const http = l7.http
    return {
      verdict: r.verdict,
      explanation: [
        `source ${from.namespace}/${from.name} (identity ${from.identity}) -> destination ${to.namespace}/${to.name} (identity ${to.identity}) ${protocol}/${port}${http ? ` ${http.method} ${http.path}` : ''}`,
        `egress: ${directionText(r.egress)}`,
        `ingress: ${directionText(r.ingress)}`,
      ],
      trace: r,
    }
  }

  /**
   * The truth table of the node's policy: for each source × destination × port (TCP), the
   * verdict the repository's trace predicts and (unless `measure: false`) the one real
   * connections between the workloads' namespaces get, with the differences. `from` / `to`
   * narrow the endpoints (default every endpoint), `ports` replaces the ports the policies name,
   * `explain` adds each cell's trace. Bounded by `timeoutMs` per connection (default 1000; a
   * timeout is tried `retries` more times, default 1), `concurrency` (32) and `deadlineMs` in
   * all (60000).
   *
   * @example
   * const r = await agent.probePolicy({ from: ['default/xwing'], ports: [80] })
   * r.differences // 0 when the datapath does what the policy says
   */
  async probePolicy(input: unknown = {}): Promise<ProbeResult> {
    if (typeof input !== 'object' || input === null || Array.isArray(input))
      throw invalid(
        'probe',
        'expected { from?, to?, ports?, timeoutMs?, concurrency?, deadlineMs?, measure?, explain? }',
      )
    const q = input as Record<string, unknown>
    const known = [
      'from',
      'to',
      'ports',
      'timeoutMs',
      'retries',
      'concurrency',
      'deadlineMs',
      'measure',
      'explain',
    ]
    for (const k of Object.keys(q))
      if (!known.includes(k))
        throw invalid(k, `unknown field; known fields are ${known.join(', ')}`)
    const refs = (field: string): EndpointRecord[] => {
      const v = q[field]
      if (v === undefined) return this.#state.endpoints
      if (!Array.isArray(v) || v.length === 0)
        throw invalid(field, 'expected a non-empty list of namespace/name')
      return v.map((r, i) => this.#mustFindEndpoint(String(r), `${field}[${i}]`))
    }
    const bound = (field: string, min: number, max: number): number | undefined => {
      const v = q[field]
      if (v === undefined) return undefined
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        throw invalid(field, `expected an integer ${min}..${max}, got ${JSON.stringify(v)}`)
      return v
    }
    const options: ProbeOptions = {}
    if (q.ports !== undefined) {
      if (!Array.isArray(q.ports) || q.ports.length === 0 || q.ports.length > 64)
        throw invalid('ports', 'expected a list of 1..64 ports')
      options.ports = [...new Set(q.ports.map((p, i) => validatePort(`ports[${i}]`, p)))]
    }
    const timeoutMs = bound('timeoutMs', 10, 30_000)
    const concurrency = bound('concurrency', 1, 256)
    const deadlineMs = bound('deadlineMs', 100, 600_000)
    const retries = bound('retries', 0, 5)
    if (retries !== undefined) options.retries = retries
    if (timeoutMs !== undefined) options.timeoutMs = timeoutMs
    if (concurrency !== undefined) options.concurrency = concurrency
    if (deadlineMs !== undefined) options.deadlineMs = deadlineMs
    if (q.measure === false) options.measure = false
    if (q.explain === true) options.explain = true
    const probeEp = (e: EndpointRecord): ProbeEndpoint => ({
      ref: `${e.namespace}/${e.name}`,
      ip: e.ipv4,
      ...(e.identity !== undefined ? { identity: e.identity } : {}),
      ...(e.mode === 'netns' && e.netns ? { netns: e.netns } : {}),
    })
    const byRef = new Map(this.#state.endpoints.map((e) => [`${e.namespace}/${e.name}`, e]))
    const from = refs('from').map(probeEp)
    const to = refs('to').map(probeEp)
    return runProbe(
      {
        trace: (a, b, port, http) =>
          this.#policy.trace(
            byRef.get(a.ref)!,
            byRef.get(b.ref)!,
            port,
            'TCP',
            http ? { http } : {},
          ),
        policyPorts: (dst, sources) => {
          const d = byRef.get(dst.ref)!
          return this.#policy.tcpPorts(
            d.id,
            sources.map((s) => byRef.get(s.ref)!.id),
            d.identity,
          )
        },
      },
      { from, to },
      options,
    )
  }

  /**
   * The policy map of an endpoint: what is in its BPF map when the datapath runs, otherwise the
   * computed map state (`source` says which).
   */
  endpointPolicyMap(ref: string): { source: 'bpf' | 'computed'; entries: PolicyEntryView[] } {
    const ep = this.#mustFindEndpoint(ref)
    if (this.#dp) {
      return { source: 'bpf', entries: this.#dp.dp.policyMap(ep.id).entries().map(bpfEntryView) }
    }
    const ms = this.#policy.mapState(ep.id)
    return { source: 'computed', entries: ms ? ms.sorted().map(entryView) : [] }
  }

  /** The service map of the flows in the ring: connections and L7 requests per edge. */
  serviceMap(): ServiceMap {
    const flows = []
    for (const e of this.observer.ring.entries()) if (e.flow) flows.push(e.flow)
    return buildServiceMap(flows)
  }

  /** The service map of the flows seen so far (SVG from @membrane/flows). */
  serviceMapSvg(map: ServiceMap = this.serviceMap()): string {
    return renderServiceMapSvg(map, { title: `Membrane service map — ${this.config.nodeName}` })
  }

  /** The services as the BPF maps hold them (or the desired state when no datapath runs). */
  bpfServices(): { frontend: string; algorithm: string; backends: string[]; source: string }[] {
    const dp = this.#dp?.dp
    if (dp) {
      return dp.services.list().map((s) => ({
        frontend: `${s.address}:${s.port}/${s.protocol}`,
        algorithm: s.algorithm,
        backends: s.backends.map((b) => `${b.address}:${b.port} (id ${b.id})`),
        source: 'bpf',
      }))
    }
    return this.#state.services.map((s) => ({
      frontend: `${s.vip}:${s.port}/${s.protocol}`,
      algorithm: s.algorithm,
      backends: s.backends.map((b) => `${b.address}:${b.port}`),
      source: 'desired (datapath not loaded)',
    }))
  }

  // ---------------------------------------------------------------- identities

  /** Every identity known to the allocator (reserved ones included), with the endpoints using it. */
  listIdentities(): { id: number; labels: string[]; endpoints: string[] }[] {
    return this.#identity.list().map((i) => ({
      id: i.id,
      labels: i.labels,
      endpoints: this.#state.endpoints
        .filter((e) => e.identity === i.id)
        .map((e) => `${e.namespace}/${e.name}`),
    }))
  }

  /** The cluster's live nodes (this one only, when not in a cluster). */
  listNodes(): {
    name: string
    nodeIP: string
    podCidr: string
    routingMode: string
    health: string
  }[] {
    if (this.#cluster) return this.#cluster.nodes()
    return [
      {
        name: this.config.nodeName,
        nodeIP: this.config.nodeIP,
        podCidr: this.#ipam.cidr,
        routingMode: 'local',
        health: 'ready',
      },
    ]
  }

  /** The node's ipcache (prefix -> identity), as the datapath's LPM map should hold it. */
  ipcacheEntries(): { cidr: string; identity: number; source: string; tunnelEndpoint?: string }[] {
    return this.#identity.ipcache.dump().map((e) => ({
      cidr: e.cidr,
      identity: e.identity,
      source: e.source,
      ...(e.tunnelEndpoint !== undefined ? { tunnelEndpoint: e.tunnelEndpoint } : {}),
    }))
  }

  // ---------------------------------------------------------------- status

  /** Components, kernel features, counts. */
  status(): AgentStatus {
    return {
      version: VERSION,
      nodeName: this.config.nodeName,
      uptimeSeconds: Math.round((Date.now() - this.#started) / 1000),
      config: this.config,
      router: this.#ipam.router,
      components: {
        agent: { state: 'ok', detail: `state in ${this.config.stateDir}` },
        identity: {
          state: 'ok',
          detail: `${this.#identity.allocator.backend} allocator, ${this.#identity.list().length} identities`,
        },
        policy: {
          state: 'ok',
          detail: `revision ${this.#policy.repo.revision}, ${this.#policy.repo.rules.length} rules`,
        },
        ...(this.#cluster
          ? { cluster: { state: 'ok' as const, detail: this.#cluster.detail() } }
          : {}),
        datapath: this.#dp
          ? {
              state: 'ok',
              detail: `endpoint programs loaded, maps pinned under ${this.config.bpffsRoot}${this.#socketLb.length ? `; socket LB on ${this.#socketLb.join(', ')}` : ''}${this.#socketLb.length < this.config.socketLbCgroups.length ? '; socket LB FAILED on some cgroups (see the log)' : ''}`,
            }
          : {
              state: 'unavailable',
              detail: `NOT loaded (${this.#dpError ?? 'not started'}): policy, services and bandwidth are NOT enforced`,
            },
        l7proxy: this.#proxy
          ? this.#proxy.connected
            ? {
                state: 'ok',
                detail: `HTTP, Kafka and DNS proxy on ${this.#ipam.router}:${this.#proxyPort} (process ${this.#proxy.pid}, ${this.#proxy.origin})`,
              }
            : {
                state: 'degraded',
                detail: `L7 proxy process on port ${this.#proxyPort} is being restarted`,
              }
          : {
              state: 'unavailable',
              detail: `L7 proxy not running (${this.#proxyError}): L7 rules are NOT enforced`,
            },
      },
      kernel: {
        release: release(),
        btf: existsSync('/sys/kernel/btf/vmlinux'),
        bpffs: onBpffs(this.config.bpffsRoot),
        cgroup2: existsSync(`${this.config.cgroupRoot}/cgroup.controllers`),
        sch_fq: this.#dp?.bandwidth ? this.#dp.bandwidth.status().fq.fq : 'unknown',
      },
      bandwidthMode: this.#dp?.bandwidth
        ? this.#dp.bandwidth.status().summary
        : `not enforced (${this.#dp?.bandwidthError ?? 'datapath not loaded'})`,
      counts: {
        endpoints: this.#state.endpoints.length,
        policies: this.#state.policies.length,
        services: this.#state.services.length,
        identities: this.#identity.list().filter((i) => i.id >= 256).length,
      },
    }
  }

  // ---------------------------------------------------------------- internals

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(() => {
      if (!this.#running) {
        throw new AgentError('UNAVAILABLE', 'the agent is not running')
      }
      return fn()
    })
    this.#queue = next.catch(() => {})
    return next
  }

  #save(): void {
    this.#store.save(this.#state)
  }

  /** An endpoint's address in the ipcache (in a cluster: published, tunnel endpoint = node IP). */
  #publishIp(ip: string, identity: number): void {
    if (this.#cluster) this.#cluster.publish(`${ip}/32`, identity)
    else this.#identity.ipcache.upsert(`${ip}/32`, { identity })
  }

  #withdrawIp(ip: string): void {
    if (this.#cluster) this.#cluster.withdraw(`${ip}/32`)
    else this.#identity.ipcache.delete(`${ip}/32`)
  }

  #findEndpoint(namespace: string, name: string): EndpointRecord | undefined {
    return this.#state.endpoints.find((e) => e.namespace === namespace && e.name === name)
  }

  #mustFindEndpoint(ref: string, field = 'endpoint'): EndpointRecord {
    const { namespace, name } = parseRef(field, ref)
    const ep = this.#findEndpoint(namespace, name)
    if (!ep)
      throw new AgentError('NOT_FOUND', `endpoint ${namespace}/${name} not found`, {
        field,
      })
    return ep
  }

  async #newEndpointRecord(
    spec: Required<Pick<EndpointSpec, 'name' | 'namespace' | 'labels'>> & EndpointSpec,
  ): Promise<EndpointRecord> {
    const id = this.#freeEndpointId()
    let ip: string
    let hostIfname: string
    let netns: string | undefined
    if (spec.interface !== undefined) {
      if (agentDeviceNames(this.config.prefix).includes(spec.interface)) {
        throw invalid(
          'interface',
          `${spec.interface} is the agent's own router device; give the workload's interface`,
        )
      }
      if (!linkExists(spec.interface)) {
        throw new AgentError(
          'NOT_FOUND',
          `interface ${spec.interface} does not exist on this host`,
          {
            field: 'interface',
          },
        )
      }
      if (!linkIsUp(spec.interface)) {
        throw invalid('interface', `interface ${spec.interface} is down; bring it up first`)
      }
      const owner = this.#state.endpoints.find((e) => e.hostIfname === spec.interface)
      if (owner) {
        throw new AgentError(
          'CONFLICT',
          `interface ${spec.interface} already belongs to endpoint ${owner.namespace}/${owner.name}`,
          { field: 'interface' },
        )
      }
      const found = spec.ip ?? (await firstIpv4(spec.interface))
      if (!found) {
        throw invalid('ip', `interface ${spec.interface} has no IPv4 address; give one with --ip`)
      }
      ip = found
      if (this.#state.endpoints.some((e) => e.ipv4 === ip)) {
        throw new AgentError('CONFLICT', `address ${ip} is already used by another endpoint`, {
          field: 'ip',
        })
      }
      if (this.#ipam.contains(ip)) this.#ipam.claim(ip)
      hostIfname = spec.interface
    } else {
      const names = endpointNames(this.config.prefix, spec.namespace, spec.name)
      const taken = ownerOfNames(this.#state.endpoints, names)
      if (taken) {
        throw new AgentError(
          'CONFLICT',
          `${taken.object} already belongs to endpoint ${taken.owner.namespace}/${taken.owner.name}; endpoint ${spec.namespace}/${spec.name} will not adopt it`,
          { field: 'name' },
        )
      }
      if (spec.ip !== undefined) {
        this.#ipam.claim(spec.ip)
        ip = spec.ip
      } else {
        ip = this.#ipam.allocate()
      }
      hostIfname = names.hostIfname
      netns = names.netns
    }
    return {
      id,
      name: spec.name,
      namespace: spec.namespace,
      labels: spec.labels,
      mode: spec.interface !== undefined ? 'interface' : 'netns',
      ipv4: ip,
      hostIfname,
      ...(netns ? { netns } : {}),
      ...(spec.egressBandwidth ? { egressBandwidth: spec.egressBandwidth } : {}),
      ...(spec.ingressBandwidth ? { ingressBandwidth: spec.ingressBandwidth } : {}),
      createdAt: new Date().toISOString(),
    }
  }

  /**
   * Undo the creates a crash interrupted: each intent still in the state names the objects its
   * create was making (namespace, veth, datapath record and policy entries, host route); they are
   * removed unless a committed endpoint uses the same names. The client of such a create never got
   * an answer, so removing (rather than completing) is what it can expect.
   */
  async #rollBackCreates(): Promise<void> {
    if (this.#state.creating.length === 0) return
    for (const rec of this.#state.creating) {
      const owner = this.#state.endpoints.find(
        (e) => e.id === rec.id || e.hostIfname === rec.hostIfname || e.netns === rec.netns,
      )
      if (!owner) {
        await this.#unrealizeEndpoint(rec).catch((error: unknown) => {
          this.log.error(
            { err: error, endpoint: `${rec.namespace}/${rec.name}` },
            'rollback failed',
          )
        })
      }
      this.#notify('interrupted create rolled back', {
        endpoint: `${rec.namespace}/${rec.name}`,
        id: rec.id,
      })
    }
    this.#state.creating = []
    this.#save()
  }

  /**
   * Purge: remove namespaces and interfaces named like this instance's endpoint objects that no
   * endpoint owns any more (debris of crashes of agents that kept no intent).
   */
  async #removeStrayObjects(): Promise<void> {
    const prefix = this.config.prefix
    const links = listLinks().filter((l) => isEndpointObjectName(prefix, 'link', l))
    for (const ifname of links) await removeLink(ifname)
    for (const ns of listNetns().filter((n) => isEndpointObjectName(prefix, 'netns', n))) {
      await removeNetns(ns)
    }
  }

  /** Make the kernel objects of an endpoint match its record (idempotent). */
  async #realizeEndpoint(ep: EndpointRecord, routes?: ReadonlySet<string>): Promise<void> {
    if (ep.mode === 'netns') {
      const names = this.#netnsNames(ep)
      const net = {
        netns: names.netns,
        hostIfname: names.hostIfname,
        tmpIfname: names.tmpIfname,
        podIfname: names.podIfname,
        ip: ep.ipv4,
        router: this.#ipam.router,
        mac: names.mac,
      }
      // On restart, objects that are all there are left alone (no process spawned for them).
      if (!routes || !endpointNetworkIntact(net, routes)) await ensureEndpointNetwork(net)
    } else {
      await ensureInterfaceRoute(ep.hostIfname, ep.ipv4)
    }
    await this.#attach(ep)
  }

  /**
   * Program the datapath for an endpoint: its policy map first (by diff against what is pinned),
   * then its record and tc programs, then its bandwidth limits.
   */
  async #attach(ep: EndpointRecord): Promise<void> {
    const parts = this.#dp
    if (!parts || ep.identity === undefined) return
    const ms = this.#policy.mapState(ep.id)
    const entries = this.#policy.usage(ep.id).get(ep.id)?.entries ?? 0
    if (ms && entries > this.config.policyMapMaxEntries) {
      // Its policy does not fit: it keeps what its map holds (nothing, for a new endpoint).
      this.#policyBehind.add(ep.id)
      this.#countOverflow(ep.id)
      this.log.error(
        { endpoint: `${ep.namespace}/${ep.name}`, entries, limit: this.config.policyMapMaxEntries },
        'policy too large for its map',
      )
    } else if (ms) {
      const stamped = this.#policy.datapathEntries(ep.id)
      if (stamped) parts.dp.policyMap(ep.id).reconcile(stamped)
    }
    const ifindex = ifindexOf(ep.hostIfname)
    const stale = parts.dp.endpoints.byId(ep.id)
    if (stale && stale.ifindex !== ifindex) {
      // The interface was re-created (repair): forget the record of the old one, keep the policy.
      await parts.dp.detachEndpoint(ep.id, { keepPolicy: true })
    }
    const mac =
      ep.mode === 'netns'
        ? endpointNames(this.config.prefix, ep.namespace, ep.name).mac
        : macOf(ep.hostIfname)
    await parts.dp.attachEndpoint({
      id: ep.id,
      ifname: ep.hostIfname,
      ip: ep.ipv4,
      mac: mac ?? '00:00:00:00:00:00',
      identity: ep.identity,
    })
    if (parts.bandwidth) {
      parts.bandwidth.applyAnnotations(ep.id, {
        ...(ep.egressBandwidth ? { 'kubernetes.io/egress-bandwidth': ep.egressBandwidth } : {}),
        ...(ep.ingressBandwidth ? { 'kubernetes.io/ingress-bandwidth': ep.ingressBandwidth } : {}),
      })
    }
  }

  /**
   * The kernel names of a netns-mode endpoint: the ones its record holds (an endpoint made by an
   * older agent keeps its older namespace name), the rest derived from its name.
   */
  #netnsNames(ep: EndpointRecord): EndpointNames {
    const names = endpointNames(this.config.prefix, ep.namespace, ep.name)
    return { ...names, netns: ep.netns ?? names.netns, hostIfname: ep.hostIfname }
  }

  async #unrealizeEndpoint(ep: EndpointRecord): Promise<void> {
    if (this.#dp) {
      this.#dp.bandwidth?.removeEndpoint(ep.id)
      await this.#dp.dp.detachEndpoint(ep.id).catch((error: unknown) => {
        this.log.warn({ err: error, endpoint: ep.id }, 'detach failed')
      })
    }
    if (ep.mode === 'netns') {
      await removeEndpointNetwork(this.#netnsNames(ep))
    } else {
      await removeInterfaceRoute(ep.hostIfname, ep.ipv4)
    }
  }

  async #deleteEndpoint(ep: EndpointRecord): Promise<void> {
    await this.#unrealizeEndpoint(ep)
    this.#ipam.release(ep.ipv4)
    this.#withdrawIp(ep.ipv4)
    if (ep.identity !== undefined) await this.#identity.release(ep)
    this.#policy.untrack(ep.id)
    this.#state.endpoints = this.#state.endpoints.filter((e) => e !== ep)
    this.#refreshServices()
    this.#syncServices()
    await this.#applyPolicy()
  }

  /**
   * Start or adopt the L7 proxy process on the router address: the datapath DNATs L7-redirected
   * connections there; the proxy reads the original destination from the pinned maps, enforces the
   * policy this agent syncs to it, and sends every request back as an L7 record. It keeps serving
   * while the agent is down (records are buffered there, up to 10,000, then dropped and counted).
   */
  async #startProxy(): Promise<void> {
    const proxy = new ProxySupervisor({
      stateDir: this.config.stateDir,
      pinRoot: this.config.bpffsRoot,
      host: this.#ipam.router,
      port: this.config.proxyPort,
      log: this.log,
      snapshot: () => this.#proxySnapshot(),
      onRecord: (record) => {
        try {
          this.observer.ingestL7(record)
        } catch (error) {
          this.log.warn({ err: error }, 'L7 record rejected')
        }
      },
      onLost: (count) => this.observer.reportLost(LostEventSource.OBSERVER_EVENTS_QUEUE, count),
      onLearn: (event) => this.#learnFqdn(event),
      onExpire: (expired) => void this.#expireFqdn(expired),
    })
    try {
      const { port, pid, adopted } = await proxy.start()
      this.#proxyPort = port
      this.#proxy = proxy
      this.#proxyError = undefined
      this.log.info({ port, pid, adopted }, 'L7 proxy process')
    } catch (error) {
      this.#proxyError = (error as Error).message
      this.log.warn({ err: error }, 'L7 proxy could not start: L7 rules are NOT enforced')
    }
  }

  /** What the proxy process needs to answer `l7Rules` like this agent's repository. */
  #proxySnapshot(): PolicySnapshot {
    return {
      docs: this.#state.policies.map((p) => p.document),
      identities: [...this.#policy.repo.selectorCache.identities()].map((i) => i.data),
      endpoints: this.#state.endpoints.map((ep) => ({
        id: ep.id,
        labels: endpointIdentityLabels(ep),
      })),
      services: this.#state.services.map(serviceInfo),
      fqdns: [...this.#fqdnNames].map(([name, ips]) => ({ name, ips: [...ips] })),
    }
  }

  /**
   * Hold a CIDR identity (and an ipcache entry) for every prefix the policies name, so traffic
   * to and from those prefixes carries the identity the CIDR selectors select; release the ones
   * no policy names any more. Endpoint addresses keep their own identity (higher precedence).
   */
  async #syncCidrIdentities(): Promise<void> {
    const wanted = new Set(this.#policy.repo.cidrPrefixes().filter((c) => !c.includes(':')))
    for (const prefix of wanted) {
      if (this.#cidrIds.has(prefix)) continue
      const { id } = await this.#identity.allocator.allocateCIDR(prefix)
      this.#cidrIds.set(prefix, id)
      this.#identity.ipcache.upsert(prefix, { identity: id, source: 'generated' })
    }
    for (const [prefix, id] of [...this.#cidrIds]) {
      if (wanted.has(prefix)) continue
      this.#cidrIds.delete(prefix)
      this.#identity.ipcache.delete(prefix, 'generated')
      await this.#identity.allocator.release(id).catch(() => false)
    }
  }

  /** The DNS proxy learned name -> IPs: CIDR identities, ipcache, FQDN selectors, policy maps. */
  async #learnFqdn(event: DnsLearnEvent): Promise<void> {
    const ips = event.ips.filter((ip) => parseIpv4(ip) !== undefined)
    for (const ip of ips) {
      if (this.#fqdnIps.has(ip)) continue
      const { id } = await this.#identity.allocator.allocateCIDR(`${ip}/32`)
      this.#fqdnIps.set(ip, id)
      this.#identity.ipcache.upsert(`${ip}/32`, { identity: id, source: 'generated' })
    }
    this.#policy.repo.learnFqdn(event.name, ips)
    const known = this.#fqdnNames.get(event.name) ?? new Set<string>()
    for (const ip of ips) known.add(ip)
    this.#fqdnNames.set(event.name, known)
    await this.#applyPolicy()
    this.#notify('fqdn learned', { name: event.name, ips, ttl: event.ttl })
  }

  async #expireFqdn(expired: FqdnExpiry[]): Promise<void> {
    for (const e of expired) {
      // The name no longer selects these addresses: without this, a later identity for the same
      // /32 would be selected again by the stale name without a fresh lookup.
      this.#policy.repo.selectorCache.forgetFqdn(e.name, e.ips)
      const known = this.#fqdnNames.get(e.name)
      for (const ip of e.ips) known?.delete(ip)
      if (known?.size === 0) this.#fqdnNames.delete(e.name)
      for (const ip of e.ips) {
        const id = this.#fqdnIps.get(ip)
        if (id === undefined) continue
        this.#fqdnIps.delete(ip)
        this.#identity.ipcache.delete(`${ip}/32`, 'generated')
        await this.#identity.allocator.release(id).catch(() => false)
      }
    }
    await this.#applyPolicy()
  }

  /**
   * Bring every endpoint's policy up to date and hand the diffs to the datapath. An endpoint
   * whose new policy would overflow the policy maps keeps the one it has (counted, logged).
   */
  async #applyPolicy(): Promise<number> {
    const diffs = this.#policy.refreshAll()
    const fit = this.#policyFit()
    if (fit.over.length > 0 || fit.full) {
      // Endpoints over their limit, and (maps full) every endpoint a change would grow, wait.
      const held = new Set(fit.over.map((o) => o.id))
      if (fit.full)
        for (const [id, d] of diffs) if (d.upserts.length > d.deletes.length) held.add(id)
      for (const id of held) {
        diffs.delete(id)
        this.#policyBehind.add(id)
        this.#countOverflow(id)
      }
      this.log.error({ refused: fit.message }, 'policy not applied to some endpoints')
    }
    return this.#installPolicy(diffs)
  }

  /**
   * Refresh every endpoint's policy; when any would overflow the policy maps, call `rollback`
   * (which must put the repository back as it was), bring the map states back to what the
   * kernel holds, count it and throw TOO_LARGE. Nothing is written either way.
   */
  async #refreshPolicyOrRefuse(rollback: () => Promise<void>): Promise<Map<number, DatapathDiff>> {
    const diffs = this.#policy.refreshAll()
    const fit = this.#policyFit()
    if (fit.over.length === 0 && !fit.full) return diffs
    await rollback()
    this.#policy.refreshAll()
    for (const o of fit.over) this.#countOverflow(o.id)
    if (fit.over.length === 0) this.#countOverflow(undefined)
    throw new AgentError(
      'TOO_LARGE',
      `policy not applied: ${fit.message}; every endpoint keeps its previous policy`,
      { field: 'policy' },
    )
  }

  /** Hand computed diffs to the datapath (endpoints held back earlier are reconciled in full). */
  async #installPolicy(diffs: Map<number, DatapathDiff>): Promise<number> {
    // The proxy learns first: a redirect about to be installed then finds its rules there.
    await this.#proxy?.sync()
    let n = 0
    const dp = this.#dp?.dp
    if (this.#policyBehind.size > 0) {
      const fit = this.#policyFit()
      const stillOver = new Set(fit.over.map((o) => o.id))
      for (const id of [...this.#policyBehind]) {
        const entries = this.#policy.datapathEntries(id)
        diffs.delete(id)
        if (!entries) this.#policyBehind.delete(id)
        else if (!stillOver.has(id) && !fit.full) {
          const r = dp?.policyMap(id).reconcile(entries)
          n += (r?.upserted ?? 0) + (r?.deleted ?? 0)
          this.#policyBehind.delete(id)
        }
      }
    }
    for (const [id, d] of diffs) {
      n += d.upserts.length + d.deletes.length
      dp?.policyMap(id).apply(d)
    }
    return n
  }

  /**
   * Whether the computed policy of every endpoint fits: `over` lists the endpoints with more
   * entries than `policyMapMaxEntries`; `full` says the node's maps (all endpoints together)
   * cannot hold them; `message` says which, with the counts and limits.
   */
  #policyFit(): {
    over: { id: number; entries: number }[]
    full: boolean
    message: string
  } {
    const limit = this.config.policyMapMaxEntries
    const over: { id: number; entries: number }[] = []
    let entries = 0
    let indexRecords = 0
    for (const [id, u] of this.#policy.usage()) {
      entries += u.entries
      indexRecords += u.indexRecords
      if (u.entries > limit) over.push({ id, entries: u.entries })
    }
    const cap = this.#dp?.dp.policyCapacity()
    const full = cap !== undefined && (entries > cap.entries || indexRecords > cap.indexRecords)
    const parts = over.map(
      (o) =>
        `endpoint ${this.#endpointName(o.id)} would need ${o.entries} policy map entries, over the limit of ${limit} (policyMapMaxEntries)`,
    )
    if (full && cap)
      parts.push(
        `the node's policy maps would need ${entries} entries (capacity ${cap.entries}) and ${indexRecords} index records (capacity ${cap.indexRecords})`,
      )
    return { over, full, message: parts.join('; ') }
  }

  #endpointName(id: number): string {
    const ep =
      this.#state.endpoints.find((e) => e.id === id) ??
      this.#state.creating.find((e) => e.id === id)
    return ep ? `${ep.namespace}/${ep.name}` : `id ${id}`
  }

  #countOverflow(id: number | undefined): void {
    this.#policyOverflows.labels(id === undefined ? '' : this.#endpointName(id)).inc()
  }

  /** Make the datapath's services match the state (upserts are diffs inside ServiceMaps). */
  #syncServices(): void {
    const dp = this.#dp?.dp
    if (!dp) return
    const wanted = new Set<string>()
    for (const svc of this.#state.services) {
      if (svc.backends.length === 0) continue
      wanted.add(`${svc.vip}:${svc.port}/${svc.protocol}`)
      dp.services.upsert({
        address: svc.vip,
        port: svc.port,
        protocol: svc.protocol,
        algorithm: svc.algorithm,
        backends: svc.backends.map((b) => ({ address: b.address, port: b.port })),
      })
    }
    for (const s of dp.services.list()) {
      if (!wanted.has(`${s.address}:${s.port}/${s.protocol}`))
        dp.services.delete(s.address, s.port, s.protocol)
    }
  }

  /** Recompute service backends (selectors pick up new endpoints; deleted ones drop out). */
  #refreshServices(): void {
    for (const svc of this.#state.services) {
      svc.backends = this.#resolveBackends(
        svc,
        svc.backends.filter((b) => !b.endpoint || !svc.selector).map(backendRef),
      )
    }
  }

  async #reconcile(): Promise<void> {
    const routes = await hostRoutes()
    for (const ep of this.#state.endpoints) {
      try {
        this.#policy.track(ep)
        await this.#realizeEndpoint(ep, routes)
      } catch (error) {
        this.log.error({ err: error, endpoint: `${ep.namespace}/${ep.name}` }, 'reconcile failed')
      }
    }
    try {
      this.#syncServices()
    } catch (error) {
      this.log.error({ err: error }, 'service reconcile failed')
    }
  }

  #view(ep: EndpointRecord): EndpointView {
    const missing: string[] = []
    if (ep.mode === 'netns' && ep.netns && !netnsExists(ep.netns)) missing.push('namespace')
    if (ifindexOf(ep.hostIfname) === undefined) missing.push(`interface ${ep.hostIfname}`)
    return {
      ...ep,
      health: missing.length === 0 ? 'ready' : `missing ${missing.join(', ')}`,
      enforcing: this.#dp?.dp.endpoints.byId(ep.id) !== undefined,
      ...this.#bandwidthView(ep),
    }
  }

  /** The limits the datapath holds for an endpoint (read back from `mb_throttle`). */
  #bandwidthView(ep: EndpointRecord): Pick<EndpointView, 'bandwidth'> {
    const bw = this.#dp?.bandwidth
    if (!bw || (!ep.egressBandwidth && !ep.ingressBandwidth)) return {}
    const out: NonNullable<EndpointView['bandwidth']> = {}
    for (const dir of ['egress', 'ingress'] as const) {
      const e = bw.entry(ep.id, dir)
      if (e) out[dir] = { bytesPerSecond: Number(e.bytesPerSecond), mode: e.mode }
    }
    return { bandwidth: out }
  }

  #freeEndpointId(): number {
    const used = new Set(this.#state.endpoints.map((e) => e.id))
    for (let id = 1; id <= 65535; id++) if (!used.has(id)) return id
    throw new AgentError('EXHAUSTED', 'no free endpoint id')
  }

  #freeServiceId(): number {
    const used = new Set(this.#state.services.map((s) => s.id))
    for (let id = 1; id <= 65535; id++) if (!used.has(id)) return id
    throw new AgentError('EXHAUSTED', 'no free service id')
  }

  #resolveBackends(svc: ServiceRecord, explicit: string[] | undefined): ServiceBackend[] {
    const out: ServiceBackend[] = []
    if (svc.selector) {
      const sel = svc.selector
      for (const ep of this.#state.endpoints) {
        if (ep.namespace !== svc.namespace) continue
        if (Object.entries(sel).every(([k, v]) => ep.labels[k] === v)) {
          out.push({
            address: ep.ipv4,
            port: svc.targetPort,
            endpoint: `${ep.namespace}/${ep.name}`,
          })
        }
      }
    }
    for (const [i, ref] of (explicit ?? []).entries()) {
      const field = `backends[${i}]`
      const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(ref)
      if (m) {
        const port = m[2] === undefined ? svc.targetPort : validatePort(field, Number(m[2]))
        if (parseIpv4(m[1]!) === undefined)
          throw invalid(field, `bad address ${JSON.stringify(ref)}`)
        out.push({ address: m[1]!, port })
        continue
      }
      const ep = this.#state.endpoints.find(
        (e) => `${e.namespace}/${e.name}` === (ref.includes('/') ? ref : `${svc.namespace}/${ref}`),
      )
      if (!ep) {
        // An endpoint backend that is gone (deleted) drops out of the list.
        if (svc.backends.some((b) => b.endpoint === ref)) continue
        throw new AgentError('NOT_FOUND', `${field}: endpoint ${ref} not found`, { field })
      }
      if (!out.some((b) => b.address === ep.ipv4)) {
        out.push({ address: ep.ipv4, port: svc.targetPort, endpoint: `${ep.namespace}/${ep.name}` })
      }
    }
    return out
  }
}

/** Resolve after the event loop has had a turn (pending I/O served), unlike `await` alone. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** A service as policy `toServices` selectors see it. */
function serviceInfo(svc: ServiceRecord) {
  return {
    namespace: svc.namespace,
    name: svc.name,
    ...(svc.selector ? { selector: svc.selector } : {}),
    backendIps: svc.backends.filter((b) => !b.endpoint).map((b) => b.address),
  }
}

/** A policy as `policy get` lists it. */
export interface PolicyView {
  key: string
  kind: string
  namespace?: string
  name: string
  importedAt: string
}

function policyView(p: PolicyRecord): PolicyView {
  return {
    key: p.key,
    kind: p.kind,
    ...(p.namespace !== undefined ? { namespace: p.namespace } : {}),
    name: p.name,
    importedAt: p.importedAt,
  }
}

function backendRef(b: ServiceBackend): string {
  return b.endpoint ?? `${b.address}:${b.port}`
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}

/** Split `namespace/name` (or `name`, meaning `default/name`) and validate both parts. */
function parseRef(field: string, ref: unknown): { namespace: string; name: string } {
  if (typeof ref !== 'string')
    throw invalid(field, `expected namespace/name, got ${JSON.stringify(ref)}`)
  const parts = ref.split('/')
  if (parts.length > 2) throw invalid(field, `expected namespace/name, got ${JSON.stringify(ref)}`)
  const namespace = parts.length === 2 ? parts[0] : 'default'
  const name = parts.length === 2 ? parts[1] : parts[0]
  return {
    namespace: validateName(`${field} namespace`, namespace),
    name: validateName(field, name),
  }
}

function validatePort(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw invalid(field, `expected a port 1..65535, got ${JSON.stringify(value)}`)
  }
  return value
}

function normalizeEndpointSpec(
  input: unknown,
): Required<Pick<EndpointSpec, 'name' | 'namespace' | 'labels'>> & EndpointSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalid('endpoint', 'expected an object { name, namespace?, labels?, ... }')
  }
  const s = input as Record<string, unknown>
  const known = [
    'name',
    'namespace',
    'labels',
    'interface',
    'ip',
    'egressBandwidth',
    'ingressBandwidth',
  ]
  for (const k of Object.keys(s)) {
    if (!known.includes(k)) throw invalid(k, `unknown field; known fields are ${known.join(', ')}`)
  }
  const out: Required<Pick<EndpointSpec, 'name' | 'namespace' | 'labels'>> & EndpointSpec = {
    name: validateName('name', s.name),
    namespace: validateName('namespace', s.namespace ?? 'default'),
    labels: validateLabels('labels', s.labels),
  }
  if (s.interface !== undefined) out.interface = validateIfname('interface', s.interface)
  if (s.ip !== undefined) {
    if (typeof s.ip !== 'string' || parseIpv4(s.ip) === undefined) {
      throw invalid('ip', `expected an IPv4 address, got ${JSON.stringify(s.ip)}`)
    }
    const special = specialRange({ network: parseIpv4(s.ip)!, length: 32 })
    if (special) throw invalid('ip', `${s.ip} is in ${special}, not an endpoint address`)
    out.ip = s.ip
  }
  for (const k of ['egressBandwidth', 'ingressBandwidth'] as const) {
    const v = s[k]
    if (v === undefined) continue
    if (typeof v !== 'string') {
      throw invalid(k, `expected a bandwidth quantity like 10M or 1Gi, got ${JSON.stringify(v)}`)
    }
    try {
      parseBandwidth(v, k)
    } catch (error) {
      throw new AgentError('INVALID_INPUT', (error as Error).message, { field: k, cause: error })
    }
    out[k] = v
  }
  return out
}

function normalizeServiceSpec(
  input: unknown,
): Required<Omit<ServiceSpec, 'selector' | 'backends'>> &
  Pick<ServiceSpec, 'selector' | 'backends'> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalid('service', 'expected an object { name, vip, port, ... }')
  }
  const s = input as Record<string, unknown>
  const known = [
    'name',
    'namespace',
    'vip',
    'port',
    'protocol',
    'targetPort',
    'algorithm',
    'selector',
    'backends',
  ]
  for (const k of Object.keys(s)) {
    if (!known.includes(k)) throw invalid(k, `unknown field; known fields are ${known.join(', ')}`)
  }
  if (typeof s.vip !== 'string' || parseIpv4(s.vip) === undefined) {
    throw invalid('vip', `expected an IPv4 address, got ${JSON.stringify(s.vip)}`)
  }
  const protocol = s.protocol ?? 'TCP'
  if (protocol !== 'TCP' && protocol !== 'UDP') {
    throw invalid('protocol', `expected TCP or UDP, got ${JSON.stringify(protocol)}`)
  }
  const algorithm = s.algorithm ?? 'random'
  if (algorithm !== 'random' && algorithm !== 'maglev') {
    throw invalid('algorithm', `expected random or maglev, got ${JSON.stringify(algorithm)}`)
  }
  const port = validatePort('port', s.port)
  const selector = s.selector === undefined ? undefined : validateLabels('selector', s.selector)
  let backends: string[] | undefined
  if (s.backends !== undefined) {
    if (!Array.isArray(s.backends) || !s.backends.every((b) => typeof b === 'string')) {
      throw invalid('backends', 'expected a list of address:port or endpoint names')
    }
    backends = s.backends as string[]
  }
  if (!selector && !backends?.length) {
    throw invalid('backends', 'a service needs a selector or at least one backend')
  }
  return {
    name: validateName('name', s.name),
    namespace: validateName('namespace', s.namespace ?? 'default'),
    vip: s.vip,
    port,
    protocol,
    targetPort: s.targetPort === undefined ? port : validatePort('targetPort', s.targetPort),
    algorithm,
    ...(selector ? { selector } : {}),
    ...(backends ? { backends } : {}),
  }
}

/** The L7 request of a trace API call, checked field by field (policy validates the rest). */
/** A traced direction's line: verdict (AUDIT when only an audit policy denies), why, and the
 * policies that decided it (the ones the flow of that packet names). */
function directionText(d: DirectionTrace): string {
  const by = d.policies.length
    ? ` [${d.audit ? 'would be denied by' : 'decided by'} ${d.policies.join(', ')}]`
    : ''
  return `${d.audit ? 'audit (allowed)' : d.verdict}: ${d.explanation}${by}`
}

function traceL7Request(q: { http?: unknown; kafka?: unknown; dns?: unknown }): TraceL7 {
  const out: TraceL7 = {}
  const record = (what: string, v: unknown): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw invalid(what, `expected an object, got ${JSON.stringify(v)}`)
    return v as Record<string, unknown>
  }
  const text = (what: string, v: unknown): string => {
    if (typeof v !== 'string') throw invalid(what, `expected a string, got ${JSON.stringify(v)}`)
    return v
  }
  if (q.http !== undefined) {
    const h = record('http', q.http)
    const http: NonNullable<TraceL7['http']> = {
      method: text('http.method', h.method),
      path: text('http.path', h.path),
    }
    if (h.host !== undefined) http.host = text('http.host', h.host)
    if (h.headers !== undefined) {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(record('http.headers', h.headers)))
        headers[k] = text(`http.headers.${k}`, v)
      http.headers = headers
    }
    out.http = http
  }
  if (q.kafka !== undefined) {
    const k = record('kafka', q.kafka)
    if (typeof k.apiKey !== 'string' && !Number.isInteger(k.apiKey))
      throw invalid('kafka.apiKey', `expected a name or number, got ${JSON.stringify(k.apiKey)}`)
    const kafka: NonNullable<TraceL7['kafka']> = { apiKey: k.apiKey as string | number }
    if (k.apiVersion !== undefined) {
      if (!Number.isInteger(k.apiVersion) || (k.apiVersion as number) < 0)
        throw invalid(
          'kafka.apiVersion',
          `expected an integer >= 0, got ${JSON.stringify(k.apiVersion)}`,
        )
      kafka.apiVersion = k.apiVersion as number
    }
    if (k.clientID !== undefined) kafka.clientID = text('kafka.clientID', k.clientID)
    if (k.topics !== undefined) {
      if (!Array.isArray(k.topics)) throw invalid('kafka.topics', 'expected a list of topics')
      kafka.topics = k.topics.map((t, i) => text(`kafka.topics[${i}]`, t))
    }
    out.kafka = kafka
  }
  if (q.dns !== undefined) out.dns = { name: text('dns.name', record('dns', q.dns).name) }
  return out
}
