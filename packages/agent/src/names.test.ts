import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AgentError } from './errors'
import {
  endpointNames,
  MAX_IFNAME_LENGTH,
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
          expect(n.netns).toBe(`${prefix}-${ns}-${name}`)
        },
      ),
    )
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
