import { RESERVED_IDENTITY_BY_NAME, RESERVED_IDENTITY_NAMES } from '@membrane/types'
import type { Policy, Service } from './types'

/** What the agent knows about the owner of an IP address. */
export interface EndpointInfo {
  /** Membrane endpoint id (for local endpoints). */
  endpointId?: number
  identity?: number
  namespace?: string
  podName?: string
  /** `source:key=value` labels. */
  labels?: string[]
  workloads?: { name: string; kind: string }[]
  /** Cluster the endpoint belongs to (Endpoint.cluster_name). */
  clusterName?: string
}

/**
 * Metadata lookups the agent supplies to turn numbers into names. Every method is optional and
 * must be cheap (called per flow): back it with maps, not with I/O.
 */
export interface Enricher {
  /** Labels of a security identity (`source:key=value`), e.g. ['k8s:app=web']. */
  identityLabels?(identity: number): readonly string[] | undefined
  /** The endpoint or workload that owns an IP address. */
  endpointByIp?(ip: string): EndpointInfo | undefined
  /** The service whose frontend (VIP) is ip:port/protocol (protocol: IP protocol number). */
  serviceByFrontend?(ip: string, port: number, protocol: number): Service | undefined
  /** The service an endpoint address is a backend of (for source_service / destination_service). */
  serviceOfBackend?(ip: string): Service | undefined
  /** DNS names an IP address is known by (from the DNS proxy). */
  namesOf?(ip: string): readonly string[] | undefined
  /** Interface name of an ifindex. */
  interfaceName?(ifindex: number): string | undefined
  /**
   * Policy attribution of a datapath verdict: the policies behind rule set `ruleSet` (the id
   * the policy map entry and the event carry), or with `ruleSet` 0 (no entry matched) the
   * policies that put endpoint `endpointId` into default deny in `direction` (1 ingress,
   * 2 egress). Return a stable array (it is shared by flows, not copied).
   */
  policiesOf?(ruleSet: number, endpointId: number, direction: number): readonly Policy[] | undefined
  /** The policies named by refs (`Kind/namespace/name`), for L7 records. Stable arrays too. */
  policiesByRef?(refs: readonly string[]): readonly Policy[] | undefined
}

/** Labels of Cilium's reserved identities, used when the enricher knows nothing better. */
export const RESERVED_IDENTITY_LABELS: Readonly<Record<number, readonly string[]>> = Object.freeze(
  Object.fromEntries(
    RESERVED_IDENTITY_NAMES.map((name) => [
      RESERVED_IDENTITY_BY_NAME[name],
      Object.freeze([`reserved:${name}`]),
    ]),
  ),
)

/**
 * A simple in-memory {@link Enricher} backed by maps (handy for tests, embedding and the agent's
 * first version). Mutate the maps to update it.
 */
export class StaticEnricher implements Enricher {
  readonly identities = new Map<number, readonly string[]>()
  readonly endpoints = new Map<string, EndpointInfo>()
  /** Keyed by `ip:port/protocol` (protocol as a number), see {@link StaticEnricher.serviceKey}. */
  readonly services = new Map<string, Service>()
  /** Backend address -> the service it serves. */
  readonly backends = new Map<string, Service>()
  readonly names = new Map<string, readonly string[]>()
  readonly interfaces = new Map<number, string>()
  /** Rule-set id -> the policies behind it (policy attribution). */
  readonly ruleSets = new Map<number, readonly Policy[]>()
  /** {@link StaticEnricher.defaultDenyKey} -> the policies of that default deny. */
  readonly defaultDeny = new Map<number, readonly Policy[]>()
  /** Policy ref (`Kind/namespace/name`) -> policy, for L7 records. */
  readonly policies = new Map<string, Policy>()

  /** The key of {@link StaticEnricher.defaultDeny}: an endpoint and a direction (1 ingress, 2 egress). */
  static defaultDenyKey(endpointId: number, direction: number): number {
    return endpointId * 4 + direction
  }

  /** The key of {@link StaticEnricher.services} for a frontend. */
  static serviceKey(ip: string, port: number, protocol: number): string {
    return `${ip}:${port}/${protocol}`
  }

  identityLabels(identity: number): readonly string[] | undefined {
    return this.identities.get(identity)
  }
  endpointByIp(ip: string): EndpointInfo | undefined {
    return this.endpoints.get(ip)
  }
  serviceByFrontend(ip: string, port: number, protocol: number): Service | undefined {
    return this.services.get(StaticEnricher.serviceKey(ip, port, protocol))
  }
  serviceOfBackend(ip: string): Service | undefined {
    return this.backends.get(ip)
  }
  namesOf(ip: string): readonly string[] | undefined {
    return this.names.get(ip)
  }
  interfaceName(ifindex: number): string | undefined {
    return this.interfaces.get(ifindex)
  }
  policiesOf(
    ruleSet: number,
    endpointId: number,
    direction: number,
  ): readonly Policy[] | undefined {
    return ruleSet !== 0
      ? this.ruleSets.get(ruleSet)
      : this.defaultDeny.get(StaticEnricher.defaultDenyKey(endpointId, direction))
  }
  policiesByRef(refs: readonly string[]): readonly Policy[] {
    return refs.map((r) => this.policies.get(r)).filter((p): p is Policy => p !== undefined)
  }
}
