/** Cilium's documented policy examples and semantics: Kafka, DNS/toFQDNs, deny, entities, CIDR, ... */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  type IdentityData,
  lookupMapState,
  PolicyError,
  PolicyRepository,
  type TraceEndpoint,
  traceEndpointLabels,
} from '../src/index'

const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
const pod = (
  labels: Record<string, string>,
  namespace = 'default',
  ips: string[] = [],
): TraceEndpoint => ({ namespace, labels, ips })
const world = (ip: string): TraceEndpoint => ({ ips: [ip] })
const ident = (id: number, e: TraceEndpoint): IdentityData => ({
  id,
  labels: traceEndpointLabels(e),
  ips: [...(e.ips ?? [])],
})

describe('Kafka topics (role produce/consume)', () => {
  const repo = new PolicyRepository()
  repo.upsert(fixture('kafka-empire.yaml'))
  const kafka = pod({ app: 'kafka' })
  const hq = pod({ app: 'empire-hq' })
  const outpost = pod({ app: 'empire-outpost' })
  const backup = pod({ app: 'empire-backup' })
  const t = (src: TraceEndpoint, apiKey: string, topic: string) =>
    repo.trace({
      source: src,
      destination: kafka,
      port: 9092,
      kafka: { apiKey, apiVersion: 0, topic, clientID: 'x' },
    })

  it('lets empire-hq produce to both topics', () => {
    expect(t(hq, 'produce', 'deathstar-plans').verdict).toBe('allowed')
    expect(t(hq, 'produce', 'empire-announce').verdict).toBe('allowed')
    expect(t(hq, 'fetch', 'empire-announce').verdict).toBe('denied')
  })
  it('lets outposts consume empire-announce only', () => {
    expect(t(outpost, 'fetch', 'empire-announce').verdict).toBe('allowed')
    expect(t(outpost, 'fetch', 'deathstar-plans').verdict).toBe('denied')
    expect(t(outpost, 'produce', 'empire-announce').ingress.reason).toBe('denied-at-l7')
  })
  it('lets the backup consume the plans', () => {
    expect(t(backup, 'fetch', 'deathstar-plans').verdict).toBe('allowed')
    expect(t(backup, 'offsetcommit', 'deathstar-plans').verdict).toBe('allowed')
  })
  it('keeps other pods out at L3', () => {
    expect(t(pod({ app: 'rebel' }), 'fetch', 'empire-announce').ingress.reason).toBe('default-deny')
  })
  it('gives the proxy the per-peer Kafka rules', () => {
    const ids = [ident(300, hq), ident(301, outpost), ident(302, kafka)]
    const repoIds = repo.updateIdentities(ids)
    expect(repoIds.identities.size).toBe(3)
    const l7 = repo.l7Rules(
      { labels: traceEndpointLabels(kafka) },
      { direction: 'ingress', peerIdentity: 301, port: 9092 },
    )
    expect(l7?.parser).toBe('kafka')
    expect(l7?.rules.map((r) => r.rules)).toEqual([
      { parser: 'kafka', kafka: [{ role: 'consume', topic: 'empire-announce' }] },
    ])
    const ms = repo.computeMapState({ labels: traceEndpointLabels(kafka) }, undefined, {
      proxyPortFor: () => 4242,
    })
    expect(
      ms.get({ identity: 301, direction: 'ingress', protocol: 6, port: 9092, portPrefixLen: 16 }),
    ).toMatchObject({ l7Parser: 'kafka', proxyPort: 4242 })
  })
})

