/** Bad input: every rejection names the document, the field path and what was expected. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  PolicyError,
  PolicyErrorCode,
  PolicyRepository,
  parsePolicyDocuments,
  validatePolicyDocuments,
} from '../src/index'

const cnp = (spec: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'p', namespace: 'default' },
    spec,
    ...extra,
  })
const sel = { matchLabels: { app: 'x' } }

function fails(text: string): PolicyError {
  try {
    parsePolicyDocuments(text)
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyError)
    return e as PolicyError
  }
  throw new Error('expected a PolicyError')
}

const cases: Array<[string, string, string, string]> = [
  // [name, text, code, path]
  [
    'port out of range',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '99999', protocol: 'TCP' }] }] }],
    }),
    'INVALID_PORT',
    'spec.ingress[0].toPorts[0].ports[0].port',
  ],
  [
    'bad protocol',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'HTTP' }] }] }],
    }),
    'INVALID_PORT',
    'spec.ingress[0].toPorts[0].ports[0].protocol',
  ],
  [
    'bad port name',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: 'not_a-valid-name!' }] }] }],
    }),
    'INVALID_PORT',
    'spec.ingress[0].toPorts[0].ports[0].port',
  ],
  [
    'endPort below port',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '90', endPort: 80 }] }] }],
    }),
    'INVALID_PORT',
    'spec.ingress[0].toPorts[0].ports[0].endPort',
  ],
  [
    'endPort with named port',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: 'http', endPort: 80 }] }] }],
    }),
    'INVALID_PORT',
    'spec.ingress[0].toPorts[0].ports[0].endPort',
  ],
  [
    'except outside its cidr',
    cnp({
      endpointSelector: sel,
      egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }] }],
    }),
    'INVALID_CIDR',
    'spec.egress[0].toCIDRSet[0].except[0]',
  ],
  [
    'bad cidr',
    cnp({ endpointSelector: sel, egress: [{ toCIDR: ['10.0.0.0/33'] }] }),
    'INVALID_CIDR',
    'spec.egress[0].toCIDR[0]',
  ],
  [
    'http on ANY',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }],
    }),
    'INVALID_L7',
    'spec.ingress[0].toPorts[0].ports[0].protocol',
  ],
  [
    'toServices with toPorts',
    cnp({
      endpointSelector: sel,
      egress: [
        {
          toServices: [{ k8sService: { serviceName: 's' } }],
          toPorts: [{ ports: [{ port: '80' }] }],
        },
      ],
    }),
    'INVALID_COMBINATION',
    'spec.egress[0].toPorts',
  ],
  [
    'CIDR set without prefix length',
    cnp({ endpointSelector: sel, egress: [{ toCIDRSet: [{ cidr: '10.0.0.1' }] }] }),
    'INVALID_CIDR',
    'spec.egress[0].toCIDRSet[0].cidr',
  ],
  [
    'http on UDP',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'UDP' }], rules: { http: [{}] } }] }],
    }),
    'INVALID_L7',
    'spec.ingress[0].toPorts[0].ports[0].protocol',
  ],
  [
    'dns on ingress',
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchName: 'a.b' }] } },
          ],
        },
      ],
    }),
    'INVALID_L7',
    'spec.ingress[0].toPorts[0].rules.dns',
  ],
  [
    'dns without explicit port',
    cnp({
      endpointSelector: sel,
      egress: [
        {
          toPorts: [
            { ports: [{ port: '0', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } },
          ],
        },
      ],
    }),
    'INVALID_L7',
    'spec.egress[0].toPorts[0].ports[0].port',
  ],
  [
    'icmps with toPorts',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80' }] }], icmps: [{ fields: [{ type: 8 }] }] }],
    }),
    'INVALID_COMBINATION',
    'spec.ingress[0].icmps',
  ],
  [
    'toEndpoints with toCIDR',
    cnp({ endpointSelector: sel, egress: [{ toEndpoints: [sel], toCIDR: ['10.0.0.0/8'] }] }),
    'INVALID_COMBINATION',
    'spec.egress[0]',
  ],
  [
    'unknown entity',
    cnp({ endpointSelector: sel, ingress: [{ fromEntities: ['everyone'] }] }),
    'INVALID_VALUE',
    'spec.ingress[0].fromEntities[0]',
  ],
  [
    'bad regex',
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ path: '/(a' }] } },
          ],
        },
      ],
    }),
    'INVALID_REGEX',
    'spec.ingress[0].toPorts[0].rules.http[0].path',
  ],
  [
    'lookahead is not RE2',
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ path: '/(?=a)' }] } },
          ],
        },
      ],
    }),
    'INVALID_REGEX',
    'spec.ingress[0].toPorts[0].rules.http[0].path',
  ],
  [
    'kafka role and apiKey',
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            {
              ports: [{ port: '9092', protocol: 'TCP' }],
              rules: { kafka: [{ role: 'produce', apiKey: 'fetch' }] },
            },
          ],
        },
      ],
    }),
    'INVALID_COMBINATION',
    'spec.ingress[0].toPorts[0].rules.kafka[0]',
  ],
  [
    'kafka bad topic',
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '9092', protocol: 'TCP' }], rules: { kafka: [{ topic: 'a b' }] } },
          ],
        },
      ],
    }),
    'INVALID_L7',
    'spec.ingress[0].toPorts[0].rules.kafka[0].topic',
  ],
  [
    'two parsers in one rule',
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          toPorts: [
            { ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}], kafka: [{}] } },
          ],
        },
      ],
    }),
    'INVALID_L7',
    'spec.ingress[0].toPorts[0].rules',
  ],
  [
    'bad operator',
    cnp({ endpointSelector: { matchExpressions: [{ key: 'a', operator: 'Maybe' }] } }),
    'INVALID_SELECTOR',
    'spec.endpointSelector.matchExpressions[0].operator',
  ],
  [
    'In without values',
    cnp({ endpointSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] } }),
    'INVALID_SELECTOR',
    'spec.endpointSelector.matchExpressions[0].values',
  ],
  ['unknown field', cnp({ endpointSelector: sel, ingres: [] }), 'UNKNOWN_FIELD', 'spec.ingres'],
  ['no selector', cnp({ ingress: [] }), 'MISSING_FIELD', 'spec'],
  ['nodeSelector in a CNP', cnp({ nodeSelector: sel }), 'INVALID_VALUE', 'spec.nodeSelector'],
  [
    'deny with L7',
    cnp({
      endpointSelector: sel,
      ingressDeny: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }],
    }),
    'UNKNOWN_FIELD',
    'spec.ingressDeny[0].toPorts[0].rules',
  ],
  [
    'specs[1] port',
    JSON.stringify({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'p' },
      specs: [
        { endpointSelector: sel },
        { endpointSelector: sel, ingress: [{}, { toPorts: [{ ports: [{ port: '-1' }] }] }] },
      ],
    }),
    'INVALID_PORT',
    'specs[1].ingress[1].toPorts[0].ports[0].port',
  ],
  [
    'kind',
    JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } }),
    'UNSUPPORTED_KIND',
    'kind',
  ],
  [
    'apiVersion',
    JSON.stringify({
      apiVersion: 'cilium.io/v1',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'p' },
      spec: {},
    }),
    'UNSUPPORTED_KIND',
    'apiVersion',
  ],
  [
    'name',
    JSON.stringify({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'Bad_Name' },
      spec: { endpointSelector: {} },
    }),
    'INVALID_VALUE',
    'metadata.name',
  ],
  [
    'NP ipBlock with podSelector',
    JSON.stringify({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'n' },
      spec: {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }],
      },
    }),
    'INVALID_COMBINATION',
    'spec.ingress[0].from[0]',
  ],
  [
    'NP ANY protocol',
    JSON.stringify({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'n' },
      spec: { podSelector: {}, ingress: [{ ports: [{ protocol: 'ANY' }] }] },
    }),
    'INVALID_PORT',
    'spec.ingress[0].ports[0].protocol',
  ],
  [
    'NP missing podSelector',
    JSON.stringify({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'n' },
      spec: {},
    }),
    'MISSING_FIELD',
    'spec.podSelector',
  ],
  [
    'fqdn needs one matcher',
    cnp({ endpointSelector: sel, egress: [{ toFQDNs: [{}] }] }),
    'INVALID_COMBINATION',
    'spec.egress[0].toFQDNs[0]',
  ],
  [
    'bad auth mode',
    cnp({ endpointSelector: sel, ingress: [{ authentication: { mode: 'maybe' } }] }),
    'INVALID_VALUE',
    'spec.ingress[0].authentication.mode',
  ],
  [
    'too many ports',
    cnp({
      endpointSelector: sel,
      ingress: [
        { toPorts: [{ ports: Array.from({ length: 41 }, (_, i) => ({ port: String(i + 1) })) }] },
      ],
    }),
    'INVALID_PORT',
    'spec.ingress[0].toPorts[0].ports',
  ],
]

describe('bad input', () => {
  it.each(cases)('%s', (_name, text, code, path) => {
    const e = fails(text)
    expect({ code: e.code, path: e.path, documentIndex: e.documentIndex }).toEqual({
      code,
      path,
      documentIndex: 0,
    })
    expect(e.message).toContain(path)
    expect(e.expected).toBeTruthy()
  })

  it('names the document index in a multi-document stream', () => {
    const e = fails(
      `${cnp({ endpointSelector: sel })}\n---\n${cnp({ endpointSelector: sel, ingress: [{ toPorts: [{ ports: [{ port: '99999' }] }] }] }, { metadata: { name: 'second', namespace: 'default' } })}`,
    )
    expect(e.documentIndex).toBe(1)
    expect(e.document).toBe('CiliumNetworkPolicy/default/second')
    expect(e.message).toMatch(
      /^document 1 \(CiliumNetworkPolicy\/default\/second\): spec\.ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port: invalid port; expected a port number/,
    )
  })

  it('reports YAML syntax errors', () => {
    const e = fails('kind: [unclosed')
    expect(e.code).toBe('SYNTAX')
  })

  it('stops YAML alias bombs', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]']
    for (const [prev, cur] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'd'],
      ['d', 'e'],
      ['e', 'f'],
    ])
      levels.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(', ')}]`)
    const e = fails(levels.join('\n'))
    expect(e.code).toBe('SYNTAX')
  })

  it('rejects duplicates in one batch', () => {
    expect(
      fails(`${cnp({ endpointSelector: sel })}\n---\n${cnp({ endpointSelector: sel })}`).code,
    ).toBe('DUPLICATE_POLICY')
  })

  it('is all-or-nothing: a bad batch leaves the repository untouched', () => {
    const repo = new PolicyRepository()
    repo.upsert(cnp({ endpointSelector: sel }))
    const rev = repo.revision
    expect(() =>
      repo.upsert(
        `${cnp({ endpointSelector: sel, ingress: [{}] }, { metadata: { name: 'ok' } })}\n---\n${cnp({ endpointSelector: sel, ingress: [{ fromCIDR: ['x'] }] }, { metadata: { name: 'bad' } })}`,
      ),
    ).toThrow(PolicyError)
    expect(repo.revision).toBe(rev)
    expect(repo.policies.map((p) => p.ref)).toEqual(['CiliumNetworkPolicy/default/p'])
  })

  it('validatePolicyDocuments reports every document', () => {
    const r = validatePolicyDocuments(
      `${cnp({ endpointSelector: sel })}\n---\n${cnp({ bogus: 1 })}\n---\n${cnp({ endpointSelector: sel })}`,
    )
    expect(r.map((x) => x.ok)).toEqual([true, false, true])
    expect(r[1]?.error?.code).toBe('UNKNOWN_FIELD')
  })

  it('accepts JSON arrays and Lists', () => {
    const list = JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [JSON.parse(cnp({ endpointSelector: sel }))],
    })
    expect(parsePolicyDocuments(list).map((d) => d.ref)).toEqual(['CiliumNetworkPolicy/default/p'])
    expect(parsePolicyDocuments(`[${cnp({ endpointSelector: sel })}]`)).toHaveLength(1)
  })

  it('rejects bad trace input', () => {
    const repo = new PolicyRepository()
    expect(() => repo.trace({ source: {}, destination: {}, port: 70000 })).toThrow(/port/)
    expect(() => repo.trace({ source: {}, destination: {}, port: 1, protocol: 'QUIC' })).toThrow(
      /protocol/,
    )
  })
})

describe('parser robustness (fast-check)', () => {
  const base = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'p', namespace: 'default' },
    spec: {
      endpointSelector: { matchLabels: { app: 'x' } },
      ingress: [
        {
          fromEndpoints: [{ matchLabels: { app: 'y' } }],
          toPorts: [
            { ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } },
          ],
        },
      ],
      egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }] }],
    },
  }

  /** Replace the value at a random path of `doc` with `v`. */
  function mutate(doc: unknown, pick: number, v: unknown): unknown {
    const paths: Array<Array<string | number>> = []
    const walk = (x: unknown, path: Array<string | number>) => {
      paths.push(path)
      if (Array.isArray(x)) {
        for (const [i, y] of x.entries()) walk(y, [...path, i])
      } else if (x && typeof x === 'object')
        for (const [k, y] of Object.entries(x)) walk(y, [...path, k])
    }
    walk(doc, [])
    const path = paths[pick % paths.length] as Array<string | number>
    if (path.length === 0) return v
    const copy = structuredClone(doc) as Record<string | number, unknown>
    let cur = copy
    for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>
    cur[path[path.length - 1] as string | number] = v
    return copy
  }

  it('either parses or throws a PolicyError with a code, for any mutation of a valid document', () => {
    fc.assert(
      fc.property(fc.nat(), fc.jsonValue({ maxDepth: 3 }), (pick, v) => {
        const text = JSON.stringify(mutate(base, pick, v))
        try {
          parsePolicyDocuments(text)
        } catch (e) {
          expect(e).toBeInstanceOf(PolicyError)
          expect(Object.values(PolicyErrorCode)).toContain((e as PolicyError).code)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('either parses or throws a PolicyError for arbitrary YAML-ish text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parsePolicyDocuments(text)
        } catch (e) {
          expect(e).toBeInstanceOf(PolicyError)
        }
      }),
      { numRuns: 1000 },
    )
  })
})
