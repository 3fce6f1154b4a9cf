/**
 * fast-check properties: port-range prefixes, map-state lookup ≡ trace on random policies and
 * identities, deny always wins, monotonicity of allows and denies, diffs and incremental updates.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  AUDIT_ANNOTATION,
  applyMapStateDiff,
  diffMapState,
  type IdentityData,
  lookupMapState,
  type MapState,
  PolicyRepository,
  portRangeToPrefixes,
  RuleSetTable,
} from '../src/index'
import { mapStateKeyString, sameDatapathValue } from '../src/mapstate'
import { prefixCovers, protocolNumber } from '../src/ports'

/** POLICY_FC_SCALE=10 runs every property ten times longer (for a deeper local search). */
const runs = (n: number) => Math.round(n * Number(process.env.POLICY_FC_SCALE ?? 1))

describe('portRangeToPrefixes', () => {
  it('covers exactly the range, with disjoint aligned prefixes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        (a, b) => {
          const [from, to] = a <= b ? [a, b] : [b, a]
          const prefixes = portRangeToPrefixes(from, to)
          let covered = 0
          for (const p of prefixes) {
            const size = 2 ** (16 - p.prefixLen)
            expect(p.port % size).toBe(0) // aligned
            expect(p.port).toBeGreaterThanOrEqual(from)
            expect(p.port + size - 1).toBeLessThanOrEqual(to)
            covered += size
          }
          expect(covered).toBe(to - from + 1) // no gap, no overlap (sizes add up inside the range)
          // spot checks at the edges
          for (const port of [from, to, Math.max(0, from - 1), Math.min(65535, to + 1)]) {
            const inside = port >= from && port <= to
            expect(prefixes.some((p) => prefixCovers(p, port))).toBe(inside)
          }
        },
      ),
      { numRuns: runs(500) },
    )
  }, 120_000)

  it('uses at most 2*16 prefixes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        (a, b) => {
          expect(portRangeToPrefixes(Math.min(a, b), Math.max(a, b)).length).toBeLessThanOrEqual(32)
        },
      ),
    )
  })
})

// ---------------------------------------------------------------- random policies

const NS = ['n1', 'n2'] as const
const APPS = ['a', 'b', 'c'] as const
const TIERS = ['x', 'y'] as const

interface Pod {
  id: number
  ns: string
  app: string
  tier?: string
  ip: string
}

const podArb = fc.record({
  ns: fc.constantFrom(...NS),
  app: fc.constantFrom(...APPS),
  tier: fc.option(fc.constantFrom(...TIERS), { nil: undefined }),
})

function podLabels(p: Pod): string[] {
  const l = [
    `k8s:app=${p.app}`,
    `k8s:io.kubernetes.pod.namespace=${p.ns}`,
    `k8s:io.cilium.k8s.namespace.labels.team=${p.ns === 'n1' ? 'red' : 'blue'}`,
  ]
  if (p.tier) l.push(`k8s:tier=${p.tier}`)
  return l
}

const CIDR_IDS: IdentityData[] = [
  { id: 16777217, labels: ['cidr:10.0.0.0/8', 'reserved:world'] },
  { id: 16777218, labels: ['cidr:10.1.0.0/16', 'reserved:world'] },
  { id: 16777219, labels: ['cidr:10.1.2.3/32', 'reserved:world'] },
  { id: 16777220, labels: ['cidr:192.168.1.0/24', 'reserved:world'] },
]
const RESERVED: IdentityData[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 4, labels: ['reserved:health'] },
  { id: 6, labels: ['reserved:remote-node'] },
]

const selectorArb = fc.oneof(
  fc.record({ matchLabels: fc.record({ app: fc.constantFrom(...APPS) }, { requiredKeys: [] }) }),
  fc.record({
    matchLabels: fc.record(
      { app: fc.constantFrom(...APPS), tier: fc.constantFrom(...TIERS) },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: fc.constantFrom('app', 'tier', 'k8s:app'),
          operator: fc.constantFrom('In', 'NotIn'),
          values: fc.subarray([...APPS, ...TIERS], { minLength: 1 }),
        }),
        fc.record({
          key: fc.constantFrom('app', 'tier'),
          operator: fc.constantFrom('Exists', 'DoesNotExist'),
        }),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  }),
  fc.record({
    matchLabels: fc.record(
      { 'io.kubernetes.pod.namespace': fc.constantFrom(...NS), app: fc.constantFrom(...APPS) },
      { requiredKeys: ['io.kubernetes.pod.namespace'] },
    ),
  }),
  fc.record({ matchLabels: fc.constant({ 'io.cilium.k8s.namespace.labels.team': 'blue' }) }),
)