describe('DNS rules and toFQDNs', () => {
  const mediabot = pod({ org: 'alliance', class: 'mediabot' })
  const kubeDns = pod({ 'k8s-app': 'kube-dns' }, 'kube-system')
  const ghIp = '140.82.112.6'

  it('allows DNS to kube-dns via the proxy and evaluates the query', () => {
    const repo = new PolicyRepository()
    repo.upsert(fixture('dns-fqdn.yaml'))
    const r = repo.trace({
      source: mediabot,
      destination: kubeDns,
      port: 53,
      protocol: 'UDP',
      dns: { name: 'api.github.com.' },
    })
    expect(r.verdict).toBe('allowed')
    expect(r.egress.l7?.parser).toBe('dns')
    expect(r.egress.l7?.verdict).toBe('allowed')
  })

  it('allows api.github.com only after the DNS proxy learned its IP', () => {
    const repo = new PolicyRepository()
    repo.upsert(fixture('dns-fqdn.yaml'))
    expect(repo.fqdnSelectors().map((s) => s.matchName ?? s.matchPattern)).toEqual([
      'api.github.com',
      '*.cilium.io',
    ])
    const cidrId: IdentityData = { id: 16777300, labels: [`cidr:${ghIp}/32`, 'reserved:world'] }
    repo.updateIdentities([cidrId, ident(500, mediabot)])
    const tracked = repo.endpointPolicy({ labels: traceEndpointLabels(mediabot) })
    expect(repo.trace({ source: mediabot, destination: world(ghIp), port: 443 }).verdict).toBe(
      'denied',
    )
    expect(
      lookupMapState(tracked.mapState, {
        identity: cidrId.id,
        direction: 'egress',
        protocol: 6,
        port: 443,
      }),
    ).toBeUndefined()

    const gen = repo.generation
    const learned = repo.learnFqdn('API.GitHub.com.', [ghIp, '140.82.112.7'])
    expect(repo.generation).toBeGreaterThan(gen)
    expect(learned.selectors.map((x) => x.matchName)).toEqual(['api.github.com'])
    expect(learned.needIdentities).toEqual([
      { ip: '140.82.112.7', labels: ['cidr:140.82.112.7/32', 'reserved:world'] },
    ])
    expect(repo.learnFqdn('example.org', ['9.9.9.9']).needIdentities).toEqual([])
    expect(repo.trace({ source: mediabot, destination: world(ghIp), port: 443 }).verdict).toBe(
      'allowed',
    )
    expect(repo.trace({ source: mediabot, destination: world(ghIp), port: 80 }).verdict).toBe(
      'denied',
    )
    const diff = tracked.refresh()
    expect(diff.upserts.map((e) => [e.key.identity, e.key.protocol, e.key.port])).toEqual([
      [cidrId.id, 6, 443],
    ])
    expect(diff.deletes).toEqual([])

    repo.selectorCache.forgetFqdn('api.github.com')
    expect(tracked.refresh().deletes.map((k) => k.identity)).toEqual([cidrId.id])
    tracked.dispose()
  })

  it('matches patterns one label deep', () => {
    const repo = new PolicyRepository()
    repo.upsert(fixture('dns-fqdn.yaml'))
    repo.learnFqdn('docs.cilium.io', ['104.198.14.52'])
    repo.learnFqdn('a.b.cilium.io', ['104.198.14.53'])
    expect(
      repo.trace({ source: mediabot, destination: world('104.198.14.52'), port: 443 }).verdict,
    ).toBe('allowed')
    expect(
      repo.trace({ source: mediabot, destination: world('104.198.14.53'), port: 443 }).verdict,
    ).toBe('denied')
  })
})

describe('deny policies', () => {
  it('external lockdown: world denied, the cluster still allowed', () => {
    const repo = new PolicyRepository()
    repo.upsert(fixture('external-lockdown.yaml'))
    const web = pod({ app: 'web' })
    const r = repo.trace({ source: world('1.2.3.4'), destination: web, port: 80 })
    expect(r.verdict).toBe('denied')
    expect(r.ingress.reason).toBe('denied-by-deny-rule')
    expect(repo.trace({ source: pod({ app: 'client' }), destination: web, port: 80 }).verdict).toBe(
      'allowed',
    )
    expect(repo.trace({ source: { reserved: 'host' }, destination: web, port: 80 }).verdict).toBe(
      'allowed',
    )
  })

  it('the documented allow/deny table: L4 deny on 80 beats L7 and L3 allows', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: allow }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress:
    - fromEndpoints: [ { matchLabels: { app: client } } ]
    - fromEndpoints: [ { matchLabels: { app: client } } ]
      toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [ { method: GET } ] } } ]
    - fromEndpoints: [ { matchLabels: { app: client } } ]
      toPorts: [ { ports: [ { port: "81", protocol: TCP } ] } ]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: deny }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingressDeny:
    - fromEndpoints: [ { matchLabels: { app: client } } ]
      toPorts: [ { ports: [ { port: "80", protocol: TCP } ] } ]
