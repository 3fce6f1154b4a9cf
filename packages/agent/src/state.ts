import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { AgentError } from './errors'

/** One endpoint as the agent keeps it. */
export interface EndpointRecord {
  /** Node-local endpoint id (1..65535), used in map keys and pin names. */
  id: number
  name: string
  namespace: string
  labels: Record<string, string>
  /** `netns`: the agent made a namespace and veth; `interface`: an existing interface. */
  mode: 'netns' | 'interface'
  ipv4: string
  /** The interface the endpoint's programs sit on (host side of the veth, or the given one). */
  hostIfname: string
  /** Network namespace name (`netns` mode). */
  netns?: string
  /** Security identity, when an identity allocator is available. */
  identity?: number
  /** `kubernetes.io/egress-bandwidth` style rate, as given. */
  egressBandwidth?: string
  /** `kubernetes.io/ingress-bandwidth` style rate, as given. */
  ingressBandwidth?: string
  createdAt: string
}

/** One imported policy document (kept as given, so a restart re-parses the same text). */
export interface PolicyRecord {
  /** `<kind>/<namespace>/<name>`. */
  key: string
  kind: string
  name: string
  namespace?: string
  /** The document as JSON. */
  document: unknown
  importedAt: string
}

/** A backend of a service: an endpoint (by namespace/name) or a plain address. */
export interface ServiceBackend {
  address: string
  port: number
  endpoint?: string
}

/** One service (VIP:port/protocol -> backends). */
export interface ServiceRecord {
  /** `<namespace>/<name>`. */
  key: string
  name: string
  namespace: string
  /** Node-local service id (1..65535). */
  id: number
  vip: string
  port: number
  protocol: 'TCP' | 'UDP'
  algorithm: 'random' | 'maglev'
  /** Endpoint selector (labels) or explicit backends. */
  selector?: Record<string, string>
  targetPort: number
  backends: ServiceBackend[]
  createdAt: string
}

/** Everything the agent must remember across restarts. */
export interface AgentState {
  version: 1
  endpoints: EndpointRecord[]
  policies: PolicyRecord[]
  services: ServiceRecord[]
  /**
   * Endpoints being created: written (atomically) before any of their kernel objects is made and
   * dropped in the same write that commits or abandons the create, so that an agent restarted
   * after a crash knows which half-made objects to remove.
   */
  creating: EndpointRecord[]
}

/** An empty state. */
export function emptyState(): AgentState {
  return { version: 1, endpoints: [], policies: [], services: [], creating: [] }
}

/**
 * The agent's state file, `<stateDir>/state.json`. Writes go to a temporary file that is fsynced
 * and renamed over the old one, so a crash leaves either the old or the new state, never half.
 */
export class StateStore {
  readonly path: string

  constructor(stateDir: string) {
    this.path = join(stateDir, 'state.json')
  }

  /** Read the state; an absent file is an empty state, a corrupt one an error (never overwritten). */
  load(): AgentState {
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState()
      throw error
    }
    try {
      const doc = JSON.parse(text) as Partial<AgentState>
      if (doc.version !== 1) throw new Error(`unsupported state version ${String(doc.version)}`)
      return {
        version: 1,
        endpoints: doc.endpoints ?? [],
        policies: doc.policies ?? [],
        services: doc.services ?? [],
        creating: doc.creating ?? [],
      }
    } catch (error) {
      throw new AgentError(
        'INTERNAL',
        `state file ${this.path} is unreadable (${(error as Error).message}); move it away to start empty`,
        { cause: error },
      )
    }
  }

  /** Write the state atomically (temp file + fsync + rename + directory fsync). */
  save(state: AgentState): void {
    const dir = dirname(this.path)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const tmp = `${this.path}.${process.pid}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, `${JSON.stringify(state, null, 2)}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.path)
    const dfd = openSync(dir, 'r')
    try {
      fsyncSync(dfd)
    } finally {
      closeSync(dfd)
    }
  }
}