const portArb = fc.oneof(
  fc.record({
    port: fc.constantFrom('0', '80', '81', '443', '8080'),
    protocol: fc.constantFrom('TCP', 'UDP', 'ANY'),
  }),
  fc
    .record({
      range: fc.constantFrom(['80', 81], ['8000', 8191], ['8000', 9000], ['80', 9000]),
      protocol: fc.constantFrom('TCP', 'UDP'),
    })
    .map(({ range, protocol }) => ({ port: range[0], endPort: range[1], protocol })),
  fc.record({
    port: fc.constantFrom('web', 'metrics', 'dns'),
    protocol: fc.constantFrom('TCP', 'UDP', 'ANY'),
  }),
)

const l3Arb = (dir: 'from' | 'to', deny: boolean) =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        [`${dir}Endpoints`]: fc.array(selectorArb, { minLength: 1, maxLength: 2 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        [`${dir}CIDR`]: fc.subarray(['10.0.0.0/8', '10.1.0.0/16', '192.168.0.0/16', '0.0.0.0/0'], {
          minLength: 1,
        }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        [`${dir}CIDRSet`]: fc.constantFrom(
          [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }],
          [{ cidr: '10.0.0.0/8', except: ['10.1.2.3/32'] }],
          [{ cidrGroupRef: 'grp' }],
          [{ cidrGroupRef: 'grp', except: ['10.1.2.0/24'] }],
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        [`${dir}Entities`]: fc.subarray(
          ['world', 'cluster', 'host', 'all', 'remote-node', 'health'],
          { minLength: 1 },
        ),
      }),
    },
    { weight: deny ? 0 : 1, arbitrary: fc.constant({}) },
  )

const peerRuleArb = (dir: 'from' | 'to', deny: boolean) =>
  fc
    .tuple(
      l3Arb(dir, deny),
      fc.oneof(
        { weight: 2, arbitrary: fc.constant(undefined) },
        {
          weight: 3,
          arbitrary: fc.record({
            toPorts: fc.array(
              fc.record({ ports: fc.array(portArb, { minLength: 1, maxLength: 3 }) }),
              { minLength: 1, maxLength: 2 },
            ),
          }),
        },
        {
          weight: deny ? 0 : 1,
          arbitrary: fc.constant({
            toPorts: [
              {
                ports: [{ port: '80', protocol: 'TCP' }],
                rules: { http: [{ method: 'GET', path: '/public/.*' }] },
              },
            ],
          }),
        },
        {
          weight: 1,
          arbitrary: fc.constant({ icmps: [{ fields: [{ type: 8, family: 'IPv4' }] }] }),
        },
      ),
    )
    .map(([l3, l4]) => ({ ...l3, ...(l4 ?? {}) }))
    .filter((r) => Object.keys(r).length > 0)

const ruleSpecArb = fc.record(
  {
    endpointSelector: fc.oneof(fc.constant({}), selectorArb),
    ingress: fc.array(peerRuleArb('from', false), { maxLength: 2 }),
    ingressDeny: fc.array(peerRuleArb('from', true), { maxLength: 1 }),
    egress: fc.array(peerRuleArb('to', false), { maxLength: 2 }),
    egressDeny: fc.array(peerRuleArb('to', true), { maxLength: 1 }),
  },
  { requiredKeys: ['endpointSelector'] },
)

const docArb = fc.record({
  kind: fc.constantFrom('CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'),
  ns: fc.constantFrom(...NS),
  spec: ruleSpecArb,
})