`)
    const client = pod({ app: 'client' })
    const server = pod({ app: 'server' })
    expect(repo.trace({ source: client, destination: server, port: 81 }).verdict).toBe('allowed')
    expect(
      repo.trace({
        source: client,
        destination: server,
        port: 80,
        http: { method: 'GET', path: '/' },
      }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: client, destination: server, port: 8, protocol: 'ICMP' }).verdict,
    ).toBe('allowed')
  })

  it('an L3 deny of one identity beats a wildcard L4 allow in map state (closure entry)', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: p }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress:
    - toPorts: [ { ports: [ { port: "80", protocol: TCP } ] } ]
  ingressDeny:
    - fromEndpoints: [ { matchLabels: { app: bad } } ]
`)
    const server = pod({ app: 'server' })
    const ids = [ident(700, pod({ app: 'bad' })), ident(701, pod({ app: 'good' }))]
    const ms = repo.computeMapState({ labels: traceEndpointLabels(server) }, ids)
    expect(
      ms.get({ identity: 0, direction: 'ingress', protocol: 6, port: 80, portPrefixLen: 16 })?.deny,
    ).toBe(false)
    expect(
      ms.get({ identity: 700, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 })?.deny,
    ).toBe(true)
    // the closure entry makes the most specific match a deny for identity 700 on 80/TCP
    expect(
      ms.get({ identity: 700, direction: 'ingress', protocol: 6, port: 80, portPrefixLen: 16 })
        ?.deny,
    ).toBe(true)
    expect(
      lookupMapState(ms, { identity: 700, direction: 'ingress', protocol: 6, port: 80 })?.value
        .deny,
    ).toBe(true)
    expect(
      lookupMapState(ms, { identity: 701, direction: 'ingress', protocol: 6, port: 80 })?.value
        .deny,
    ).toBe(false)
  })
})

