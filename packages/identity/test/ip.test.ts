import { isIP } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatIP, IdentityError, parseIP, parsePrefix, prefixBytes } from '../src/index'

describe('IP and prefix parsing', () => {
  it('parses and canonicalizes prefixes', () => {
    expect(parsePrefix('10.1.2.3/8').cidr).toBe('10.0.0.0/8')
    expect(parsePrefix('10.1.2.3').cidr).toBe('10.1.2.3/32')
    expect(parsePrefix('2001:DB8:0:0:1::1/64').cidr).toBe('2001:db8::/64')
    expect(parsePrefix('::ffff:1.2.3.4').cidr).toBe('::ffff:102:304/128')
    expect(parsePrefix('::/0').cidr).toBe('::/0')
    expect([...prefixBytes(parsePrefix('192.168.1.0/24'))]).toEqual([192, 168, 1, 0])
    expect(() => parsePrefix('10.1.2.3/8', { strict: true })).toThrow(
      /host bits are set \(the network is 10.0.0.0\/8\)/,
    )
  })

  it('rejects bad input naming it', () => {
    for (const bad of [
      '10.0.0',
      '10.0.0.256',
      '01.2.3.4',
      '1.2.3.4/33',
      '1.2.3.4/08',
      '::1::',
      'fe80::1%eth0',
      'x',
      '1:2:3:4:5:6:7:8:9',
    ]) {
      let error: unknown
      try {
        parsePrefix(bad)
      } catch (e) {
        error = e
      }
      expect(error, bad).toBeInstanceOf(IdentityError)
      expect((error as Error).message).toContain(JSON.stringify(bad))
    }
  })

  it('agrees with node:net and WHATWG URL on IPv6 text (property)', () => {
    const group = fc.integer({ min: 0, max: 0xffff }).map((g) => g.toString(16))
    const v6 = fc
      .tuple(fc.array(group, { minLength: 8, maxLength: 8 }), fc.nat(8), fc.nat(8))
      .map(([g, a, b]) => {
        const [s, e] = [Math.min(a, b), Math.max(a, b)]
        if (e - s < 1) return g.join(':')
        return `${g.slice(0, s).join(':')}::${g.slice(e).join(':')}`
      })
    fc.assert(
      fc.property(v6, (text) => {
        expect(isIP(text)).toBe(6)
        const { family, address } = parseIP(text)
        expect(family).toBe(6)
        expect(formatIP(6, address)).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1))
      }),
      { numRuns: 2000 },
    )
  })

  it('accepts exactly what node:net calls IPv4 (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9.]{1,16}$/), (s) => {
        let ok = true
        try {
          parseIP(s)
        } catch {
          ok = false
        }
        expect(ok).toBe(isIP(s) === 4)
      }),
      { numRuns: 3000 },
    )
  })
})
