import { BlockList, isIP } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  AddressError,
  canonicalIp,
  formatIp,
  formatIpv4,
  formatIpv6Bytes,
  ipFamily,
  ipFromBigInt,
  ipToBigInt,
  isIpv4,
  isIpv6,
  mustParseIp,
  parseIp,
  parseIpv4,
  parsePrefix,
  parsePrefixOrUndefined,
  prefixBytes,
  prefixContains,
  prefixContainsIp,
  prefixOverlaps,
  readIp,
  unmapIp,
  writeIp,
} from '../src/index'

const v4Bytes = fc.uint8Array({ minLength: 4, maxLength: 4 })
const v6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 })
const group = fc.integer({ min: 0, max: 0xffff })

/** Any spelling of 8 groups: random case, random leading zeros, a random `::` run, maybe a v4 tail. */
const v6Text = fc
  .record({
    groups: fc.array(group, { minLength: 8, maxLength: 8 }),
    pad: fc.array(fc.nat(3), { minLength: 8, maxLength: 8 }),
    upper: fc.boolean(),
    cut: fc.tuple(fc.nat(8), fc.nat(8)),
    v4Tail: fc.boolean(),
  })
  .map(({ groups, pad, upper, cut, v4Tail }) => {
    let parts = groups.map((g, i) => {
      const h = g.toString(16)
      const s = `${'0'.repeat(Math.max(0, Math.min(pad[i] as number, 4 - h.length)))}${h}`
      return upper ? s.toUpperCase() : s
    })
    if (v4Tail) {
      const [a, b] = [groups[6] as number, groups[7] as number]
      parts = [...parts.slice(0, 6), `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`]
    }
    const n = parts.length
    const s = Math.min(cut[0], cut[1], n)
    // The cut may not split the dotted tail (it counts as two groups): drop to the group level.
    const e = Math.min(Math.max(cut[0], cut[1]), n)
    const text =
      e - s < 1 ? parts.join(':') : `${parts.slice(0, s).join(':')}::${parts.slice(e).join(':')}`
    const bytes = new Uint8Array(16)
    groups.forEach((g, i) => {
      bytes[i * 2] = g >> 8
      bytes[i * 2 + 1] = g & 255
    })
    // Zero the compressed groups (the dotted tail, when cut, stands for groups 6 and 7).
    const lastGroup = (k: number) => (v4Tail && k === 6 ? 8 : k + 1)
    for (let k = s; k < e; k++)
      for (let g = k; g < lastGroup(k); g++) bytes.fill(0, g * 2, g * 2 + 2)
    return { text, bytes }
  })

describe('IPv4', () => {
  it('parses and prints', () => {
    expect(parseIpv4('10.0.0.1')).toBe(0x0a000001)
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff)
    expect(formatIpv4(0xc0a80101)).toBe('192.168.1.1')
    for (const bad of [
      '010.0.0.1',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '1.2.3.',
      '.1.2.3',
      '1..2.3',
      ' 1.2.3.4',
      '1.2.3.4 ',
      '0x1.2.3.4',
      '',
    ])
      expect(parseIpv4(bad), bad).toBeUndefined()
  })

  it('accepts exactly what node:net calls IPv4 (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9.]{0,17}$/), (s) => {
        expect(parseIpv4(s) !== undefined).toBe(isIP(s) === 4)
        expect(isIpv4(s)).toBe(isIP(s) === 4)
      }),
      { numRuns: 5000 },
    )
  })

  it('round-trips numbers and bytes (property)', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), (n) => {
        expect(parseIpv4(formatIpv4(n))).toBe(n >>> 0)
      }),
    )
    fc.assert(
      fc.property(v4Bytes, (b) => {
        const ip = parseIp(formatIp({ family: 4, bytes: b }))
        expect(ip).toEqual({ family: 4, bytes: b })
      }),
    )
  })
})