describe('entities', () => {
  const repo = new PolicyRepository()
  repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: entities }
spec:
  endpointSelector: { matchLabels: { app: api } }
  ingress:
    - fromEntities: [ cluster ]
      toPorts: [ { ports: [ { port: "443", protocol: TCP } ] } ]
    - fromEntities: [ host, remote-node ]
  egress:
    - toEntities: [ kube-apiserver ]
    - toEntities: [ world ]
      toPorts: [ { ports: [ { port: "443", protocol: TCP } ] } ]
`)
  const api = pod({ app: 'api' })

  it('cluster = pods, host, remote-node, ... but not world', () => {
    expect(
      repo.trace({ source: pod({ any: 'pod' }, 'other'), destination: api, port: 443 }).verdict,
    ).toBe('allowed')
    expect(repo.trace({ source: world('8.8.8.8'), destination: api, port: 443 }).verdict).toBe(
      'denied',
    )
    expect(
      repo.trace({ source: { reserved: 'health' }, destination: api, port: 443 }).verdict,
    ).toBe('allowed')
    expect(repo.trace({ source: pod({ any: 'pod' }), destination: api, port: 80 }).verdict).toBe(
      'denied',
    )
  })
  it('host and remote-node on every port', () => {
    expect(repo.trace({ source: { reserved: 'host' }, destination: api, port: 9999 }).verdict).toBe(
      'allowed',
    )
    expect(
      repo.trace({ source: { reserved: 'remote-node' }, destination: api, port: 10250 }).verdict,
    ).toBe('allowed')
  })
  it('egress to kube-apiserver and world:443 only', () => {
    expect(
      repo.trace({ source: api, destination: { reserved: 'kube-apiserver' }, port: 6443 }).verdict,
    ).toBe('allowed')
    expect(repo.trace({ source: api, destination: world('1.1.1.1'), port: 443 }).verdict).toBe(
      'allowed',
    )
    expect(repo.trace({ source: api, destination: world('1.1.1.1'), port: 80 }).verdict).toBe(
      'denied',
    )
    expect(repo.trace({ source: api, destination: pod({ app: 'db' }), port: 5432 }).verdict).toBe(
      'denied',
    )
  })
})

describe('CIDR rules', () => {
  const repo = new PolicyRepository()
  repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: cidr }
spec:
  endpointSelector: { matchLabels: { app: crawler } }
  egress:
    - toCIDRSet:
        - cidr: 10.0.0.0/8
          except: [ 10.96.0.0/12 ]
    - toCIDR: [ 192.0.2.1/32 ]
      toPorts: [ { ports: [ { port: "8000", endPort: 8100, protocol: TCP } ] } ]
`)
  const crawler = pod({ app: 'crawler' })

  it('selects by containment with except', () => {
    expect(repo.trace({ source: crawler, destination: world('10.1.2.3'), port: 22 }).verdict).toBe(
      'allowed',
    )
    expect(
      repo.trace({ source: crawler, destination: world('10.100.0.1'), port: 22 }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: crawler, destination: world('192.0.2.1'), port: 8050 }).verdict,
    ).toBe('allowed')
    expect(
      repo.trace({ source: crawler, destination: world('192.0.2.1'), port: 8101 }).verdict,
    ).toBe('denied')
  })

  it('lists the CIDR prefixes to allocate identities for (cidr minus except)', () => {
    expect(repo.cidrPrefixes()).toEqual([
      '10.0.0.0/10',
      '10.112.0.0/12',
      '10.128.0.0/9',
      '10.64.0.0/11',
      '192.0.2.1/32',
    ])
    const ids: IdentityData[] = repo
      .cidrPrefixes()
      .map((p, i) => ({ id: 16777500 + i, labels: [`cidr:${p}`] }))
    const ms = repo.computeMapState({ labels: traceEndpointLabels(crawler) }, ids)
    for (const id of ids.slice(0, 4))
      expect(
        ms.get({ identity: id.id, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 })
          ?.deny,
      ).toBe(false)
  })

  it('compiles CIDR identities and splits the port range into prefixes', () => {
    const ids: IdentityData[] = [
      { id: 16777217, labels: ['cidr:10.0.0.0/8'] },
      { id: 16777218, labels: ['cidr:10.96.0.0/12'] },
      { id: 16777219, labels: ['cidr:10.1.0.0/16'] },
      { id: 16777220, labels: ['cidr:192.0.2.1/32'] },
      { id: 16777221, labels: ['cidr:0.0.0.0/0'] },
    ]
    const ms = repo.computeMapState({ labels: traceEndpointLabels(crawler) }, ids)
    const eg = ms.sorted().filter((e) => e.key.direction === 'egress')
    // 10.0.0.0/8 itself overlaps the except, so only prefixes wholly inside the remainder match
    expect(eg.filter((e) => e.key.protocol === 0).map((e) => e.key.identity)).toEqual([16777219])
    expect(
      eg
        .filter((e) => e.key.identity === 16777220)
        .map((e) => `${e.key.port}/${e.key.portPrefixLen}`),
    ).toEqual(['8000/10', '8064/11', '8096/14', '8100/16'])
  })
})