const npPeerArb = fc.oneof(
  fc.record({
    podSelector: fc.record({
      matchLabels: fc.record({ app: fc.constantFrom(...APPS) }, { requiredKeys: [] }),
    }),
  }),
  fc.record({
    namespaceSelector: fc.constantFrom(
      {},
      { matchLabels: { team: 'blue' } },
      { matchLabels: { 'kubernetes.io/metadata.name': 'n1' } },
    ),
  }),
  fc.record({
    namespaceSelector: fc.constantFrom({ matchLabels: { team: 'red' } }),
    podSelector: fc.record({ matchLabels: fc.record({ tier: fc.constantFrom(...TIERS) }) }),
  }),
  fc.record({
    ipBlock: fc.constantFrom(
      { cidr: '172.16.0.0/24', except: ['172.16.0.2/32'] },
      { cidr: '10.0.0.0/8' },
      { cidr: '0.0.0.0/0' },
    ),
  }),
)
const npPortArb = fc.oneof(
  fc.record(
    { port: fc.constantFrom(80, 81, 443), protocol: fc.constantFrom('TCP', 'UDP', 'SCTP') },
    { requiredKeys: ['port'] },
  ),
  fc.record({ port: fc.constantFrom('web', 'metrics', 'dns') }),
  fc.record({ port: fc.constant(80), endPort: fc.constantFrom(81, 8191) }),
  fc.record({ protocol: fc.constantFrom('TCP', 'UDP') }),
)
const npRuleArb = (peer: 'from' | 'to') =>
  fc.record(
    { [peer]: fc.array(npPeerArb, { maxLength: 2 }), ports: fc.array(npPortArb, { maxLength: 2 }) },
    { requiredKeys: [] },
  )
const npDocArb = fc.record({
  kind: fc.constant('NetworkPolicy'),
  ns: fc.constantFrom(...NS),
  spec: fc.record(
    {
      podSelector: fc.oneof(
        fc.constant({}),
        fc.record({ matchLabels: fc.record({ app: fc.constantFrom(...APPS) }) }),
      ),
      policyTypes: fc.subarray(['Ingress', 'Egress'], { minLength: 1 }),
      ingress: fc.array(npRuleArb('from'), { maxLength: 2 }),
      egress: fc.array(npRuleArb('to'), { maxLength: 2 }),
    },
    { requiredKeys: ['podSelector'] },
  ),
})

type Doc = { kind: string; ns: string; spec: unknown }

/** `audit[i]`: document i carries the audit annotation. */
function toYaml(docs: Doc[], prefix = 'p', audit: readonly boolean[] = []): string {
  return docs
    .map((d, i) =>
      JSON.stringify({
        apiVersion: d.kind === 'NetworkPolicy' ? 'networking.k8s.io/v1' : 'cilium.io/v2',
        kind: d.kind,
        metadata: {
          name: `${prefix}${i}`,
          ...(d.kind === 'CiliumClusterwideNetworkPolicy' ? {} : { namespace: d.ns }),
          ...(audit[i] ? { annotations: { [AUDIT_ANNOTATION]: 'true' } } : {}),
        },
        spec: d.spec,
      }),
    )
    .concat(prefix === 'p' ? [CIDR_GROUP] : [])
    .join('\n---\n')
}

const CIDR_GROUP = JSON.stringify({
  apiVersion: 'cilium.io/v2alpha1',
  kind: 'CiliumCIDRGroup',
  metadata: { name: 'grp' },
  spec: { externalCIDRs: ['10.1.0.0/16', '192.168.1.0/24'] },
})

const PROBES = [
  { protocol: 'TCP', port: 80 },
  { protocol: 'TCP', port: 81 },
  { protocol: 'UDP', port: 80 },
  { protocol: 'TCP', port: 8191 },
  { protocol: 'UDP', port: 443 },
  { protocol: 'ICMP', port: 8 },
] as const

function buildPods(raw: Array<{ ns: string; app: string; tier?: string | undefined }>): Pod[] {
  return raw.map((r, i) => ({
    id: 1000 + i,
    ns: r.ns,
    app: r.app,
    ...(r.tier ? { tier: r.tier } : {}),
    ip: `172.16.0.${i + 1}`,
  }))
}

const NAMED = {
  web: { port: 80, protocol: 'TCP' },
  metrics: { port: 8191, protocol: 'TCP' },
  dns: { port: 443, protocol: 'UDP' },
}
const namedFor = (p: Pod) => (p.app === 'c' ? { web: { port: 81, protocol: 'TCP' } } : NAMED)

function identitiesOf(pods: Pod[]): IdentityData[] {
  return [
    ...RESERVED,
    ...CIDR_IDS,
    ...pods.map((p) => ({ id: p.id, labels: podLabels(p), ips: [p.ip], namedPorts: namedFor(p) })),
  ]
}

