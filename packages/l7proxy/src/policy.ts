/**
 * Where the proxy gets the L7 rules of a redirected flow from.
 */
import type { EndpointInfo, L7Policy, PolicyRepository } from '@membrane/policy'

/** What the proxy asks for: the L7 rules of `endpointId`'s `direction` for this peer and port. */
export interface L7PolicyQuery {
  endpointId: number
  direction: 'ingress' | 'egress'
  /** The other side's identity: the client on ingress, the destination on egress. */
  peerIdentity: number
  /** Destination port of the original connection. */
  port: number
  protocol: 'TCP' | 'UDP'
}

/**
 * The L7 rules the proxy enforces. `rulesFor` returns undefined when no rule allows the flow at
 * L7 (the proxy then denies: it fails closed). `revision` (optional) changes whenever answers
 * may change, so the proxy can reuse an answer for the requests of one connection.
 */
export interface L7PolicySource {
  rulesFor(query: L7PolicyQuery): L7Policy | undefined
  readonly revision?: number
}

/**
 * An {@link L7PolicySource} over a @membrane/policy repository: `endpoint(id)` gives the labels
 * (and named ports) of a local endpoint.
 *
 * @example
 * const source = repositoryPolicySource(repo, (id) => endpoints.get(id))
 */
export function repositoryPolicySource(
  repo: PolicyRepository,
  endpoint: (endpointId: number) => EndpointInfo | undefined,
): L7PolicySource {
  return {
    rulesFor(q) {
      const ep = endpoint(q.endpointId)
      if (!ep) return undefined
      return repo.l7Rules(ep, {
        direction: q.direction,
        peerIdentity: q.peerIdentity,
        port: q.port,
        protocol: q.protocol,
      })
    },
    // generation changes with policies AND selections (identities, DNS answers, services).
    get revision() {
      return repo.generation
    },
  }
}

/** A fixed answer for every query (tests, or a proxy in front of one service). */
export function staticPolicySource(policy: L7Policy | undefined): L7PolicySource {
  return { rulesFor: () => policy, revision: 0 }
}
