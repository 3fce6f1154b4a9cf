import { RESERVED_IDENTITY_NAMES } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseLabelFilterRule } from '../src/filter'
import {
  cidrLabels,
  createLabelFilter,
  formatLabel,
  IdentityError,
  type Label,
  Labels,
  makePrefix,
  parseLabel,
  podIdentityLabels,
  prefixContains,
} from '../src/index'

const keyChar = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCZ0123456789./-_:~!@#$%^&*()[]{}<>?,'.split(''),
)
const valueChar = fc.constantFrom(...'abcxyzXYZ0129.-_=:/@'.split(''))

/** Any valid label (canonical: cidr keys canonical, reserved keys known). */
export const labelArb: fc.Arbitrary<Label> = fc.oneof(
  fc.record({
    source: fc.constantFrom('k8s', 'container', 'any', 'unspec'),
    key: fc.string({ unit: keyChar, minLength: 1, maxLength: 20 }),
    value: fc.string({ unit: valueChar, maxLength: 12 }),
  }),
  fc.record({
    source: fc.constant('reserved'),
    key: fc.constantFrom(...RESERVED_IDENTITY_NAMES),
    value: fc.constant(''),
  }),
  fc
    .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.nat(128))
    .map(([v4, addr, len]) =>
      v4 ? makePrefix(4, addr & 0xffffffffn, len % 33) : makePrefix(6, addr, len),
    )
    .map((p) => ({
      source: 'cidr',
      key: p.cidr.replaceAll(':', '-').replace(/^-/, '0-'),
      value: '',
    })),
) as fc.Arbitrary<Label>

describe('label parse/print', () => {
  it('parses the Cilium forms', () => {
    expect(parseLabel('k8s:app=web')).toEqual({ source: 'k8s', key: 'app', value: 'web' })
    expect(parseLabel('reserved:host')).toEqual({ source: 'reserved', key: 'host', value: '' })
    expect(parseLabel('$world')).toEqual({ source: 'reserved', key: 'world', value: '' })
    expect(parseLabel('app=web')).toEqual({ source: 'unspec', key: 'app', value: 'web' })
    expect(parseLabel('k8s:io.kubernetes.pod.namespace=default').key).toBe(
      'io.kubernetes.pod.namespace',
    )
    expect(parseLabel('k8s:url=http://x=y')).toEqual({
      source: 'k8s',
      key: 'url',
      value: 'http://x=y',
    })
    expect(parseLabel('k8s:app.kubernetes.io/name=web').key).toBe('app.kubernetes.io/name')
    expect(parseLabel('cidr:10.1.0.0/8')).toEqual({ source: 'cidr', key: '10.0.0.0/8', value: '' })
    expect(parseLabel('cidr:2001-db8--/32').key).toBe('2001-db8--/32')
    expect(parseLabel('cidr:--/0').key).toBe('0--/0')
    expect(formatLabel(parseLabel('k8s:app='))).toBe('k8s:app')
  })

  it('rejects bad labels with the input and the reason', () => {
    const cases: [string, RegExp][] = [
      ['k8s:=x', /the key is empty/],
      ['', /the key is empty/],
      ['nope:app=x', /unknown source "nope"/],
      ['k8s:a b=c', /printable ASCII/],
      ['k8s:app=a;b', /printable ASCII without spaces or ';'/],
      ['reserved:bogus', /unknown reserved label/],
      ['reserved:host=1', /no value/],
      ['cidr:10.0.0.300/8', /not a CIDR prefix/],
      ['cidr:10.0.0.0/33', /not a CIDR prefix/],
      ['cidr:10.0.0.1', /needs a prefix length/],
      [`k8s:${'k'.repeat(400)}=x`, /longer than/],
    ]
    for (const [input, why] of cases) {
      let error: unknown
      try {
        parseLabel(input)
      } catch (e) {
        error = e
      }
      expect(error, input).toBeInstanceOf(IdentityError)
      expect((error as IdentityError).code).toBe('INVALID_LABEL')
      expect((error as Error).message).toMatch(why)
      expect((error as Error).message).toContain(JSON.stringify(input).slice(0, 30))
    }
  })

  it('round-trips print -> parse for every valid label (property)', () => {
    fc.assert(
      fc.property(labelArb, (label) => {
        const printed = formatLabel(label)
        expect(parseLabel(printed)).toEqual(label)
        expect(formatLabel(parseLabel(printed))).toBe(printed)
      }),
      { numRuns: 2000 },
    )
  })

  it('parse -> print -> parse is stable for arbitrary strings that parse (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (s) => {
        let l: Label
        try {
          l = parseLabel(s)
        } catch (e) {
          expect(e).toBeInstanceOf(IdentityError)
          return
        }
        expect(parseLabel(formatLabel(l))).toEqual(l)
      }),
      { numRuns: 3000 },
    )
  })
})