describe('IPv6', () => {
  it('parses and prints canonically (RFC 5952, netip for IPv4-mapped)', () => {
    const c = (s: string) => canonicalIp(s)
    expect(c('2001:DB8:0:0:1::1')).toBe('2001:db8::1:0:0:1')
    expect(c('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1')
    expect(c('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1')
    expect(c('::')).toBe('::')
    expect(c('::1')).toBe('::1')
    expect(c('1::')).toBe('1::')
    expect(c('0:0:1:0:0:0:0:0')).toBe('0:0:1::')
    expect(c('1:0:1:0:1:0:1:0')).toBe('1:0:1:0:1:0:1:0')
    expect(c('::ffff:10.0.0.1')).toBe('::ffff:10.0.0.1')
    expect(c('::FFFF:a00:1')).toBe('::ffff:10.0.0.1')
    expect(c('::10.0.0.1')).toBe('::a00:1')
    expect(c('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4:5:6:102:304')
    expect(c('10.0.0.1')).toBe('10.0.0.1')
    for (const bad of [
      'fe80::1%eth0',
      '[::1]',
      ':::',
      '1:::2',
      '::1::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7:8::',
      '::1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7',
      '12345::',
      ':1',
      '1:',
      '::01.2.3.4',
      '::1.2.3.4:5',
      '1:2:3:4:5:6:7:1.2.3.4',
      '::g',
    ])
      expect(parseIp(bad), bad).toBeUndefined()
  })

  it('reads any spelling to the right bytes, as node:net and WHATWG URL do (property)', () => {
    fc.assert(
      fc.property(v6Text, ({ text, bytes }) => {
        expect(isIP(text)).toBe(6)
        expect(isIpv6(text)).toBe(true)
        const ip = parseIp(text)
        expect(ip?.family).toBe(6)
        expect(ip?.bytes).toEqual(bytes)
        const mapped =
          bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255
        if (!mapped)
          expect(formatIpv6Bytes(bytes)).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1))
      }),
      { numRuns: 3000 },
    )
  })

  it('accepts exactly what node:net calls IPv6 (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-fA-F:.]{0,20}$/), (s) => {
        expect(ipFamily(s) === 6).toBe(isIP(s) === 6)
      }),
      { numRuns: 10000 },
    )
  })

  it('round-trips bytes (property)', () => {
    fc.assert(
      fc.property(v6Bytes, (b) => {
        const text = formatIp({ family: 6, bytes: b })
        expect(canonicalIp(text)).toBe(text)
        expect(parseIp(text)?.bytes).toEqual(b)
        const out = new Uint8Array(20)
        expect(writeIp(text, out, 3)).toBe(6)
        expect(readIp(out, 3, 6)).toBe(text)
        expect(ipFromBigInt(6, ipToBigInt({ family: 6, bytes: b })).bytes).toEqual(b)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('either family', () => {
  it('unmaps IPv4-mapped text and leaves anything else alone', () => {
    expect(unmapIp('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(unmapIp('::FFFF:10.0.0.1')).toBe('10.0.0.1')
    expect(unmapIp('::ffff:a00:1')).toBe('::ffff:a00:1') // no dotted tail: as sockets never print it
    expect(unmapIp('::10.0.0.1')).toBe('::10.0.0.1')
    expect(unmapIp('10.0.0.1')).toBe('10.0.0.1')
    expect(unmapIp('2001:db8::1')).toBe('2001:db8::1')
  })

  it('names bad input', () => {
    expect(() => mustParseIp('10.0.0.256', 'clientIp')).toThrow(/invalid clientIp "10.0.0.256"/)
    try {
      mustParseIp('x')
    } catch (e) {
      expect(e).toBeInstanceOf(AddressError)
      expect((e as AddressError).code).toBe('INVALID_ADDRESS')
    }
  })
})

describe('prefixes', () => {
  it('parses and canonicalizes', () => {
    expect(parsePrefix('10.1.2.3/8').cidr).toBe('10.0.0.0/8')
    expect(parsePrefix('10.1.2.3').cidr).toBe('10.1.2.3/32')
    expect(parsePrefix('2001:DB8:0:0:1::1/64').cidr).toBe('2001:db8::/64')
    expect(parsePrefix('::ffff:1.2.3.4').cidr).toBe('::ffff:1.2.3.4/128')
    expect(parsePrefix('::/0').cidr).toBe('::/0')
    expect([...prefixBytes(parsePrefix('192.168.1.0/24'))]).toEqual([192, 168, 1, 0])
    expect(() => parsePrefix('10.1.2.3/8', { strict: true })).toThrow(
      /host bits are set \(the network is 10.0.0.0\/8\)/,
    )
    for (const bad of [
      '10.0.0',
      '1.2.3.4/33',
      '1.2.3.4/08',
      '1.2.3.4/',
      '::/129',
      'fe80::/10%x',
      'x',
    ]) {
      expect(parsePrefixOrUndefined(bad), bad).toBeUndefined()
      expect(() => parsePrefix(bad)).toThrow(AddressError)
      expect(() => parsePrefix(bad)).toThrow(JSON.stringify(bad))
    }
  })

  it('containment agrees with node:net BlockList (property)', () => {
    const family = fc.constantFrom<4 | 6>(4, 6)
    const cases = family.chain((f) =>
      fc.tuple(
        fc.constant(f),
        f === 4 ? v4Bytes : v6Bytes,
        fc.nat(f === 4 ? 32 : 128),
        f === 4 ? v4Bytes : v6Bytes,
        fc.nat(f === 4 ? 32 : 128),
      ),
    )
    fc.assert(
      fc.property(cases, ([f, netBytes, len, ipBytes, len2]) => {
        const net = formatIp({ family: f, bytes: netBytes })
        const ip = formatIp({ family: f, bytes: ipBytes })
        const prefix = parsePrefix(`${net}/${len}`)
        const list = new BlockList()
        list.addSubnet(prefix.cidr.split('/')[0] as string, len, f === 4 ? 'ipv4' : 'ipv6')
        const type = f === 4 ? 'ipv4' : 'ipv6'
        expect(prefixContainsIp(prefix, ip)).toBe(list.check(ip, type))
        const inner = parsePrefix(`${ip}/${len2}`)
        // Containment of prefixes: inner's network and last address are both in outer.
        expect(prefixContains(prefix, inner)).toBe(
          len2 >= len && list.check(inner.cidr.split('/')[0] as string, type),
        )
        expect(prefixOverlaps(prefix, inner)).toBe(
          prefixContains(prefix, inner) || prefixContains(inner, prefix),
        )
      }),
      { numRuns: 2000 },
    )
  })
})
