import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repositoryPolicySource } from '@membrane/l7proxy'
import { PolicyRepository, parsePolicyObjects } from '@membrane/policy'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { endpointIdentityLabels } from './identity'
import { ReplicatedPolicy } from './proxy-policy'
import type { PolicySnapshot } from './proxy-protocol'

const demo = join(import.meta.dirname, '..', '..', '..', '..', 'examples', 'star-wars', 'policies')
const L7 = parse(readFileSync(join(demo, 'sw_l3_l4_l7_policy.yaml'), 'utf8')) as unknown

const endpoints = [
  {
    id: 1,
    labels: endpointIdentityLabels({
      labels: { org: 'empire', class: 'deathstar' },
      namespace: 'default',
    }),
  },
  { id: 2, labels: endpointIdentityLabels({ labels: { org: 'empire' }, namespace: 'default' }) },
  { id: 3, labels: endpointIdentityLabels({ labels: { org: 'alliance' }, namespace: 'default' }) },
]
const identities = endpoints.map((e) => ({ id: 255 + e.id, labels: e.labels }))

/** The agent's own answer: its repository over the same inputs. */
function agentSource(snap: PolicySnapshot) {
  const repo = new PolicyRepository()
  repo.updateIdentities(snap.identities, [])
  if (snap.docs.length) repo.upsert(parsePolicyObjects(snap.docs))
  const eps = new Map(snap.endpoints.map((e) => [e.id, e.labels]))
  return repositoryPolicySource(repo, (id) => {
    const labels = eps.get(id)
    return labels ? { labels } : undefined
  })
}

/** An org=empire client (identity 257) to the deathstar's port 80. */
const EMPIRE_TO_DEATHSTAR = {
  endpointId: 1,
  direction: 'ingress' as const,
  peerIdentity: 257,
  port: 80,
  protocol: 'TCP' as const,
}

const query = fc.record({
  endpointId: fc.integer({ min: 1, max: 4 }),
  direction: fc.constantFrom('ingress' as const, 'egress' as const),
  peerIdentity: fc.constantFrom(1, 2, 256, 257, 258, 259),
  port: fc.constantFrom(53, 80, 443, 8080),
  protocol: fc.constantFrom('TCP' as const, 'UDP' as const),
})

describe('ReplicatedPolicy (the proxy process copy of the agent policy)', () => {
  it('denies everything before the first sync (fails closed)', () => {
    const replica = new ReplicatedPolicy()
    expect(replica.rulesFor(EMPIRE_TO_DEATHSTAR)).toBeUndefined()
  })

  it('answers every query as the agent repository does, also after incremental syncs', () => {
    const full: PolicySnapshot = { docs: [L7], identities, endpoints, services: [], fqdns: [] }
    const replica = new ReplicatedPolicy()
    replica.apply(full)
    // An identity and an endpoint go away without a document change (the in-place path).
    const later: PolicySnapshot = {
      ...full,
      identities: identities.slice(0, 2),
      endpoints: endpoints.slice(0, 2),
    }
    const mid = agentSource(full)
    fc.assert(
      fc.property(query, (q) => {
        expect(replica.rulesFor(q)).toEqual(mid.rulesFor(q))
      }),
    )
    const before = replica.revision
    replica.apply({ identities: later.identities, endpoints: later.endpoints })
    expect(replica.revision).not.toBe(before)
    const end = agentSource(later)
    fc.assert(
      fc.property(query, (q) => {
        expect(replica.rulesFor(q)).toEqual(end.rulesFor(q))
      }),
    )
    // The allowed L7 rule is there for an empire client of the deathstar.
    expect(replica.rulesFor(EMPIRE_TO_DEATHSTAR)?.parser).toBe('http')
  })

  it('keeps the previous policy when a sync carries documents that do not parse', () => {
    const replica = new ReplicatedPolicy()
    replica.apply({ docs: [L7], identities, endpoints, services: [], fqdns: [] })
    const q = EMPIRE_TO_DEATHSTAR
    const was = replica.rulesFor(q)
    expect(() => replica.apply({ docs: [{ kind: 'CiliumNetworkPolicy', spec: 7 }] })).toThrow()
    expect(replica.rulesFor(q)).toEqual(was)
  })
})