describe('Labels sets and the canonical key', () => {
  it('prints the canonical sorted key string', () => {
    const l = Labels.from(['k8s:io.kubernetes.pod.namespace=default', 'k8s:app=foo'])
    expect(l.key()).toBe('k8s:app=foo;k8s:io.kubernetes.pod.namespace=default;')
    expect(Labels.from(['reserved:host']).key()).toBe('reserved:host=;')
    expect(Labels.fromKey(l.key()).equals(l)).toBe(true)
    expect(Labels.fromRecord({ b: '2', a: '1' }).toStrings()).toEqual(['k8s:a=1', 'k8s:b=2'])
    expect(() => Labels.fromKey('k8s:b=2;k8s:a=1;')).toThrow(/not canonical/)
    expect(() => Labels.fromKey('k8s:a=1')).toThrow(/ends with ';'/)
  })

  it('orders keys canonically whatever the input order, and round-trips the key (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(labelArb, { selector: (l) => `${l.source}:${l.key}`, maxLength: 12 }),
        fc.integer(),
        (labels, seed) => {
          const a = Labels.from(labels)
          const shuffled = [...labels]
            .sort(() => 0)
            .sort((x, y) => (hash(x, seed) - hash(y, seed)) | 0)
          const b = Labels.from(shuffled.map(formatLabel))
          expect(b.key()).toBe(a.key())
          expect(Labels.fromKey(a.key()).key()).toBe(a.key())
          const arr = a.toArray()
          for (let i = 1; i < arr.length; i++) {
            const p = arr[i - 1] as Label
            const c = arr[i] as Label
            expect(p.key < c.key || (p.key === c.key && p.source < c.source)).toBe(true)
          }
          expect(a.size).toBe(labels.length)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('matches any: selectors against every source', () => {
    const l = Labels.from(['k8s:app=web', 'container:tier=front'])
    expect(l.has('any:app=web')).toBe(true)
    expect(l.has('container:app=web')).toBe(false)
    expect(l.includes(['any:tier=front', 'k8s:app=web'])).toBe(true)
    expect(l.get('k8s', 'app')).toBe('web')
  })
})

function hash(l: Label, seed: number): number {
  let h = seed
  for (const c of `${l.source}:${l.key}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619)
  return h
}

describe('CIDR identity labels', () => {
  it('hold every containing prefix and reserved:world', () => {
    const l = cidrLabels('10.1.2.3/32')
    expect(l.size).toBe(34)
    expect(l.has('cidr:10.0.0.0/8')).toBe(true)
    expect(l.has('cidr:10.1.2.2/31')).toBe(true)
    expect(l.has('reserved:world')).toBe(true)
  })

  it('contain cidr:q exactly when q contains the prefix (property)', () => {
    const prefixArb = fc
      .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.nat(128))
      .map(([v4, addr, len]) =>
        v4 ? makePrefix(4, addr & 0xffffffffn, len % 33) : makePrefix(6, addr, len),
      )
    fc.assert(
      fc.property(prefixArb, prefixArb, fc.nat(128), (p, q0, cut) => {
        // Half the time, q is a real super-prefix of p.
        const q =
          cut % 2 === 0 && q0.family === p.family
            ? makePrefix(p.family, p.address, Math.min(cut, p.length))
            : q0
        const labels = cidrLabels(p)
        const label = `cidr:${q.cidr.replaceAll(':', '-').replace(/^-/, '0-')}`
        expect(labels.has(label)).toBe(prefixContains(q, p))
      }),
      { numRuns: 1000 },
    )
  })
})

describe('label filter', () => {
  const f = createLabelFilter()
  it("keeps identity-relevant labels by Cilium's defaults", () => {
    const kept = f.filter([
      'k8s:app=web',
      'k8s:io.kubernetes.pod.namespace=default',
      'k8s:io.cilium.k8s.policy.serviceaccount=web',
      'k8s:io.cilium.k8s.namespace.labels.team=a',
      'k8s:app.kubernetes.io/name=web',
      'k8s:pod-template-hash=5d8f',
      'k8s:controller-revision-hash=abc',
      'k8s:statefulset.kubernetes.io/pod-name=web-0',
      'k8s:kubernetes.io/hostname=n1',
      'k8s:topology.kubernetes.io/zone=z',
      'k8s:io.kubernetes.pod.name=web-0',
      'k8s:annotation.foo=bar',
      'reserved:host',
    ])
    expect(kept.toStrings()).toEqual([
      'k8s:app=web',
      'k8s:app.kubernetes.io/name=web',
      'reserved:host',
      'k8s:io.cilium.k8s.namespace.labels.team=a',
      'k8s:io.cilium.k8s.policy.serviceaccount=web',
      'k8s:io.kubernetes.pod.namespace=default',
    ])
  })

  it('is configurable: user keep-rules make it an allow list, drop-rules add drops', () => {
    const only = createLabelFilter({ rules: ['k8s:app'] })
    expect(
      only.filter(['k8s:app=a', 'k8s:tier=b', 'k8s:io.kubernetes.pod.namespace=x']).toStrings(),
    ).toEqual(['k8s:app=a', 'k8s:io.kubernetes.pod.namespace=x'])
    const drop = createLabelFilter({ rules: ['!tier'] })
    expect(drop.filter(['k8s:app=a', 'k8s:tier=b']).toStrings()).toEqual(['k8s:app=a'])
    const none = createLabelFilter({ defaults: false })
    expect(none.filter(['k8s:pod-template-hash=1']).size).toBe(1)
    expect(parseLabelFilterRule('!container:foo')).toMatchObject({
      exclude: true,
      source: 'container',
    })
    expect(() => parseLabelFilterRule('k8s:(')).toThrow(/invalid regular expression/)
  })
})

describe('pod identity labels', () => {
  it("builds Cilium's pod labels and filters them", () => {
    const all = podIdentityLabels({
      labels: { app: 'web', 'pod-template-hash': '5d8f' },
      namespace: 'prod',
      namespaceLabels: { team: 'a' },
      serviceAccount: 'web-sa',
      cluster: 'c1',
    })
    expect(all.toStrings()).toEqual([
      'k8s:app=web',
      'k8s:io.cilium.k8s.namespace.labels.team=a',
      'k8s:io.cilium.k8s.policy.cluster=c1',
      'k8s:io.cilium.k8s.policy.serviceaccount=web-sa',
      'k8s:io.kubernetes.pod.namespace=prod',
      'k8s:pod-template-hash=5d8f',
    ])
    const kept = podIdentityLabels(
      { labels: { app: 'web', 'pod-template-hash': '5d8f' }, namespace: 'prod' },
      createLabelFilter(),
    )
    expect(kept.key()).toBe('k8s:app=web;k8s:io.kubernetes.pod.namespace=prod;')
    expect(() => podIdentityLabels({ labels: { 'bad key': 'x' }, namespace: 'prod' })).toThrow(
      /"bad key"|bad key/,
    )
  })
})