/** Verdicts of every (subject pod, peer identity, direction, probe) via trace. */
function traceVerdicts(
  repo: PolicyRepository,
  pods: Pod[],
  ids: IdentityData[],
): Map<string, boolean> {
  const out = new Map<string, boolean>()
  for (const p of pods) {
    const me = { identityLabels: podLabels(p), ips: [p.ip], namedPorts: namedFor(p) }
    for (const peer of ids) {
      const other = {
        identityLabels: [...peer.labels],
        ips: [...(peer.ips ?? [])],
        namedPorts: peer.namedPorts ?? {},
      }
      for (const probe of PROBES) {
        const eg = repo.trace({
          source: me,
          destination: other,
          port: probe.port,
          protocol: probe.protocol,
        }).egress
        const ing = repo.trace({
          source: other,
          destination: me,
          port: probe.port,
          protocol: probe.protocol,
        }).ingress
        out.set(
          `${p.id}/egress/${peer.id}/${probe.protocol}/${probe.port}`,
          eg.verdict === 'allowed' || eg.reason === 'denied-at-l7',
        )
        out.set(
          `${p.id}/ingress/${peer.id}/${probe.protocol}/${probe.port}`,
          ing.verdict === 'allowed' || ing.reason === 'denied-at-l7',
        )
      }
    }
  }
  return out
}

function mapVerdicts(
  repo: PolicyRepository,
  pods: Pod[],
  ids: IdentityData[],
): Map<string, boolean> {
  const out = new Map<string, boolean>()
  for (const p of pods) {
    const ms = repo.computeMapState({ labels: podLabels(p), namedPorts: namedFor(p) })
    for (const peer of ids) {
      for (const probe of PROBES) {
        for (const direction of ['egress', 'ingress'] as const) {
          const q = {
            identity: peer.id,
            direction,
            protocol: protocolNumber(probe.protocol) as number,
            port: probe.port,
          }
          const e = lookupMapState(ms, q)
          // bpf-src's lookup order (identity first, deny from either wins) must agree
          const f = lookupMapState(ms, q, 'identity-first')
          const view = (x: typeof e) =>
            x
              ? `${x.value.deny ? 'deny' : 'allow'}/${x.value.proxyPort}/${x.value.l7Parser ?? '-'}/${x.value.authType}`
              : 'miss'
          if (view(e) !== view(f))
            throw new Error(
              `lookup orders disagree for ${JSON.stringify(q)} at pod ${p.id}: ${view(e)} vs ${view(f)}`,
            )
          out.set(
            `${p.id}/${direction}/${peer.id}/${probe.protocol}/${probe.port}`,
            !!e && !e.value.deny,
          )
        }
      }
    }
  }
  return out
}

const scenarioArb = fc.record({
  pods: fc.array(podArb, { minLength: 1, maxLength: 4 }),
  docs: fc.array(fc.oneof({ weight: 3, arbitrary: docArb }, { weight: 1, arbitrary: npDocArb }), {
    minLength: 1,
    maxLength: 4,
  }),
})

describe('map state ≡ trace (random policies and identities)', () => {
  it('the datapath lookup of the compiled map state gives trace()’s verdict for every flow', () => {
    fc.assert(
      fc.property(scenarioArb, ({ pods: raw, docs }) => {
        const pods = buildPods(raw)
        const ids = identitiesOf(pods)
        const repo = new PolicyRepository()
        repo.upsert(toYaml(docs))
        repo.selectorCache.setIdentities(ids)
        const t = traceVerdicts(repo, pods, ids)
        const m = mapVerdicts(repo, pods, ids)
        const wrong = [...t]
          .filter(([k, v]) => m.get(k) !== v)
          .map(([k, v]) => `${k}: trace ${v} map ${m.get(k)}`)
        expect(wrong).toEqual([])
      }),
      { numRuns: runs(150) },
    )
  }, 120_000)

  it('deny always wins: a flow matched by any deny rule is dropped by the map state', () => {
    fc.assert(
      fc.property(scenarioArb, ({ pods: raw, docs }) => {
        const pods = buildPods(raw)
        const ids = identitiesOf(pods)
        const repo = new PolicyRepository()
        repo.upsert(toYaml(docs))
        repo.selectorCache.setIdentities(ids)
        for (const p of pods) {
          const ms = repo.computeMapState({ labels: podLabels(p) })
          for (const peer of ids) {
            for (const probe of PROBES) {
              const tr = repo.trace({
                source: { identityLabels: [...peer.labels], ips: [...(peer.ips ?? [])] },
                destination: { identityLabels: podLabels(p), ips: [p.ip] },
                port: probe.port,
                protocol: probe.protocol,
              })
              if (tr.ingress.deniedBy.length === 0) continue
              const e = lookupMapState(ms, {
                identity: peer.id,
                direction: 'ingress',
                protocol: protocolNumber(probe.protocol) as number,
                port: probe.port,
              })
              expect(e === undefined || e.value.deny).toBe(true)
            }
          }
        }
      }),
      { numRuns: runs(80) },
    )
  }, 120_000)
})

