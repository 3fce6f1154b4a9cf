import { formatIp, parseIp } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { backendHashString, decodeSeed, murmur3x64_128, permutationOf } from '../src/index'

describe('backendHashString (Cilium BackendInfo.setHashString)', () => {
  it.each([
    [{ address: '10.0.0.1', port: 80 }, '[10.0.0.1:80/TCP,State:active]'],
    [{ address: '0.0.0.1', port: 1 }, '[0.0.0.1:1/TCP,State:active]'],
    [{ address: '10.0.0.1', port: 53, protocol: 'udp' }, '[10.0.0.1:53/UDP,State:active]'],
    [{ address: '10.0.0.1', port: 80, scope: 'internal' }, '[10.0.0.1:80/TCP/i,State:active]'],
    [{ address: '10.0.0.1', port: 80, clusterId: 3 }, '[10.0.0.1@3:80/TCP,State:active]'],
    [{ address: '2001:db8::1', port: 80 }, '[[2001:db8::1]:80/TCP,State:active]'],
    [{ address: '2001:DB8:0:0:0:0:0:1', port: 80 }, '[[2001:db8::1]:80/TCP,State:active]'],
    [
      { address: '2001:db8::1', port: 80, scope: 'internal', protocol: 'SCTP' },
      '[[2001:db8::1]:80/SCTP/i,State:active]',
    ],
    [{ address: '2001:db8::1', port: 80, clusterId: 7 }, '[[2001:db8::1@7]:80/TCP,State:active]'],
    [{ address: '::ffff:10.0.0.1', port: 80 }, '[[::ffff:10.0.0.1]:80/TCP,State:active]'],
  ])('%j -> %s', (fields, expected) => {
    expect(backendHashString({ id: 1, ...(fields as { address: string; port: number }) })).toBe(
      expected,
    )
  })
})

describe('IPv6 canonical form (Go netip / RFC 5952)', () => {
  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group stays
    ['0:0:0:0:0:ffff:0102:0304', '::ffff:1.2.3.4'], // IPv4-mapped, dotted
    ['::1.2.3.4', '::102:304'], // IPv4-compatible is not mapped
    ['FE80:0000:0000:0000:0202:B3FF:FE1E:8329', 'fe80::202:b3ff:fe1e:8329'],
  ])('%s -> %s', (input, expected) => {
    expect(formatIp(parseIp(input)!)).toBe(expected)
  })

  it('matches the WHATWG URL serializer for every non-mapped address', () => {
    fc.assert(
      fc.property(fc.ipV6(), (addr) => {
        const ip = parseIp(addr)
        expect(ip).toBeDefined()
        const ours = formatIp(ip!)
        fc.pre(!ours.includes('.')) // Go writes IPv4-mapped as ::ffff:a.b.c.d, WHATWG in hex
        expect(ours).toBe(new URL(`http://[${addr}]/`).hostname.slice(1, -1))
      }),
      { numRuns: 500 },
    )
  })

  it('parses every IPv4 address fast-check makes, and formats it back unchanged', () => {
    fc.assert(
      fc.property(fc.ipV4(), (addr) => {
        expect(formatIp(parseIp(addr)!)).toBe(addr)
      }),
    )
  })
})

describe('permutationOf', () => {
  it('is offset = h1 mod M, skip = h2 mod (M-1) + 1 of the hash string', () => {
    const backend = { id: 1, address: '10.0.0.1', port: 80 }
    const { hashString, offset, skip } = permutationOf(backend, { tableSize: 1021 })
    const [h1, h2] = murmur3x64_128(hashString, decodeSeed().murmur)
    expect(offset).toBe(Number(h1 % 1021n))
    expect(skip).toBe(Number(h2 % 1020n) + 1)
  })
})