describe('CiliumCIDRGroup (cidrGroupRef)', () => {
  it('selects the CIDRs of the referenced group, following its changes', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: partners }
spec:
  endpointSelector: { matchLabels: { app: api } }
  ingress:
    - fromCIDRSet: [ { cidrGroupRef: partner-nets, except: [ 203.0.113.128/25 ] } ]
`)
    const api = pod({ app: 'api' })
    const partner = world('203.0.113.7')
    expect(repo.trace({ source: partner, destination: api, port: 443 }).verdict).toBe('denied')
    const cidrId: IdentityData = { id: 16777400, labels: ['cidr:203.0.113.0/25', 'reserved:world'] }
    repo.updateIdentities([cidrId])
    const tracked = repo.endpointPolicy({ labels: traceEndpointLabels(api) })
    repo.upsert(`
apiVersion: cilium.io/v2alpha1
kind: CiliumCIDRGroup
metadata: { name: partner-nets }
spec:
  externalCIDRs: [ 203.0.113.0/24, 198.51.100.0/24 ]
`)
    expect(repo.trace({ source: partner, destination: api, port: 443 }).verdict).toBe('allowed')
    expect(
      repo.trace({ source: world('203.0.113.200'), destination: api, port: 443 }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: world('198.51.100.1'), destination: api, port: 443 }).ingress
        .allowedBy[0]?.peer,
    ).toBe('CIDR group partner-nets except 203.0.113.128/25')
    expect(tracked.refresh().upserts.map((e) => e.key.identity)).toEqual([cidrId.id])
    expect(repo.cidrPrefixes()).toEqual(['198.51.100.0/24', '203.0.113.0/25'])
    repo.delete('CiliumCIDRGroup/partner-nets')
    expect(repo.trace({ source: partner, destination: api, port: 443 }).verdict).toBe('denied')
    expect(tracked.refresh().deletes.map((k) => k.identity)).toEqual([cidrId.id])
    tracked.dispose()
  })
})

describe('more semantics', () => {
  it('enableDefaultDeny: false adds allows without isolating the endpoint', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: { name: monitoring }
spec:
  endpointSelector: {}
  enableDefaultDeny: { ingress: false, egress: false }
  ingress:
    - fromEndpoints: [ { matchLabels: { "k8s:io.kubernetes.pod.namespace": monitoring } } ]
`)
    expect(
      repo.trace({ source: pod({ a: 'b' }), destination: pod({ c: 'd' }), port: 80 }).verdict,
    ).toBe('allowed')
    const ms = repo.computeMapState({ labels: traceEndpointLabels(pod({ c: 'd' })) }, [])
    expect(ms.defaultDeny).toEqual({ ingress: false, egress: false })
  })

  it('host policies (nodeSelector) apply to the host only', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: { name: host-fw }
spec:
  nodeSelector: { matchLabels: { role: worker } }
  ingress:
    - fromEntities: [ cluster ]
      toPorts: [ { ports: [ { port: "22", protocol: TCP } ] } ]
`)
    const host = { reserved: 'host', labels: { role: 'worker' } } as const
    expect(repo.trace({ source: world('8.8.8.8'), destination: host, port: 22 }).verdict).toBe(
      'denied',
    )
    expect(repo.trace({ source: pod({ app: 'x' }), destination: host, port: 22 }).verdict).toBe(
      'allowed',
    )
    expect(
      repo.trace({ source: world('8.8.8.8'), destination: pod({ role: 'worker' }), port: 22 })
        .verdict,
    ).toBe('allowed')
  })

  it('ICMP rules (icmps) by type name', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: icmp }
spec:
  endpointSelector: { matchLabels: { app: t } }
  ingress:
    - icmps: [ { fields: [ { type: EchoRequest, family: IPv4 }, { type: 128, family: IPv6 } ] } ]
`)
    const t = pod({ app: 't' })
    expect(repo.trace({ source: pod({}), destination: t, port: 8, protocol: 'ICMP' }).verdict).toBe(
      'allowed',
    )
    expect(repo.trace({ source: pod({}), destination: t, port: 0, protocol: 'ICMP' }).verdict).toBe(
      'denied',
    )
    expect(
      repo.trace({ source: pod({}), destination: t, port: 128, protocol: 'ICMPv6' }).verdict,
    ).toBe('allowed')
    expect(repo.trace({ source: pod({}), destination: t, port: 8, protocol: 'TCP' }).verdict).toBe(
      'denied',
    )
  })

  it('authentication mode required sets the auth type', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: auth }
spec:
  endpointSelector: { matchLabels: { app: s } }
  ingress:
    - fromEndpoints: [ { matchLabels: { app: c } } ]
      authentication: { mode: required }
`)
    const ms = repo.computeMapState({ labels: traceEndpointLabels(pod({ app: 's' })) }, [
      ident(900, pod({ app: 'c' })),
    ])
    expect(
      ms.get({ identity: 900, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 })
        ?.authType,
    ).toBe(1)
  })

  it('toServices follows the service selector', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: svc }
spec:
  endpointSelector: { matchLabels: { app: fe } }
  egress:
    - toServices: [ { k8sService: { serviceName: backend, namespace: default } } ]
`)
    const be = pod({ app: 'be' })
    repo.updateIdentities([ident(800, be)])
    expect(repo.trace({ source: pod({ app: 'fe' }), destination: be, port: 8080 }).verdict).toBe(
      'denied',
    )
    repo.updateService({ namespace: 'default', name: 'backend', selector: { app: 'be' } })
    expect(repo.trace({ source: pod({ app: 'fe' }), destination: be, port: 8080 }).verdict).toBe(
      'allowed',
    )
    const ms = repo.computeMapState({ labels: traceEndpointLabels(pod({ app: 'fe' })) })
    expect(
      ms.get({ identity: 800, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 })?.deny,
    ).toBe(false)
  })

  it('CNP named ports resolve against the destination endpoint', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: named }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
    - toPorts: [ { ports: [ { port: http-alt } ] } ]
