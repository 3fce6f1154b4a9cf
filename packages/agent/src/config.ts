import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { isAbsolute } from 'node:path'
import { DEFAULT_REDACTED_HEADERS } from '@membrane/flows'
import { isNodeName, NODE_NAME_RULE, parseIpv4 } from '@membrane/types'
import { parse as parseYaml } from 'yaml'
import { AgentError, invalid } from './errors'
import { parsePool } from './internal/ipam'
import { validatePrefix } from './internal/names'

/** How pods reach other nodes' pods (see {@link AgentConfig.routingMode}). */
export type RoutingMode = 'tunnel' | 'native'

/** Where identities (and the ipcache) are kept. */
export type KvstoreConfig = { type: 'memory' } | { type: 'etcd'; endpoints: string[] }

/** The agent's configuration. Every field has a default; see {@link defaultConfig}. */
export interface AgentConfig {
  /** bpffs directory the datapath pins maps and programs under. Default `/sys/fs/bpf/membrane`. */
  bpffsRoot: string
  /** Directory of the agent's desired state (written atomically). Default `/var/lib/membrane`. */
  stateDir: string
  /** The API's unix socket (mode 0600, root only). Default `/var/run/membrane/membrane.sock`. */
  socketPath: string
  /** Host-scope IPv4 pool for endpoints; its first address is the router. Default `10.200.0.0/16`. */
  ipamPool: string
  /** TCP port of the metrics and web UI listener; 0 picks a free port. Default 9962. */
  metricsPort: number
  /** Address the metrics/UI listener binds. Default `127.0.0.1`. */
  metricsAddress: string
  /** Identity store. Default `{ type: 'memory' }`. */
  kvstore: KvstoreConfig
  /** pino log level. Default `info`. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /**
   * Starts every interface and namespace name this agent makes (1..6 characters), so two agents
   * (a test and the demo) never touch each other's objects. Default `mb`.
   */
  prefix: string
  /** cgroup v2 mount for socket-level load balancing. Default `/sys/fs/cgroup`. */
  cgroupRoot: string
  /**
   * This node's name in flows and, with kvstore etcd, in etcd keys (then 1..253 characters of
   * [A-Za-z0-9._-], starting with a letter or digit). Default: the host name.
   */
  nodeName: string
  /** This node's labels (`key=value`), carried by every flow as node_labels. Default none. */
  nodeLabels: string[]
  /** The cluster's name, carried by local endpoints in flows (cluster_name). Default `default`. */
  clusterName: string
  /**
   * This node's underlay IPv4 address: the tunnel endpoint other nodes send its pods' traffic
   * to. Required with `clusterPoolCidr`. Default none.
   */
  nodeIP: string
  /**
   * Join a cluster: the IPv4 pool every node's pod CIDR is cut from (needs kvstore etcd and
   * `nodeIP`). The node's endpoint pool is then its pod CIDR, claimed through etcd, instead of
   * `ipamPool`. Default none: a single node.
   */
  clusterPoolCidr: string
  /** Length of each node's pod CIDR in the cluster pool. Default 24. */
  clusterPoolMaskSize: number
  /** How pods reach other nodes' pods: `tunnel` (VXLAN, VNI = identity) or `native` routes. Default `tunnel`. */
  routingMode: RoutingMode
  /** Port of the L7 proxy on the router address; 0 picks a free port. Default 15001. */
  proxyPort: number
  /**
   * cgroup v2 directories whose processes get socket-level load balancing (connect-time
   * translation of service addresses, also from the host namespace). Default none.
   */
  socketLbCgroups: string[]
  /**
   * Longest one policy import may spend parsing (in a worker thread, off the API's event loop)
   * before it is stopped and answered `TOO_LARGE` (413). Default 60000 ms.
   */
  policyParseTimeoutMs: number
  /**
   * Most policy map entries one endpoint may hold (Cilium's `bpf-policy-map-max`). An import
   * that would give an endpoint more, or fill the node's policy maps, is refused with
   * `TOO_LARGE` naming the endpoint and the count; every endpoint keeps its previous policy.
   * Default 16384.
   */
  policyMapMaxEntries: number
  /**
   * Redact L7 flows (as Hubble's `hubble-redact-*` options do): HTTP URL queries, URL passwords
   * and the values of the `redactHttpHeaders`. Default true; false keeps them (debugging).
   */
  redactFlows: boolean
  /** HTTP headers whose values are redacted in flows. Default authorization, proxy-authorization, cookie, set-cookie, x-api-key, x-auth-token. */
  redactHttpHeaders: string[]
  /**
   * Namespaces whose policies run in audit mode (as if each had the annotation
   * `policy.membrane.io/audit: "true"`): what they would deny is reported as AUDIT and passes.
   * Default none.
   */
  policyAuditNamespaces: string[]
}

