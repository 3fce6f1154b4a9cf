import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compileFilter,
  compileFilters,
  FilterError,
  type FlowFilter,
  labelsMatch,
  parseLabelSelector,
} from '../src/filter'
import { type Flow, FlowType, IPVersion, L7FlowType, Verdict } from '../src/types'

// Small value pools so that generated filters and flows actually meet.
const IPS = ['10.0.0.1', '10.0.0.2', '10.0.1.7', '192.168.1.1', 'fd00::1', 'fd00::2']
const CIDRS = ['10.0.0.0/24', '10.0.0.0/16', '0.0.0.0/0', '192.168.1.1/32', 'fd00::/64', '10.0.0.2']
const NS = ['default', 'kube-system']
const PODS = ['xwing-1', 'xwing-2', 'deathstar-abc', 'coredns-x']
const APPS = ['xwing', 'deathstar', 'coredns']
const PORTS = [53, 80, 443, 8080]
const METHODS = ['GET', 'POST', 'PUT']

const endpointArb = fc.record({
  identity: fc.constantFrom(1, 2, 1000, 2000, 3000),
  namespace: fc.constantFrom(...NS),
  podName: fc.constantFrom(...PODS),
  labels: fc.subarray(
    [...APPS.map((a) => `k8s:app=${a}`), 'k8s:tier=front', 'reserved:host', 'k8s:debug'],
    { minLength: 0 },
  ),
})

const flowArb: fc.Arbitrary<Flow> = fc
  .record({
    verdict: fc.constantFrom(Verdict.FORWARDED, Verdict.DROPPED, Verdict.AUDIT),
    src: endpointArb,
    dst: endpointArb,
    sip: fc.constantFrom(...IPS),
    dip: fc.constantFrom(...IPS),
    proto: fc.constantFrom('TCP', 'UDP', 'ICMPv4'),
    sport: fc.constantFrom(...PORTS, 40000),
    dport: fc.constantFrom(...PORTS),
    dir: fc.constantFrom(0, 1, 2),
    reply: fc.boolean(),
    http: fc.option(
      fc.record({
        method: fc.constantFrom(...METHODS),
        url: fc.constantFrom('/v1/exhaust-port', '/v1/request-landing', '/healthz'),
        code: fc.constantFrom(200, 403, 404, 503),
      }),
      { nil: undefined },
    ),
    syn: fc.boolean(),
    ack: fc.boolean(),
  })
  .map((r) => {
    const flow: Flow = {
      verdict: r.verdict,
      Type: r.http ? FlowType.L7 : FlowType.L3_L4,
      IP: {
        source: r.sip,
        destination: r.dip,
        ipVersion: r.sip.includes(':') ? IPVersion.IPv6 : IPVersion.IPv4,
      },
      source: r.src,
      destination: r.dst,
      trafficDirection: r.dir as Flow['trafficDirection'],
      isReply: { value: r.reply },
      nodeName: 'node-a',
      eventType: { type: r.http ? 129 : 4, subType: 0 },
    }
    if (r.proto === 'TCP') {
      flow.l4 = {
        TCP: {
          sourcePort: r.sport,
          destinationPort: r.dport,
          flags: { ...(r.syn ? { SYN: true } : {}), ...(r.ack ? { ACK: true } : {}) },
        },
      }
    } else if (r.proto === 'UDP')
      flow.l4 = { UDP: { sourcePort: r.sport, destinationPort: r.dport } }
    else flow.l4 = { ICMPv4: { type: 8, code: 0 } }
    if (r.http) flow.l7 = { type: L7FlowType.REQUEST, http: r.http }
    return flow
  })