`)
    const web: TraceEndpoint = {
      ...pod({ app: 'web' }),
      namedPorts: { 'http-alt': { port: 8080, protocol: 'TCP' } },
    }
    expect(repo.trace({ source: pod({}), destination: web, port: 8080 }).verdict).toBe('allowed')
    expect(
      repo.trace({ source: pod({}), destination: web, port: 8080, protocol: 'UDP' }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: pod({}), destination: pod({ app: 'web' }), port: 8080 }).verdict,
    ).toBe('denied')
    const ms = repo.computeMapState(
      { labels: traceEndpointLabels(web), namedPorts: web.namedPorts as never },
      [],
    )
    expect(
      ms.get({ identity: 0, direction: 'ingress', protocol: 6, port: 8080, portPrefixLen: 16 })
        ?.deny,
    ).toBe(false)
  })

  it('conflicting L7 parsers on one port of one endpoint are an error', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: a }
spec:
  endpointSelector: { matchLabels: { app: s } }
  ingress:
    - toPorts: [ { ports: [ { port: "9000", protocol: TCP } ], rules: { http: [ {} ] } } ]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: b }
spec:
  endpointSelector: { matchLabels: { app: s } }
  ingress:
    - toPorts: [ { ports: [ { port: "9000", protocol: TCP } ], rules: { kafka: [ { topic: t } ] } } ]
`)
    expect(() =>
      repo.computeMapState({ labels: traceEndpointLabels(pod({ app: 's' })) }, []),
    ).toThrowError(PolicyError)
    try {
      repo.trace({ source: pod({}), destination: pod({ app: 's' }), port: 9000 })
      expect.unreachable()
    } catch (e) {
      expect((e as PolicyError).code).toBe('L7_PARSER_CONFLICT')
    }
  })

  it('an L3 allow next to an L7 rule on the same port allows every request of that peer', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: mixed }
spec:
  endpointSelector: { matchLabels: { app: s } }
  ingress:
    - toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [ { method: GET } ] } } ]
    - fromEndpoints: [ { matchLabels: { app: admin } } ]
`)
    const s = pod({ app: 's' })
    expect(
      repo.trace({
        source: pod({ app: 'admin' }),
        destination: s,
        port: 80,
        http: { method: 'DELETE', path: '/' },
      }).verdict,
    ).toBe('allowed')
    expect(
      repo.trace({
        source: pod({ app: 'user' }),
        destination: s,
        port: 80,
        http: { method: 'DELETE', path: '/' },
      }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({
        source: pod({ app: 'user' }),
        destination: s,
        port: 80,
        http: { method: 'GET', path: '/' },
      }).verdict,
    ).toBe('allowed')
  })

  it('deny on a port range beats an exact-port allow inside it, and only inside it', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: ranges }
spec:
  endpointSelector: { matchLabels: { app: s } }
  ingress:
    - fromEndpoints: [ { matchLabels: { app: c } } ]
      toPorts: [ { ports: [ { port: "8080", protocol: TCP }, { port: "9000", protocol: TCP } ] } ]
  ingressDeny:
    - toPorts: [ { ports: [ { port: "8000", endPort: 8191, protocol: TCP } ] } ]
`)
    const ms = repo.computeMapState({ labels: traceEndpointLabels(pod({ app: 's' })) }, [
      ident(600, pod({ app: 'c' })),
    ])
    expect(
      ms.get({ identity: 0, direction: 'ingress', protocol: 6, port: 8064, portPrefixLen: 9 })
        ?.deny,
    ).toBe(true)
    expect(
      lookupMapState(ms, { identity: 600, direction: 'ingress', protocol: 6, port: 8080 })?.value
        .deny,
    ).toBe(true)
    expect(
      lookupMapState(ms, { identity: 600, direction: 'ingress', protocol: 6, port: 9000 })?.value
        .deny,
    ).toBe(false)
    expect(
      ms.get({ identity: 600, direction: 'ingress', protocol: 6, port: 8080, portPrefixLen: 16 })
        ?.derivedFrom,
    ).toEqual(['CiliumNetworkPolicy/default/ranges:spec.ingressDeny[0]'])
  })

  it('DNS rules on protocol ANY redirect TCP and UDP, not SCTP', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: any }