/** The defaults of every configuration field. */
export function defaultConfig(): AgentConfig {
  return {
    bpffsRoot: '/sys/fs/bpf/membrane',
    stateDir: '/var/lib/membrane',
    socketPath: '/var/run/membrane/membrane.sock',
    ipamPool: '10.200.0.0/16',
    metricsPort: 9962,
    metricsAddress: '127.0.0.1',
    kvstore: { type: 'memory' },
    logLevel: 'info',
    prefix: 'mb',
    cgroupRoot: '/sys/fs/cgroup',
    nodeName: hostname(),
    nodeLabels: [],
    clusterName: 'default',
    nodeIP: '',
    clusterPoolCidr: '',
    clusterPoolMaskSize: 24,
    routingMode: 'tunnel',
    proxyPort: 15001,
    socketLbCgroups: [],
    policyParseTimeoutMs: 60_000,
    policyMapMaxEntries: 16_384,
    redactFlows: true,
    redactHttpHeaders: [...DEFAULT_REDACTED_HEADERS],
    policyAuditNamespaces: [],
  }
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
const KEYS = Object.keys(defaultConfig()) as (keyof AgentConfig)[]

/**
 * Validate a partial configuration (from a file, flags or code) and merge it over the defaults.
 * Unknown keys and bad values are errors naming the field.
 */
export function resolveConfig(
  partial: Record<string, unknown> = {},
  source = 'config',
  options: { complete?: boolean } = {},
): AgentConfig {
  const out = defaultConfig()
  for (const [key, value] of Object.entries(partial)) {
    if (value === undefined) continue
    const field = `${source}.${key}`
    if (!KEYS.includes(key as keyof AgentConfig)) {
      throw invalid(field, `unknown setting; known settings are ${KEYS.join(', ')}`)
    }
    switch (key as keyof AgentConfig) {
      case 'bpffsRoot':
      case 'stateDir':
      case 'socketPath':
      case 'cgroupRoot':
        if (typeof value !== 'string' || !isAbsolute(value) || value.includes('\0')) {
          throw invalid(field, `expected an absolute path, got ${JSON.stringify(value)}`)
        }
        out[key as 'stateDir'] = value
        break
      case 'ipamPool':
        parsePool(field, value)
        out.ipamPool = value as string
        break
      case 'nodeIP':
        if (value !== '' && (typeof value !== 'string' || parseIpv4(value) === undefined)) {
          throw invalid(
            field,
            `expected an IPv4 address like 192.168.0.10, got ${JSON.stringify(value)}`,
          )
        }
        out.nodeIP = value as string
        break
      case 'clusterPoolCidr':
        if (value !== '') parsePool(field, value)
        out.clusterPoolCidr = value as string
        break
      case 'routingMode':
        if (value !== 'tunnel' && value !== 'native') {
          throw invalid(field, `expected tunnel or native, got ${JSON.stringify(value)}`)
        }
        out.routingMode = value
        break
      case 'clusterPoolMaskSize':
      case 'metricsPort':
      case 'proxyPort': {
        if (key === 'clusterPoolMaskSize') {
          const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value
          if (typeof n !== 'number' || !Number.isInteger(n) || n < 9 || n > 30) {
            throw invalid(field, `expected a prefix length 9..30, got ${JSON.stringify(value)}`)
          }
          out.clusterPoolMaskSize = n
          break
        }
        const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
          throw invalid(field, `expected a port number 0..65535, got ${JSON.stringify(value)}`)
        }
        out[key as 'metricsPort'] = n
        break
      }
      case 'policyParseTimeoutMs': {
        const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 600_000) {
          throw invalid(field, `expected milliseconds 1..600000, got ${JSON.stringify(value)}`)
        }
        out.policyParseTimeoutMs = n
        break
      }
      case 'policyMapMaxEntries': {
        const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1_048_576) {
          throw invalid(field, `expected an entry count 1..1048576, got ${JSON.stringify(value)}`)
        }
        out.policyMapMaxEntries = n
        break
      }
      case 'redactFlows':
        if (value !== true && value !== false && value !== 'true' && value !== 'false') {
          throw invalid(field, `expected true or false, got ${JSON.stringify(value)}`)
        }
        out.redactFlows = value === true || value === 'true'
        break
      case 'redactHttpHeaders': {
        const list = typeof value === 'string' ? value.split(',').filter(Boolean) : value
        if (
          !Array.isArray(list) ||
          !list.every((v) => typeof v === 'string' && /^[A-Za-z0-9-]+$/.test(v))
        ) {
          throw invalid(field, `expected a list of HTTP header names, got ${JSON.stringify(value)}`)
        }
        out.redactHttpHeaders = list as string[]
        break
      }
      case 'nodeLabels': {
        const list = typeof value === 'string' ? value.split(',').filter(Boolean) : value
        if (
          !Array.isArray(list) ||
          !list.every((v) => typeof v === 'string' && /^[A-Za-z0-9_.\-/]+=[A-Za-z0-9_.-]*$/.test(v))
        ) {
          throw invalid(field, `expected a list of key=value labels, got ${JSON.stringify(value)}`)
        }
        out.nodeLabels = list as string[]
        break
      }
      case 'metricsAddress':
      case 'clusterName':
      case 'nodeName':
        if (typeof value !== 'string' || value === '') {
          throw invalid(field, `expected a non-empty string, got ${JSON.stringify(value)}`)
        }
        out[key as 'nodeName'] = value
        break
      case 'logLevel':
        if (!LEVELS.includes(value as (typeof LEVELS)[number])) {
          throw invalid(field, `expected one of ${LEVELS.join(', ')}, got ${JSON.stringify(value)}`)
        }
        out.logLevel = value as AgentConfig['logLevel']
        break
      case 'prefix':
        out.prefix = validatePrefix(field, value)
        break
      case 'kvstore':
        out.kvstore = parseKvstore(field, value)
        break
      case 'socketLbCgroups': {
        const list = typeof value === 'string' ? value.split(',').filter(Boolean) : value
        if (
          !Array.isArray(list) ||
          !list.every((v) => typeof v === 'string' && isAbsolute(v) && !v.includes('\0'))
        ) {
          throw invalid(
            field,
            `expected a list of absolute cgroup v2 paths, got ${JSON.stringify(value)}`,
          )
        }
        out.socketLbCgroups = list as string[]
        break
      }
      case 'policyAuditNamespaces': {
        const list = typeof value === 'string' ? value.split(',').filter(Boolean) : value
        if (
          !Array.isArray(list) ||
          !list.every(
            (v) => typeof v === 'string' && /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v),
          )
        ) {
          throw invalid(field, `expected a list of namespace names, got ${JSON.stringify(value)}`)
        }
        out.policyAuditNamespaces = list as string[]
        break
      }
    }
  }
  if (options.complete !== false) checkCluster(out, source)
  return out
}