describe('policy attribution ≡ trace (random policies, some in audit mode)', () => {
  // What a flow names: the datapath's lookup (identity first) of the compiled map state, the
  // entry's rule-set id resolved through the table, or (no entry) the default-deny policies.
  it('the flow of a packet and trace() name the same policies and the same verdict', () => {
    const table = new RuleSetTable()
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(fc.boolean(), { maxLength: 4 }),
        ({ pods: raw, docs }, audit) => {
          const pods = buildPods(raw)
          const ids = identitiesOf(pods)
          const repo = new PolicyRepository()
          repo.upsert(toYaml(docs, 'p', audit))
          repo.selectorCache.setIdentities(ids)
          const wrong: string[] = []
          for (const p of pods) {
            const me = { identityLabels: podLabels(p), ips: [p.ip], namedPorts: namedFor(p) }
            const ms = repo.computeMapState({ labels: podLabels(p), namedPorts: namedFor(p) })
            for (const peer of ids) {
              const other = {
                identityLabels: [...peer.labels],
                ips: [...(peer.ips ?? [])],
                namedPorts: peer.namedPorts ?? {},
              }
              for (const probe of PROBES) {
                for (const direction of ['egress', 'ingress'] as const) {
                  const tr = repo.trace({
                    source: direction === 'egress' ? me : other,
                    destination: direction === 'egress' ? other : me,
                    port: probe.port,
                    protocol: probe.protocol,
                  })[direction]
                  const e = lookupMapState(
                    ms,
                    {
                      identity: peer.id,
                      direction,
                      protocol: protocolNumber(probe.protocol) as number,
                      port: probe.port,
                    },
                    'identity-first',
                  )
                  const flow = e
                    ? {
                        verdict: e.value.deny ? 'denied' : e.value.audit ? 'audit' : 'allowed',
                        policies: table.refs(table.idOf(e.value)) ?? [],
                      }
                    : { verdict: 'denied', policies: ms.defaultDenyBy[direction] }
                  const traced = {
                    verdict: tr.audit ? 'audit' : tr.verdict,
                    policies: tr.policies,
                  }
                  if (JSON.stringify(flow) !== JSON.stringify(traced))
                    wrong.push(
                      `pod ${p.id} ${direction} peer ${peer.id} ${probe.protocol}/${probe.port}: flow ${JSON.stringify(flow)} trace ${JSON.stringify(traced)}`,
                    )
                }
              }
            }
          }
          expect(wrong).toEqual([])
        },
      ),
      { numRuns: runs(150) },
    )
  }, 180_000)
})

describe('monotonicity', () => {
  it('adding an allow rule (without default deny) never removes a permitted flow', () => {
    fc.assert(
      fc.property(scenarioArb, ruleSpecArb, ({ pods: raw, docs }, extra) => {
        const pods = buildPods(raw)
        const ids = identitiesOf(pods)
        const repo = new PolicyRepository()
        repo.upsert(toYaml(docs))
        repo.selectorCache.setIdentities(ids)
        const before = mapVerdicts(repo, pods, ids)
        const allowOnly = {
          endpointSelector: extra.endpointSelector,
          ingress: extra.ingress,
          egress: extra.egress,
          enableDefaultDeny: { ingress: false, egress: false },
        }
        repo.upsert(
          toYaml([{ kind: 'CiliumClusterwideNetworkPolicy', ns: 'n1', spec: allowOnly }], 'extra'),
        )
        const after = mapVerdicts(repo, pods, ids)
        for (const [k, v] of before) if (v) expect(after.get(k), k).toBe(true)
      }),
      { numRuns: runs(80) },
    )
  }, 120_000)

  it('adding a deny rule never adds a permitted flow', () => {
    fc.assert(
      fc.property(scenarioArb, ruleSpecArb, ({ pods: raw, docs }, extra) => {
        const pods = buildPods(raw)
        const ids = identitiesOf(pods)
        const repo = new PolicyRepository()
        repo.upsert(toYaml(docs))
        repo.selectorCache.setIdentities(ids)
        const before = mapVerdicts(repo, pods, ids)
        const denyOnly = {
          endpointSelector: extra.endpointSelector,
          ingressDeny: extra.ingressDeny ?? [],
          egressDeny: extra.egressDeny ?? [],
        }
        repo.upsert(
          toYaml([{ kind: 'CiliumClusterwideNetworkPolicy', ns: 'n1', spec: denyOnly }], 'extra'),
        )
        const after = mapVerdicts(repo, pods, ids)
        for (const [k, v] of after) if (v) expect(before.get(k), k).toBe(true)
      }),
      { numRuns: runs(80) },
    )
  }, 120_000)
})

