/**
 * The Kubernetes network-policy e2e model: namespaces x/y/z, pods a/b/c in each, each pod
 * serving 80/81 on TCP, UDP and SCTP with named ports serve-<port>-<proto>. Every probe is
 * checked twice: with trace() and with the two endpoints' map states (egress of the client,
 * ingress of the server), which must agree.
 */
import { expect } from 'vitest'
import {
  type IdentityData,
  lookupMapState,
  type NamedPort,
  type PolicyRepository,
  type TraceEndpoint,
  traceEndpointLabels,
} from '../src/index'
import { protocolNumber } from '../src/ports'

export const NAMESPACES = ['x', 'y', 'z'] as const
export const PODS = ['a', 'b', 'c'] as const
export type PodName = `${(typeof NAMESPACES)[number]}/${(typeof PODS)[number]}`

const ALL_PODS: PodName[] = NAMESPACES.flatMap((ns) => PODS.map((p) => `${ns}/${p}` as PodName))

export function podIp(pod: PodName): string {
  const [ns, p] = pod.split('/') as [string, string]
  return `192.168.${NAMESPACES.indexOf(ns as never) + 1}.${PODS.indexOf(p as never) + 10}`
}

const namedPorts: Record<string, NamedPort> = {}
for (const port of [80, 81]) {
  for (const proto of ['TCP', 'UDP', 'SCTP'])
    namedPorts[`serve-${port}-${proto.toLowerCase()}`] = { port, protocol: proto }
}

function podEndpoint(pod: PodName): TraceEndpoint {
  const [ns, p] = pod.split('/') as [string, string]
  return {
    namespace: ns,
    labels: { pod: p },
    namespaceLabels: { ns },
    ips: [podIp(pod)],
    namedPorts,
  }
}

function podIdentity(pod: PodName): IdentityData {
  return {
    id: 1000 + ALL_PODS.indexOf(pod),
    labels: traceEndpointLabels(podEndpoint(pod)),
    ips: [podIp(pod)],
    namedPorts,
  }
}

const RESERVED_IDENTITIES: IdentityData[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 6, labels: ['reserved:remote-node'] },
]

export type Probe = { port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }
/** Expected reachability: (from, to) -> allowed? */
export type Reachability = (from: PodName, to: PodName) => boolean

/** Everything reachable except where `rule` says false. */
export const allowAll: Reachability = () => true

/**
 * Check the whole 9x9 matrix for `probe` against `expected`, with trace() and with map state.
 * Returns the mismatches (from -> to) so a failure names them all.
 */
export function checkReachability(
  repo: PolicyRepository,
  probe: Probe,
  expected: Reachability,
): void {
  repo.selectorCache.setIdentities([...RESERVED_IDENTITIES, ...ALL_PODS.map(podIdentity)])
  const maps = new Map(
    ALL_PODS.map((p) => [p, repo.computeMapState({ labels: podIdentity(p).labels, namedPorts })]),
  )
  const proto = protocolNumber(probe.protocol) as number
  const wrong: string[] = []
  for (const from of ALL_PODS) {
    for (const to of ALL_PODS) {
      const want = expected(from, to)
      const t = repo.trace({
        source: podEndpoint(from),
        destination: podEndpoint(to),
        port: probe.port,
        protocol: probe.protocol,
      })
      const got = t.verdict === 'allowed'
      const eg = lookupMapState(maps.get(from) as never, {
        identity: podIdentity(to).id,
        direction: 'egress',
        protocol: proto,
        port: probe.port,
      })
      const ing = lookupMapState(maps.get(to) as never, {
        identity: podIdentity(from).id,
        direction: 'ingress',
        protocol: proto,
        port: probe.port,
      })
      const viaMap = !!eg && !eg.value.deny && !!ing && !ing.value.deny
      const eg2 = lookupMapState(
        maps.get(from) as never,
        { identity: podIdentity(to).id, direction: 'egress', protocol: proto, port: probe.port },
        'identity-first',
      )
      const ing2 = lookupMapState(
        maps.get(to) as never,
        { identity: podIdentity(from).id, direction: 'ingress', protocol: proto, port: probe.port },
        'identity-first',
      )
      if (viaMap !== (!!eg2 && !eg2.value.deny && !!ing2 && !ing2.value.deny))
        wrong.push(`${from} -> ${to}: lookup orders disagree`)
      if (got !== want)
        wrong.push(
          `${from} -> ${to} ${probe.port}/${probe.protocol}: trace ${t.verdict}, expected ${want ? 'allowed' : 'denied'}`,
        )
      if (viaMap !== got)
        wrong.push(
          `${from} -> ${to} ${probe.port}/${probe.protocol}: map state ${viaMap ? 'allowed' : 'denied'} but trace ${t.verdict}`,
        )
    }
  }
  expect(wrong).toEqual([])
}

/** Build a NetworkPolicy document in YAML from a spec object (JSON is YAML). */
export function netpol(namespace: string, name: string, spec: unknown): string {
  return JSON.stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  })
}

export const nsOf = (p: PodName) => p.split('/')[0] as string
export const podOf = (p: PodName) => p.split('/')[1] as string
