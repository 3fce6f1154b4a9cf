/**
 * The compiled policy model: what parsePolicyDocuments() produces and the repository consumes.
 */
import type { Prefix } from '@membrane/types'
import type { DnsRule } from './l7/dns'
import type { HttpRule } from './l7/http'
import type { KafkaRule } from './l7/kafka'
import type { Selector } from './labels'

/** Traffic direction, seen from the endpoint that the rule selects. */
export type Direction = 'ingress' | 'egress'

/** Entities of Cilium's policy language. */
export const ENTITIES = [
  'all',
  'world',
  'world-ipv4',
  'world-ipv6',
  'cluster',
  'host',
  'remote-node',
  'kube-apiserver',
  'health',
  'init',
  'ingress',
  'unmanaged',
  'none',
] as const
/** One of {@link ENTITIES}. */
export type Entity = (typeof ENTITIES)[number]

/** A peer of a rule: who may talk to / be talked to by the selected endpoint. */
export type Peer =
  /** Any identity (map state identity 0): `fromEntities: [all]`, a CCNP `{}` selector, an L4-only rule. */
  | { kind: 'wildcard' }
  /** Endpoints whose identity labels match the selector (already namespace-scoped). */
  | { kind: 'endpoints'; selector: Selector }
  | { kind: 'entity'; entity: Exclude<Entity, 'all'> }
  /** fromNodes/toNodes: node identities (host, remote-node) whose node labels match. */
  | { kind: 'nodes'; selector: Selector }
  /** CIDR identities inside `cidr` and outside every `except`; NetworkPolicy ipBlock also matches pod IPs. */
  | { kind: 'cidr'; cidr: Prefix; except: Prefix[]; matchPodIps: boolean }
  /** toFQDNs: IPs learned from DNS answers for matching names (see PolicyRepository.fqdn). */
  | { kind: 'fqdn'; matchName?: string; matchPattern?: string }
  /** A CIDR set's `cidrGroupRef`: the CIDRs of a CiliumCIDRGroup (minus `except`). */
  | { kind: 'cidrGroup'; name: string; except: Prefix[] }
  /** toServices: backends of a Kubernetes service (see PolicyRepository.updateService). */
  | { kind: 'service'; namespace: string; name?: string; selector?: Selector }

/** The L7 rules of one toPorts entry; exactly one parser. */
export type L7Rules =
  | { parser: 'http'; http: HttpRule[] }
  | { parser: 'kafka'; kafka: KafkaRule[] }
  | { parser: 'dns'; dns: DnsRule[] }

/** An L7 parser name. */
export type L7Parser = L7Rules['parser']

/** One `ports[]` / `icmps[].fields[]` entry. */
export interface PortSpec {
  protocol: 'TCP' | 'UDP' | 'SCTP' | 'ANY' | 'ICMP' | 'ICMPv6'
  /** Port number (ICMP: the type); 0 = every port. */
  port: number
  /** Inclusive end of a port range. */
  endPort?: number
  /** A named port, resolved per destination endpoint. */
  name?: string
}

/** One `toPorts[]` (or `icmps[]`) entry. */
export interface L4Rule {
  ports: PortSpec[]
  l7?: L7Rules
  /** Field path of the entry (for explanations). */
  path: string
}

/** Authentication modes of Cilium's `authentication.mode`, with their map-state numbers. */
export const AUTH_TYPES = { disabled: 0, required: 1, 'test-always-fail': 2 } as const

/** One ingress/ingressDeny/egress/egressDeny element. */
export interface PeerRule {
  /** `<policy ref>:<path>`, e.g. `CiliumNetworkPolicy/default/rule1:specs[0].ingress[1]`. */
  id: string
  path: string
  direction: Direction
  deny: boolean
  /** Union of the rule's L3 selectors; empty = selects no peer. */
  peers: Peer[]
  /** undefined = every protocol and port (an L3-only rule). */
  l4?: L4Rule[]
  /** Map-state auth type (0 = none). */
  authType: number
}

/** One rule (a `spec` / `specs[i]`, or a NetworkPolicy) after parsing. */
export interface PolicyRule {
  /** `Kind/namespace/name` (CCNP: `Kind/name`). */
  ref: string
  kind: PolicyKind
  namespace?: string
  name: string
  /** `spec`, `specs[3]` — the path of this rule in its document. */
  path: string
  /** Which endpoints the rule applies to. nodeSelector rules only select the host endpoint. */
  subject: { kind: 'endpoints' | 'nodes'; selector: Selector }
  description?: string
  /** Rule labels (`spec.labels`) plus Cilium's derived labels. */
  labels: string[]
  ingress: PeerRule[]
  egress: PeerRule[]
  /** Does this rule turn default deny on, per direction? */
  defaultDeny: { ingress: boolean; egress: boolean }
  /**
   * Audit mode (annotation `policy.membrane.io/audit: "true"`, or the policy's namespace is
   * audited): what this rule would deny is reported as AUDIT and passes.
   */
  audit?: boolean
}

/** The three kinds of policy documents. */
export type PolicyKind =
  | 'NetworkPolicy'
  | 'CiliumNetworkPolicy'
  | 'CiliumClusterwideNetworkPolicy'
  | 'CiliumCIDRGroup'

/** One parsed policy document. */
export interface PolicyDocument {
  /** Index in the parsed text. */
  index: number
  kind: PolicyKind
  name: string
  namespace?: string
  /** `Kind/namespace/name` — the identity of the policy in a repository. */
  ref: string
  rules: PolicyRule[]
  /** A CiliumCIDRGroup: its CIDRs (referenced by `cidrGroupRef`); `rules` is empty. */
  cidrGroup?: { cidrs: Prefix[] }
  /** The policy is in audit mode (annotation `policy.membrane.io/audit: "true"`). */
  audit?: boolean
}

/** Canonical text of a peer: equal peers select the same identities. */
export function peerKey(p: Peer): string {
  switch (p.kind) {
    case 'wildcard':
      return '*'
    case 'endpoints':
      return `ep:${p.selector.key}`
    case 'entity':
      return `entity:${p.entity}`
    case 'nodes':
      return `nodes:${p.selector.key}`
    case 'cidr':
      return `cidr:${p.cidr.cidr}${p.except.length ? ` except ${p.except.map((c) => c.cidr).join(',')}` : ''}${p.matchPodIps ? ' +pods' : ''}`
    case 'cidrGroup':
      return `cidrgroup:${p.name}${p.except.length ? ` except ${p.except.map((c) => c.cidr).join(',')}` : ''}`
    case 'fqdn':
      return p.matchName !== undefined
        ? `fqdn:name=${p.matchName}`
        : `fqdn:pattern=${p.matchPattern}`
    case 'service':
      return `svc:${p.namespace}/${p.name ?? ''}${p.selector ? `{${p.selector.key}}` : ''}`
  }
}