function sameState(a: MapState, b: MapState): string[] {
  const out: string[] = []
  for (const e of a) {
    const k = mapStateKeyString(e.key)
    const o = b.entry(e.key)
    if (!o || !sameDatapathValue(o.value, e.value))
      out.push(`${k}: ${JSON.stringify(e.value)} vs ${JSON.stringify(o?.value)}`)
  }
  for (const e of b) if (!a.has(e.key)) out.push(`${mapStateKeyString(e.key)}: missing`)
  return out
}

describe('diffs and incremental updates', () => {
  it('diffMapState(prev, next) applied to prev gives next', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(docArb, { minLength: 1, maxLength: 3 }),
        ({ pods: raw, docs }, docs2) => {
          const pods = buildPods(raw)
          const ids = identitiesOf(pods)
          const repo = new PolicyRepository()
          repo.upsert(toYaml(docs))
          repo.selectorCache.setIdentities(ids)
          const ep = { labels: podLabels(pods[0] as Pod) }
          const prev = repo.computeMapState(ep)
          repo.delete(repo.policies)
          repo.upsert(toYaml(docs2))
          const next = repo.computeMapState(ep)
          const diff = diffMapState(prev, next)
          const applied = applyMapStateDiff(prev.clone(), diff)
          expect(sameState(applied, next)).toEqual([])
          // deletes are only keys that are gone; upserts only keys that are new or changed
          for (const k of diff.deletes) expect(next.get(k)).toBeUndefined()
          for (const e of diff.upserts) expect(next.has(e.key)).toBe(true)
        },
      ),
      { numRuns: runs(100) },
    )
  }, 120_000)

  it('a tracked endpoint updated incrementally equals a full recompute', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(podArb, { maxLength: 3 }),
        fc.array(docArb, { maxLength: 2 }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.oneof(docArb, npDocArb), { maxLength: 2 }),
        // Some documents in audit mode: an endpoint goes in and out of the merged state.
        fc.array(fc.boolean(), { maxLength: 4 }),
        ({ pods: raw, docs }, newPods, moreDocs, removeCount, replacement, audit) => {
          const pods = buildPods(raw)
          const ids = identitiesOf(pods)
          const repo = new PolicyRepository()
          repo.upsert(toYaml(docs, 'p', audit))
          repo.selectorCache.setIdentities(ids)
          const ep = { labels: podLabels(pods[0] as Pod) }
          const tracked = repo.endpointPolicy(ep)
          const shadow = tracked.mapState.clone()
          // identities come and go
          const extra = buildPods(newPods).map((p, i) => ({
            id: 5000 + i,
            labels: podLabels(p),
            ips: [`172.17.0.${i + 1}`],
          }))
          repo.updateIdentities(
            extra,
            ids
              .slice(-removeCount || ids.length)
              .slice(0, removeCount)
              .map((d) => d.id),
          )
          applyMapStateDiff(shadow, tracked.refresh())
          expect(sameState(shadow, repo.computeMapState(ep))).toEqual([])
          const check = () => {
            applyMapStateDiff(shadow, tracked.refresh())
            expect(sameState(shadow, repo.computeMapState(ep))).toEqual([])
          }
          // rules come
          if (moreDocs.length) repo.upsert(toYaml(moreDocs, 'more', audit.slice(2)))
          check()
          // a rule is replaced (same name, new content), another one goes
          if (replacement.length) repo.upsert(toYaml(replacement, 'p', audit.slice(1)))
          check()
          const victim = repo.policies[removeCount % Math.max(1, repo.policies.length)]
          if (victim) repo.delete(victim)
          check()
          // two changes before one refresh
          if (moreDocs.length) repo.delete(repo.policies.filter((d) => d.name.startsWith('more')))
          repo.updateIdentities([
            { id: 6000, labels: podLabels(buildPods([{ ns: 'n2', app: 'b' }])[0] as Pod) },
          ])
          if (replacement.length) repo.upsert(toYaml(replacement.slice(0, 1), 'more'))
          check()
          tracked.dispose()
        },
      ),
      { numRuns: runs(100) },
    )
  }, 120_000)
})