// Each field of a filter, as an independent arbitrary.
const fieldArbs = {
  sourceIp: fc.array(fc.constantFrom(...CIDRS), { minLength: 1, maxLength: 2 }),
  destinationIp: fc.array(fc.constantFrom(...CIDRS), { minLength: 1, maxLength: 2 }),
  sourcePod: fc.array(fc.constantFrom('xwing', 'default/', 'kube-system/core', 'default/death'), {
    minLength: 1,
    maxLength: 2,
  }),
  destinationPod: fc.array(fc.constantFrom('xwing', 'default/', 'deathstar'), {
    minLength: 1,
    maxLength: 2,
  }),
  sourceLabel: fc.array(
    fc.constantFrom('k8s:app=xwing', 'app in (deathstar, coredns)', '!debug', 'tier'),
    { minLength: 1, maxLength: 2 },
  ),
  destinationLabel: fc.array(fc.constantFrom('app=deathstar', 'app!=xwing', 'reserved:host'), {
    minLength: 1,
    maxLength: 2,
  }),
  sourceIdentity: fc.array(fc.constantFrom(1, 1000, 3000), { minLength: 1, maxLength: 2 }),
  destinationIdentity: fc.array(fc.constantFrom(2, 2000), { minLength: 1, maxLength: 2 }),
  sourcePort: fc.array(fc.constantFrom('40000', '80'), { minLength: 1, maxLength: 2 }),
  destinationPort: fc.array(fc.constantFrom('53', '80', '443'), { minLength: 1, maxLength: 2 }),
  verdict: fc.array(fc.constantFrom(Verdict.FORWARDED, Verdict.DROPPED), {
    minLength: 1,
    maxLength: 2,
  }),
  protocol: fc.array(fc.constantFrom('tcp', 'UDP', 'icmp', 'http'), { minLength: 1, maxLength: 2 }),
  trafficDirection: fc.array(fc.constantFrom(1, 2), { minLength: 1, maxLength: 2 }),
  httpMethod: fc.array(fc.constantFrom('get', 'POST'), { minLength: 1, maxLength: 2 }),
  httpPath: fc.array(fc.constantFrom('^/v1/', 'exhaust'), { minLength: 1, maxLength: 2 }),
  httpStatusCode: fc.array(fc.constantFrom('4+', '200', '50+'), { minLength: 1, maxLength: 2 }),
  reply: fc.array(fc.boolean(), { minLength: 1, maxLength: 1 }),
  tcpFlags: fc.array(fc.constantFrom({ SYN: true }, { SYN: true, ACK: true }, { ACK: true }), {
    minLength: 1,
    maxLength: 2,
  }),
  ipVersion: fc.array(fc.constantFrom(IPVersion.IPv4, IPVersion.IPv6), {
    minLength: 1,
    maxLength: 1,
  }),
} satisfies { [K in keyof FlowFilter]?: fc.Arbitrary<NonNullable<FlowFilter[K]>> }

type FieldName = keyof typeof fieldArbs
const FIELDS = Object.keys(fieldArbs) as FieldName[]

const filterArb: fc.Arbitrary<FlowFilter> = fc
  .subarray(FIELDS, { minLength: 0, maxLength: 4 })
  .chain((fields) =>
    fc.record(
      Object.fromEntries(fields.map((f) => [f, fieldArbs[f]])) as Record<
        string,
        fc.Arbitrary<unknown>
      >,
    ),
  ) as fc.Arbitrary<FlowFilter>

describe('filter semantics (fast-check)', () => {
  it('AND within a filter: a filter matches iff each of its fields alone matches', () => {
    fc.assert(
      fc.property(filterArb, flowArb, (filter, flow) => {
        const whole = compileFilter(filter)(flow)
        const parts = Object.entries(filter).every(([k, v]) =>
          compileFilter({ [k]: v } as FlowFilter)(flow),
        )
        expect(whole).toBe(parts)
      }),
      { numRuns: 1000 },
    )
  })

  it('OR within a field: [a, b] matches iff [a] or [b] matches', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIELDS), flowArb, fc.nat(), (field, flow, seed) => {
        const values = fc.sample(fieldArbs[field] as fc.Arbitrary<unknown[]>, { numRuns: 2, seed })
        const all = values.flat()
        const together = compileFilter({ [field]: all } as FlowFilter)(flow)
        const any = all.some((v) => compileFilter({ [field]: [v] } as FlowFilter)(flow))
        expect(together).toBe(any)
      }),
      { numRuns: 500 },
    )
  })

  it('OR across filters, and whitelist minus blacklist', () => {
    fc.assert(
      fc.property(
        fc.array(filterArb, { maxLength: 3 }),
        fc.array(filterArb, { maxLength: 2 }),
        flowArb,
        (white, black, flow) => {
          const inWhite = white.length === 0 || white.some((f) => compileFilter(f)(flow))
          const inBlack = black.some((f) => compileFilter(f)(flow))
          expect(compileFilters(white, black)(flow)).toBe(inWhite && !inBlack)
        },
      ),
      { numRuns: 500 },
    )
  })

  it("a filter made from a flow's own attributes matches it, and blacklisting it removes it", () => {
    fc.assert(
      fc.property(flowArb, (flow) => {
        const ports = flow.l4?.TCP ?? flow.l4?.UDP
        const self: FlowFilter = {
          sourceIp: [flow.IP?.source ?? ''],
          destinationIp: [flow.IP?.destination ?? ''],
          sourcePod: [`${flow.source?.namespace}/${flow.source?.podName}`],
          destinationPod: [`${flow.destination?.namespace}/${flow.destination?.podName}`],
          sourceIdentity: [flow.source?.identity ?? 0],
          destinationIdentity: [flow.destination?.identity ?? 0],
          verdict: [flow.verdict],
          reply: [flow.isReply?.value ?? false],
          nodeName: ['node-*'],
          ...(ports ? { destinationPort: [String(ports.destinationPort)] } : {}),
          ...(flow.source?.labels?.length ? { sourceLabel: [flow.source.labels.join(',')] } : {}),
        }
        expect(compileFilter(self)(flow)).toBe(true)
        expect(compileFilters([], [self])(flow)).toBe(false)
      }),
      { numRuns: 500 },
    )
  })

  it('an empty filter matches everything; a CIDR /0 matches every IPv4 address', () => {
    fc.assert(
      fc.property(flowArb, (flow) => {
        expect(compileFilter({})(flow)).toBe(true)
        const v4 = flow.IP?.ipVersion === IPVersion.IPv4
        expect(compileFilter({ sourceIp: ['0.0.0.0/0'] })(flow)).toBe(v4)
      }),
    )
  })

  it('CIDR matching agrees with integer arithmetic', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 32 }), (net, ip, bits) => {
        const toInt = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0)
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
        const expected = (toInt(net) & mask) >>> 0 === (toInt(ip) & mask) >>> 0
        const flow: Flow = {
          verdict: 1,
          Type: 1,
          IP: { source: ip, destination: ip, ipVersion: 1 },
        }
        expect(compileFilter({ sourceIp: [`${net}/${bits}`] })(flow)).toBe(expected)
      }),
      { numRuns: 1000 },
    )
  })
})