spec:
  endpointSelector: { matchLabels: { app: s } }
  egress:
    - toPorts: [ { ports: [ { port: "53", protocol: any } ], rules: { dns: [ { matchPattern: "*.svc.cluster.local" } ] } } ]
`)
    const ms = repo.computeMapState({ labels: traceEndpointLabels(pod({ app: 's' })) }, [])
    const at = (protocol: number) =>
      ms.get({ identity: 0, direction: 'egress', protocol, port: 53, portPrefixLen: 16 })
    expect(at(6)?.l7Parser).toBe('dns')
    expect(at(17)?.l7Parser).toBe('dns')
    expect(at(132)?.l7Parser).toBeUndefined()
    expect(at(132)?.deny).toBe(false)
    const dns = (name: string, protocol: string) =>
      repo.trace({
        source: pod({ app: 's' }),
        destination: pod({ app: 'dns' }, 'kube-system'),
        port: 53,
        protocol,
        dns: { name },
      })
    expect(dns('db.prod.svc.cluster.local', 'UDP').verdict).toBe('denied')
    expect(dns('prod.svc.cluster.local', 'UDP').verdict).toBe('allowed')
    expect(dns('example.com', 'TCP').egress.reason).toBe('denied-at-l7')
    // SCTP is not parsed by the DNS proxy: allowed at L4, no L7 verdict
    expect(dns('example.com', 'SCTP').verdict).toBe('allowed')
  })

  it('CCNP peer selectors select pods only ({} = every pod, not the world)', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: { name: pods-only }
spec:
  endpointSelector: { matchLabels: { app: db } }
  ingress:
    - fromEndpoints: [ {} ]
`)
    const db = pod({ app: 'db' }, 'data')
    expect(
      repo.trace({ source: pod({ app: 'x' }, 'other'), destination: db, port: 5432 }).verdict,
    ).toBe('allowed')
    expect(repo.trace({ source: world('1.2.3.4'), destination: db, port: 5432 }).verdict).toBe(
      'denied',
    )
    expect(repo.trace({ source: { reserved: 'host' }, destination: db, port: 5432 }).verdict).toBe(
      'denied',
    )
    const ms = repo.computeMapState({ labels: traceEndpointLabels(db) }, [
      ident(2, world('1.2.3.4')),
      ident(901, pod({ app: 'x' }, 'other')),
    ])
    expect(
      ms.get({ identity: 0, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 }),
    ).toBeUndefined()
    expect(
      ms.get({ identity: 901, direction: 'ingress', protocol: 0, port: 0, portPrefixLen: 0 })?.deny,
    ).toBe(false)
  })

  it('CNP selectors on namespace labels reach other namespaces', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: team, namespace: prod }
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints: [ { matchLabels: { io.cilium.k8s.namespace.labels.team: blue } } ]
`)
    const target = pod({ app: 't' }, 'prod')
    const blue: TraceEndpoint = {
      namespace: 'ops',
      labels: { app: 'a' },
      namespaceLabels: { team: 'blue' },
    }
    const red: TraceEndpoint = {
      namespace: 'dev',
      labels: { app: 'a' },
      namespaceLabels: { team: 'red' },
    }
    expect(repo.trace({ source: blue, destination: target, port: 1 }).verdict).toBe('allowed')
    expect(repo.trace({ source: red, destination: target, port: 1 }).verdict).toBe('denied')
  })

  it('a CNP endpointSelector always applies in the policy namespace', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: ns-override, namespace: prod }
spec:
  endpointSelector: { matchLabels: { k8s:io.kubernetes.pod.namespace: dev, app: t } }
  ingress: [ {} ]
`)
    expect(
      repo.trace({ source: pod({}), destination: pod({ app: 't' }, 'prod'), port: 1 }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: pod({}), destination: pod({ app: 't' }, 'dev'), port: 1 }).verdict,
    ).toBe('allowed')
  })

  it('an empty L7 rule list redirects to the proxy but allows every request; headers must be present', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: l7 }
