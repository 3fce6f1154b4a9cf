/**
 * DNS wire format and the FQDN cache: unit and property tests.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  answerAddresses,
  buildDnsError,
  buildDnsQuery,
  DnsRcode,
  DnsType,
  FqdnCache,
  parseDnsMessage,
  WireFormatError,
} from '../src/index'

/** A response with answers, built by hand (names uncompressed except the CNAME target). */
function response(
  id: number,
  name: string,
  records: Array<[string, number, number, Buffer]>,
): Buffer {
  const q = buildDnsQuery(id, name)
  const head = Buffer.from(q)
  head.writeUInt16BE(0x8180, 2)
  head.writeUInt16BE(records.length, 6)
  const parts: Buffer[] = [head]
  for (const [n, type, ttl, rdata] of records) {
    const nb = buildDnsQuery(0, n).subarray(12, -4)
    const fixed = Buffer.alloc(10)
    fixed.writeUInt16BE(type, 0)
    fixed.writeUInt16BE(1, 2)
    fixed.writeUInt32BE(ttl, 4)
    fixed.writeUInt16BE(rdata.length, 8)
    parts.push(nb, fixed, rdata)
  }
  return Buffer.concat(parts)
}

const label = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/)
const dnsName = fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.'))

describe('DNS wire format', () => {
  it('round-trips queries', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        dnsName,
        fc.constantFrom(1, 28, 5, 16),
        (id, name, type) => {
          const m = parseDnsMessage(buildDnsQuery(id, name, type))
          expect(m).toMatchObject({ id, qr: false, rd: true, opcode: 0, rcode: 0 })
          expect(m.questions).toEqual([{ name, type, class: 1 }])
        },
      ),
    )
  })

  it('lower-cases names and reads A, AAAA and CNAME answers with compression', () => {
    const a = Buffer.from([10, 0, 0, 5])
    const aaaa = Buffer.from('20010db8000000000000000000000001', 'hex')
    // CNAME rdata: a pointer to the question name at offset 12.
    const r = response(7, 'Alias.Example.Test', [
      ['alias.example.test', DnsType.CNAME, 300, Buffer.from([0xc0, 12])],
      ['alias.example.test', DnsType.A, 60, a],
      ['alias.example.test', DnsType.AAAA, 30, aaaa],
    ])
    const m = parseDnsMessage(r)
    expect(m.questions[0]?.name).toBe('alias.example.test')
    expect(m.answers.map((x) => x.data)).toEqual(['alias.example.test', '10.0.0.5', '2001:db8::1'])
  })

  it('follows CNAME chains and takes the smallest TTL', () => {
    const target = Buffer.concat([buildDnsQuery(0, 'real.example.test').subarray(12, -4)])
    const r = response(1, 'www.example.test', [
      ['www.example.test', DnsType.CNAME, 600, target],
      ['real.example.test', DnsType.A, 120, Buffer.from([10, 1, 1, 1])],
      ['real.example.test', DnsType.A, 90, Buffer.from([10, 1, 1, 2])],
      ['other.example.test', DnsType.A, 5, Buffer.from([10, 9, 9, 9])],
    ])
    expect(answerAddresses(parseDnsMessage(r), 'www.example.test')).toEqual({
      ips: ['10.1.1.1', '10.1.1.2'],
      cnames: ['real.example.test'],
      ttl: 90,
    })
  })

  it('rejects pointer loops, forward pointers, long labels and truncation', () => {
    const q = buildDnsQuery(1, 'a.test')
    const loop = Buffer.from(q)
    loop[12] = 0xc0
    loop[13] = 12 // points at itself
    expect(() => parseDnsMessage(loop)).toThrow(WireFormatError)
    const fwd = Buffer.from(q)
    fwd[12] = 0xc0
    fwd[13] = 40
    expect(() => parseDnsMessage(fwd)).toThrow(/earlier name/)
    const bad = Buffer.from(q)
    bad[12] = 0x40
    expect(() => parseDnsMessage(bad)).toThrow(/below 64/)
    expect(() => parseDnsMessage(q.subarray(0, q.length - 1))).toThrow(/dns\.question\[0\]\.type/)
    expect(() => parseDnsMessage(Buffer.alloc(5))).toThrow(/12-byte header/)
  })

  it('never throws anything but WireFormatError on arbitrary or mutated bytes', () => {
    const base = response(3, 'x.example.test', [
      ['x.example.test', DnsType.A, 1, Buffer.from([1, 2, 3, 4])],
    ])
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc
            .array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
              maxLength: 8,
            })
            .map((muts) => {
              const b = Uint8Array.from(base)
              for (const [i, v] of muts) b[i] = v
              return b
            }),
        ),
        (bytes) => {
          try {
            parseDnsMessage(bytes)
          } catch (e) {
            expect(e).toBeInstanceOf(WireFormatError)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('builds REFUSED replies that echo id and question', () => {
    const q = buildDnsQuery(0xbeef, 'denied.test', DnsType.AAAA)
    const r = parseDnsMessage(buildDnsError(q, parseDnsMessage(q), DnsRcode.REFUSED))
    expect(r).toMatchObject({ id: 0xbeef, qr: true, rd: true, rcode: 5, answers: [] })
    expect(r.questions).toEqual([{ name: 'denied.test', type: DnsType.AAAA, class: 1 }])
  })
})

describe('FqdnCache', () => {
  it('applies the minimum TTL, extends but never shortens, and expires', () => {
    let now = 1_000_000
    const c = new FqdnCache({ minTtlSeconds: 10, now: () => now })
    expect(c.learn('a.test', ['10.0.0.1'], 2)).toEqual({
      added: ['10.0.0.1'],
      expiresAt: now + 10_000,
    })
    expect(c.learn('a.test', ['10.0.0.1', '10.0.0.2'], 60).added).toEqual(['10.0.0.2'])
    c.learn('a.test', ['10.0.0.2'], 1) // shorter: keeps 60 s
    expect(c.namesOf('10.0.0.2')).toEqual(['a.test'])
    now += 11_000
    expect(c.expire()).toEqual([])
    now += 50_000
    expect(c.expire()).toEqual([{ name: 'a.test', ips: ['10.0.0.1', '10.0.0.2'] }])
    expect(c.lookup('a.test')).toEqual([])
    expect(c.size).toBe(0)
  })
})