/**
 * The settings that only make sense together: etcd keys need key-safe node names (two names,
 * two keys), and a cluster needs etcd, a node IP and a pool its pod CIDRs fit in.
 */
function checkCluster(config: AgentConfig, source: string): void {
  if (config.kvstore.type === 'etcd' && !isNodeName(config.nodeName)) {
    throw invalid(
      `${source}.nodeName`,
      `with kvstore etcd the node name is part of etcd keys: expected ${NODE_NAME_RULE}, got ${JSON.stringify(config.nodeName)}`,
    )
  }
  if (config.clusterPoolCidr === '') return
  if (config.kvstore.type !== 'etcd') {
    throw invalid(
      `${source}.clusterPoolCidr`,
      'a cluster keeps its state in etcd: set kvstore to { type: etcd, endpoints: [...] }',
    )
  }
  if (config.nodeIP === '') {
    throw invalid(
      `${source}.nodeIP`,
      'required with clusterPoolCidr: the IPv4 address other nodes reach this node at',
    )
  }
  const poolLength = Number(config.clusterPoolCidr.split('/')[1])
  if (config.clusterPoolMaskSize <= poolLength || config.clusterPoolMaskSize > 28) {
    throw invalid(
      `${source}.clusterPoolMaskSize`,
      `expected a length longer than the pool's /${poolLength} and at most /28 (a pod CIDR holds the router and endpoints), got ${config.clusterPoolMaskSize}`,
    )
  }
}

function parseKvstore(field: string, value: unknown): KvstoreConfig {
  if (value === 'memory') return { type: 'memory' }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const v = value as { type?: unknown; endpoints?: unknown }
    if (v.type === 'memory') return { type: 'memory' }
    if (v.type === 'etcd') {
      const endpoints = v.endpoints
      if (
        !Array.isArray(endpoints) ||
        endpoints.length === 0 ||
        !endpoints.every((e) => typeof e === 'string' && /^https?:\/\/[^\s]+$/.test(e))
      ) {
        throw invalid(
          `${field}.endpoints`,
          `expected a list of http(s)://host:port URLs, got ${JSON.stringify(endpoints)}`,
        )
      }
      return { type: 'etcd', endpoints: endpoints as string[] }
    }
  }
  throw invalid(
    field,
    `expected "memory" or { type: etcd, endpoints: [...] }, got ${JSON.stringify(value)}`,
  )
}

/** Read a YAML or JSON configuration file (keys as in {@link AgentConfig}). */
function readConfigFile(path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new AgentError(
      'INVALID_INPUT',
      `cannot read config file ${path}: ${(error as Error).message}`,
      {
        field: '--config',
        cause: error,
      },
    )
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (error) {
    throw invalid(path, `not valid YAML/JSON: ${(error as Error).message}`)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw invalid(path, 'expected a mapping of settings at the top level')
  }
  return doc as Record<string, unknown>
}

/**
 * The configuration of `membrane agent`: defaults, then the file (if any), then flags.
 * @example loadConfig({ file: '/etc/membrane.yaml', flags: { metricsPort: 0 } })
 */
export function loadConfig(
  options: { file?: string; flags?: Record<string, unknown> } = {},
): AgentConfig {
  const fromFile = options.file ? readConfigFile(options.file) : {}
  const merged = resolveConfig(fromFile, options.file ?? 'config', { complete: false })
  const flags = Object.fromEntries(
    Object.entries(options.flags ?? {}).filter(([, v]) => v !== undefined),
  )
  return { ...merged, ...resolveConfig({ ...merged, ...flags }, 'flags') }
}
