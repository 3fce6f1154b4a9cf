import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  type IdentityData,
  lookupMapState,
  PolicyRepository,
  parsePolicyDocuments,
  type TraceEndpoint,
} from '../src/index'

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')

const deathstar: TraceEndpoint = {
  namespace: 'default',
  labels: { org: 'empire', class: 'deathstar' },
  ips: ['10.0.0.10'],
}
const tiefighter: TraceEndpoint = {
  namespace: 'default',
  labels: { org: 'empire', class: 'tiefighter' },
  ips: ['10.0.0.11'],
}
const xwing: TraceEndpoint = {
  namespace: 'default',
  labels: { org: 'alliance', class: 'xwing' },
  ips: ['10.0.0.12'],
}

const ns = 'k8s:io.kubernetes.pod.namespace=default'
const ids: IdentityData[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 1001, labels: ['k8s:org=empire', 'k8s:class=deathstar', ns] },
  { id: 1002, labels: ['k8s:org=empire', 'k8s:class=tiefighter', ns] },
  { id: 1003, labels: ['k8s:org=alliance', 'k8s:class=xwing', ns] },
]

describe('Star Wars demo, L3/L4 policy', () => {
  const repo = new PolicyRepository()
  repo.upsert(parsePolicyDocuments(fixture('sw_l3_l4_policy.yaml')))

  it('lets the tiefighter land (org=empire -> deathstar:80/TCP)', () => {
    const r = repo.trace({ source: tiefighter, destination: deathstar, port: 80, protocol: 'TCP' })
    expect(r.verdict).toBe('allowed')
    expect(r.ingress.reason).toBe('allowed-by-rule')
    expect(r.ingress.allowedBy.map((a) => a.id)).toEqual([
      'CiliumNetworkPolicy/default/rule1:spec.ingress[0]',
    ])
    expect(r.egress.reason).toBe('no-default-deny')
  })

  it('drops the xwing (org=alliance) at the deathstar ingress', () => {
    const r = repo.trace({ source: xwing, destination: deathstar, port: 80, protocol: 'TCP' })
    expect(r.verdict).toBe('denied')
    expect(r.ingress.reason).toBe('default-deny')
    expect(r.ingress.selectedBy).toEqual(['CiliumNetworkPolicy/default/rule1'])
    expect(r.ingress.notMatched).toEqual([
      {
        id: 'CiliumNetworkPolicy/default/rule1:spec.ingress[0]',
        deny: false,
        reason: 'peer',
        detail: 'endpoints any:org In (empire) && k8s:io.kubernetes.pod.namespace In (default)',
      },
    ])
    expect(r.ingress.explanation).toContain('needs endpoints any:org In (empire)')
  })

  it('drops other ports and protocols from the tiefighter', () => {
    expect(
      repo.trace({ source: tiefighter, destination: deathstar, port: 81, protocol: 'TCP' }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: tiefighter, destination: deathstar, port: 80, protocol: 'UDP' }).verdict,
    ).toBe('denied')
    const r = repo.trace({ source: tiefighter, destination: deathstar, port: 81 })
    expect(r.ingress.notMatched.map((m) => [m.reason, m.detail])).toEqual([['port', '80/TCP']])
  })

  it('does not apply in another namespace', () => {
    const other = { ...tiefighter, namespace: 'other' }
    expect(repo.trace({ source: other, destination: deathstar, port: 80 }).verdict).toBe('denied')
    expect(
      repo.trace({ source: xwing, destination: { ...deathstar, namespace: 'other' }, port: 80 })
        .verdict,
    ).toBe('allowed')
  })

  it('compiles to one L3/L4 allow entry for the empire identities', () => {
    const ms = repo.computeMapState({ labels: ids[2]?.labels as string[] }, ids)
    const ingress = ms.sorted().filter((e) => e.key.direction === 'ingress')
    expect(
      ingress.map((e) => [
        e.key.identity,
        e.key.protocol,
        e.key.port,
        e.key.portPrefixLen,
        e.value.deny,
      ]),
    ).toEqual([
      [1001, 6, 80, 16, false],
      [1002, 6, 80, 16, false],
    ])
    expect(ms.defaultDeny).toEqual({ ingress: true, egress: false })
    // egress: no policy -> allow-all entry
    expect(
      ms.get({ identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 })?.deny,
    ).toBe(false)
    expect(
      lookupMapState(ms, { identity: 1003, direction: 'ingress', protocol: 6, port: 80 }),
    ).toBeUndefined()
    expect(
      lookupMapState(ms, { identity: 1002, direction: 'ingress', protocol: 6, port: 80 })?.value
        .deny,
    ).toBe(false)
  })
})