describe('filter details', () => {
  const flow: Flow = {
    verdict: Verdict.FORWARDED,
    Type: FlowType.L7,
    IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: IPVersion.IPv4 },
    l4: { TCP: { sourcePort: 40000, destinationPort: 80 } },
    source: {
      identity: 1000,
      namespace: 'default',
      podName: 'xwing-1',
      labels: ['k8s:app=xwing', 'k8s:org=alliance'],
    },
    destination: {
      identity: 2000,
      namespace: 'default',
      podName: 'deathstar-abc',
      labels: ['k8s:app=deathstar'],
    },
    destinationNames: ['deathstar.default.svc.cluster.local.'],
    destinationService: { name: 'deathstar', namespace: 'default' },
    l7: {
      type: L7FlowType.REQUEST,
      http: { method: 'POST', url: 'http://deathstar/v1/exhaust-port?x=1', code: 403 },
    },
  }
  const m = (f: FlowFilter) => compileFilter(f)(flow)

  it('label selectors: source prefixes, in/notin, existence, comma = AND', () => {
    expect(m({ sourceLabel: ['k8s:app=xwing'] })).toBe(true)
    expect(m({ sourceLabel: ['any:app=xwing'] })).toBe(true)
    expect(m({ sourceLabel: ['reserved:app=xwing'] })).toBe(false)
    expect(m({ sourceLabel: ['app in (xwing, tiefighter)'] })).toBe(true)
    expect(m({ sourceLabel: ['app notin (xwing)'] })).toBe(false)
    expect(m({ sourceLabel: ['app=xwing,org=empire'] })).toBe(false)
    expect(m({ sourceLabel: ['app=xwing,org=alliance'] })).toBe(true)
    expect(m({ sourceLabel: ['!org'] })).toBe(false)
    expect(labelsMatch(['reserved:host'], parseLabelSelector('reserved:host'))).toBe(true)
  })

  it('HTTP path matches the path only; status prefixes; methods case-insensitively', () => {
    expect(m({ httpPath: ['^/v1/exhaust-port$'] })).toBe(true)
    expect(m({ httpPath: ['x=1'] })).toBe(false)
    expect(m({ httpStatusCode: ['4+'] })).toBe(true)
    expect(m({ httpStatusCode: ['40+'] })).toBe(true)
    expect(m({ httpStatusCode: ['5+'] })).toBe(false)
    expect(m({ httpMethod: ['post'] })).toBe(true)
  })

  it('FQDN wildcards ignore the trailing dot; services by namespace/prefix', () => {
    expect(m({ destinationFqdn: ['*.svc.cluster.local'] })).toBe(true)
    expect(m({ destinationFqdn: ['deathstar.*'] })).toBe(true)
    expect(m({ sourceFqdn: ['*'] })).toBe(false)
    expect(m({ destinationService: ['default/death'] })).toBe(true)
    expect(m({ destinationService: ['kube-system/'] })).toBe(false)
  })

  it('invalid values throw FilterError naming the field path', () => {
    const cases: [FlowFilter, RegExp][] = [
      [
        { sourceIp: ['10.0.0.300'] },
        /whitelist\[0\]\.sourceIp\[0\]: expected an IP address or CIDR, got '10.0.0.300'/,
      ],
      [{ destinationPort: ['http'] }, /whitelist\[0\]\.destinationPort\[0\]: expected a port/],
      [{ httpPath: ['('] }, /whitelist\[0\]\.httpPath\[0\]: invalid regular expression/],
      [{ protocol: ['quic'] }, /whitelist\[0\]\.protocol\[0\]: unknown protocol 'quic'/],
      [
        { sourceLabel: ['app in x'] },
        /whitelist\[0\]\.sourceLabel\[0\]: cannot parse label requirement/,
      ],
      [{ httpStatusCode: ['4xx'] }, /whitelist\[0\]\.httpStatusCode\[0\]/],
    ]
    for (const [f, re] of cases) {
      expect(() => compileFilters([f])).toThrow(FilterError)
      expect(() => compileFilters([f])).toThrow(re)
    }
  })
})