spec:
  endpointSelector: { matchLabels: { app: s } }
  ingress:
    - fromEndpoints: [ { matchLabels: { app: a } } ]
      toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [] } } ]
    - fromEndpoints: [ { matchLabels: { app: b } } ]
      toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [ { headers: [ "X-Token: secret", "X-Trace" ] } ] } } ]
`)
    const s = pod({ app: 's' })
    const a = repo.trace({
      source: pod({ app: 'a' }),
      destination: s,
      port: 80,
      http: { method: 'DELETE', path: '/x' },
    })
    expect(a.verdict).toBe('allowed')
    expect(a.ingress.l7?.wildcard).toBe(true)
    const b = (headers: Record<string, string>) =>
      repo.trace({
        source: pod({ app: 'b' }),
        destination: s,
        port: 80,
        http: { method: 'GET', path: '/', headers },
      }).verdict
    expect(b({ 'x-token': 'secret', 'x-trace': '1' })).toBe('allowed')
    expect(b({ 'x-token': 'other', 'x-trace': '1' })).toBe('denied')
    expect(b({ 'x-token': 'secret' })).toBe('denied')
  })

  it('fromNodes selects node identities by node labels', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: nodes }
spec:
  endpointSelector: { matchLabels: { app: metrics } }
  ingress:
    - fromNodes: [ { matchLabels: { node-role.kubernetes.io/control-plane: "" } } ]
      toPorts: [ { ports: [ { port: "9100", protocol: TCP } ] } ]
`)
    const m = pod({ app: 'metrics' })
    const cp = {
      identityLabels: ['reserved:remote-node', 'k8s:node-role.kubernetes.io/control-plane='],
    }
    const worker = {
      identityLabels: ['reserved:remote-node', 'k8s:node-role.kubernetes.io/worker='],
    }
    expect(repo.trace({ source: cp, destination: m, port: 9100 }).verdict).toBe('allowed')
    expect(repo.trace({ source: worker, destination: m, port: 9100 }).verdict).toBe('denied')
    expect(
      repo.trace({
        source: { namespace: 'default', labels: { 'node-role.kubernetes.io/control-plane': '' } },
        destination: m,
        port: 9100,
      }).verdict,
    ).toBe('denied')
    const ms = repo.computeMapState({ labels: traceEndpointLabels(m) }, [
      { id: 6, labels: ['reserved:remote-node'] },
      { id: 70000, labels: cp.identityLabels },
    ])
    expect(
      ms.get({ identity: 70000, direction: 'ingress', protocol: 6, port: 9100, portPrefixLen: 16 })
        ?.deny,
    ).toBe(false)
    expect(
      ms.get({ identity: 6, direction: 'ingress', protocol: 6, port: 9100, portPrefixLen: 16 }),
    ).toBeUndefined()
  })

  it('CNP peer selectors are scoped to the policy namespace unless they name one', () => {
    const repo = new PolicyRepository()
    repo.upsert(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: ns, namespace: prod }
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints: [ { matchLabels: { app: a } } ]
    - fromEndpoints: [ { matchLabels: { app: b, k8s:io.kubernetes.pod.namespace: ops } } ]
`)
    const target = pod({ app: 't' }, 'prod')
    expect(
      repo.trace({ source: pod({ app: 'a' }, 'prod'), destination: target, port: 1 }).verdict,
    ).toBe('allowed')
    expect(
      repo.trace({ source: pod({ app: 'a' }, 'dev'), destination: target, port: 1 }).verdict,
    ).toBe('denied')
    expect(
      repo.trace({ source: pod({ app: 'b' }, 'ops'), destination: target, port: 1 }).verdict,
    ).toBe('allowed')
    expect(
      repo.trace({ source: pod({ app: 'b' }, 'prod'), destination: target, port: 1 }).verdict,
    ).toBe('denied')
    // the policy does not select pods of other namespaces
    expect(
      repo.trace({
        source: pod({ app: 'z' }, 'dev'),
        destination: pod({ app: 't' }, 'dev'),
        port: 1,
      }).verdict,
    ).toBe('allowed')
  })
})