describe('Star Wars demo, L7 policy', () => {
  const repo = new PolicyRepository()
  repo.upsert(fixture('sw_l3_l4_l7_policy.yaml'))

  it('allows POST /v1/request-landing from the tiefighter', () => {
    const r = repo.trace({
      source: tiefighter,
      destination: deathstar,
      port: 80,
      protocol: 'TCP',
      http: { method: 'POST', path: '/v1/request-landing', headers: {} },
    })
    expect(r.verdict).toBe('allowed')
    expect(r.ingress.l7?.parser).toBe('http')
    expect(r.ingress.l7?.matched).toEqual({
      id: 'CiliumNetworkPolicy/default/rule1:spec.ingress[0]',
      index: 0,
    })
  })

  it('denies PUT /v1/exhaust-port at L7', () => {
    const r = repo.trace({
      source: tiefighter,
      destination: deathstar,
      port: 80,
      protocol: 'TCP',
      http: { method: 'PUT', path: '/v1/exhaust-port' },
    })
    expect(r.verdict).toBe('denied')
    expect(r.ingress.reason).toBe('denied-at-l7')
  })

  it('still drops the xwing at L3', () => {
    const r = repo.trace({
      source: xwing,
      destination: deathstar,
      port: 80,
      http: { method: 'POST', path: '/v1/request-landing' },
    })
    expect(r.verdict).toBe('denied')
    expect(r.ingress.reason).toBe('default-deny')
  })

  it('redirects port 80 to the HTTP proxy in map state and serves the L7 rules', () => {
    const ms = repo.computeMapState({ labels: ids[2]?.labels as string[] }, ids, {
      proxyPortFor: (parser, dir) => (parser === 'http' && dir === 'ingress' ? 15001 : 0),
    })
    const e = ms.get({
      identity: 1002,
      direction: 'ingress',
      protocol: 6,
      port: 80,
      portPrefixLen: 16,
    })
    expect(e).toMatchObject({ deny: false, proxyPort: 15001, l7Parser: 'http' })
    const l7 = repo.l7Rules(
      { labels: ids[2]?.labels as string[] },
      { direction: 'ingress', peerIdentity: 1002, port: 80 },
    )
    expect(l7?.parser).toBe('http')
    expect(l7?.wildcard).toBe(false)
    expect(l7?.rules[0]?.rules).toEqual({
      parser: 'http',
      http: [{ method: 'POST', path: '/v1/request-landing' }],
    })
    expect(
      repo.l7Rules(
        { labels: ids[2]?.labels as string[] },
        { direction: 'ingress', peerIdentity: 1003, port: 80 },
      ),
    ).toBeUndefined()
    // an identity unknown to the cache still gets the wildcard view, never "no rules"
    const wild = new PolicyRepository()
    wild.upsert(
      fixture('sw_l3_l4_l7_policy.yaml').replace(
        /- fromEndpoints:\n\s+- matchLabels:\n\s+org: empire\n\s+/,
        '- ',
      ),
    )
    expect(
      wild.l7Rules(
        { labels: ids[2]?.labels as string[] },
        { direction: 'ingress', peerIdentity: 4242, port: 80 },
      )?.parser,
    ).toBe('http')
  })
})
