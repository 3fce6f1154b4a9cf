import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AgentError } from '../errors'
import {
  agentDeviceNames,
  endpointNames,
  MAX_IFNAME_LENGTH,
  ownerOfNames,
  parseLabelList,
  validateIfname,
  validateLabels,
  validateName,
} from './names'

describe('validateName', () => {
  it('accepts DNS-label-like names', () => {
    expect(validateName('name', 'tiefighter')).toBe('tiefighter')
    expect(validateName('name', 'x-wing-2')).toBe('x-wing-2')
  })
  it.each([
    ['', 'expected a name'],
    ['X', 'lower-case'],
    ['-a', 'lower-case'],
    ['a-', 'lower-case'],
    ['a/b', 'lower-case'],
    ['a b', 'lower-case'],
    ['../etc', 'lower-case'],
    ['a'.repeat(41), 'at most 40'],
  ])('rejects %j naming the field', (value, message) => {
    const e = (() => {
      try {
        validateName('name', value)
      } catch (error) {
        return error as AgentError
      }
    })()
    expect(e).toBeInstanceOf(AgentError)
    expect(e?.code).toBe('INVALID_INPUT')
    expect(e?.field).toBe('name')
    expect(e?.message).toContain(message)
  })
  it('rejects non-strings', () => {
    expect(() => validateName('name', 42)).toThrow(/expected a name/)
  })
})

describe('endpointNames', () => {
  it('always fits IFNAMSIZ and only uses safe characters', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/),
        fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/),
        fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/),
        (prefix, ns, name) => {
          const n = endpointNames(prefix, ns, name)
          expect(n.hostIfname.length).toBeLessThanOrEqual(MAX_IFNAME_LENGTH)
          expect(n.tmpIfname.length).toBeLessThanOrEqual(MAX_IFNAME_LENGTH)
          expect(n.hostIfname).toMatch(/^[a-z0-9]+$/)
          expect(n.netns).toBe(`${prefix}_${ns}_${name}`)
        },
      ),
    )
  })
  it('is injective: distinct (prefix, namespace, name) never share a kernel object name', () => {
    // Short names over a small alphabet with many dashes, so that collisions of a naive
    // `prefix-namespace-name` join (a/b-c vs a-b/c) come up in almost every run.
    const part = fc.stringMatching(/^[ab1]([ab1-]{0,4}[ab1])?$/)
    const triple = fc.tuple(fc.constantFrom('mb', 'm', 'mb1'), part, part)
    fc.assert(
      fc.property(triple, triple, ([p1, ns1, n1], [p2, ns2, n2]) => {
        fc.pre(p1 !== p2 || ns1 !== ns2 || n1 !== n2)
        const a = endpointNames(p1, ns1, n1)
        const b = endpointNames(p2, ns2, n2)
        expect(a.netns).not.toBe(b.netns)
        expect(a.hostIfname).not.toBe(b.hostIfname)
        expect(a.tmpIfname).not.toBe(b.tmpIfname)
        // The other endpoint's objects are not among this one's (ownerOfNames finds nothing).
        expect(ownerOfNames([{ namespace: ns2, name: n2, ...b }], a)).toBeUndefined()
      }),
      { numRuns: 2000 },
    )
    expect(endpointNames('mb', 'a', 'b-c').netns).not.toBe(endpointNames('mb', 'a-b', 'c').netns)
  })
  it('finds the endpoint owning a name another create would use', () => {
    const a = { namespace: 'a', name: 'b-c', netns: 'mb-a-b-c', hostIfname: 'mbl123' }
    const wanted = { netns: 'mb-a-b-c', hostIfname: 'mbl999', tmpIfname: 'mbt999' }
    expect(ownerOfNames([a], wanted)).toEqual({ owner: a, object: 'mb-a-b-c' })
    expect(ownerOfNames([a], { hostIfname: 'mbl123' })?.object).toBe('mbl123')
    expect(ownerOfNames([a], { netns: 'mb_a-b_c', hostIfname: 'mbl999' })).toBeUndefined()
    expect(agentDeviceNames('mb')).toEqual(['mb_host', 'mb_net'])
  })
  it('differs between endpoints and between agent instances', () => {
    const a = endpointNames('mb', 'default', 'a').hostIfname
    expect(endpointNames('mb', 'default', 'b').hostIfname).not.toBe(a)
    expect(endpointNames('mb', 'other', 'a').hostIfname).not.toBe(a)
    expect(endpointNames('mc', 'default', 'a').hostIfname).not.toBe(a)
  })
})

describe('labels', () => {
  it('parses the CLI list', () => {
    expect(parseLabelList('--labels', 'org=empire,class=deathstar')).toEqual({
      org: 'empire',
      class: 'deathstar',
    })
    expect(parseLabelList('--labels', 'app.kubernetes.io/name=web,flag')).toEqual({
      'app.kubernetes.io/name': 'web',
      flag: '',
    })
    expect(parseLabelList('--labels', '')).toEqual({})
  })
  it('rejects duplicates, empty items and bad keys/values', () => {
    expect(() => parseLabelList('--labels', 'a=1,a=2')).toThrow(/given twice/)
    expect(() => parseLabelList('--labels', 'a=1,,b=2')).toThrow(/empty label/)
    expect(() => parseLabelList('--labels', 'a b=1')).toThrow(/--labels.a b/)
    expect(() => parseLabelList('--labels', 'a=$(reboot)')).toThrow(/label value/)
    expect(() => validateLabels('labels', { a: 1 })).toThrow(/labels.a: expected a string/)
    expect(() => validateLabels('labels', ['a'])).toThrow(/expected an object/)
  })
  it('round-trips any valid label set through the list syntax', () => {
    const key = fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/)
    const value = fc.stringMatching(/^([a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?)?$/)
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 6 }), (labels) => {
        const text = Object.entries(labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
        expect(parseLabelList('l', text)).toEqual(labels)
      }),
    )
  })
})

describe('validateIfname', () => {
  it('accepts real names and refuses long or odd ones', () => {
    expect(validateIfname('interface', 'eth0')).toBe('eth0')
    expect(() => validateIfname('interface', 'a'.repeat(16))).toThrow(/1..15/)
    expect(() => validateIfname('interface', 'eth0;reboot')).toThrow(/interface/)
    expect(() => validateIfname('interface', '..')).toThrow(/interface/)
  })
})
