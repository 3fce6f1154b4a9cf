import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import {
  buildLookupTable,
  decodeSeed,
  flowHash,
  jhash3Words,
  lookupBackend,
  MaglevError,
} from '../src/index'

// A C program that hashes a flow the way Cilium's bpf/lib/hash.h does: it lays the source
// address and ports out in network byte order, as they sit in a packet, and loads them as host
// integers. It checks our byte-order handling against the compiler, not against our own TS.
const C_SOURCE = String.raw`
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
static uint32_t rol32(uint32_t w, unsigned s) { return (w << s) | (w >> ((-s) & 31)); }
#define MIX(a, b, c) { \
  a -= c; a ^= rol32(c, 4); c += b; b -= a; b ^= rol32(a, 6); a += c; \
  c -= b; c ^= rol32(b, 8); b += a; a -= c; a ^= rol32(c, 16); c += b; \
  b -= a; b ^= rol32(a, 19); a += c; c -= b; c ^= rol32(b, 4); b += a; }
#define FINAL(a, b, c) { \
  c ^= b; c -= rol32(b, 14); a ^= c; a -= rol32(c, 11); b ^= a; b -= rol32(a, 25); \
  c ^= b; c -= rol32(b, 16); a ^= c; a -= rol32(c, 4); b ^= a; b -= rol32(a, 14); \
  c ^= b; c -= rol32(b, 24); }
static uint32_t jhash_3words(uint32_t a, uint32_t b, uint32_t c, uint32_t iv) {
  iv += 0xdeadbeef + (3 << 2); a += iv; b += iv; c += iv; FINAL(a, b, c); return c; }
int main(int argc, char **argv) {
  /* argv: family addr sport dport proto seed4 seed6 */
  uint16_t sport = htons((uint16_t)atoi(argv[3])), dport = htons((uint16_t)atoi(argv[4]));
  uint32_t proto = (uint32_t)atoi(argv[5]);
  uint32_t seed4 = (uint32_t)strtoul(argv[6], 0, 10), seed6 = (uint32_t)strtoul(argv[7], 0, 10);
  if (argv[1][0] == '4') {
    uint32_t saddr; inet_pton(AF_INET, argv[2], &saddr);
    printf("%u\n", jhash_3words(saddr, ((uint32_t)dport << 16) | sport, proto, seed4));
  } else {
    uint32_t p[4]; inet_pton(AF_INET6, argv[2], p);
    uint32_t a = p[0], b = p[1], c = p[2];
    MIX(a, b, c); a += p[3]; b += ((uint32_t)dport << 16) | sport; c += proto;
    MIX(a, b, c); a += seed6; FINAL(a, b, c);
    printf("%u\n", c);
  }
  return 0;
}
`

const dir = mkdtempSync(join(tmpdir(), 'maglev-flow-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function compileReference(): string | undefined {
  const src = join(dir, 'flowhash.c')
  const bin = join(dir, 'flowhash')
  writeFileSync(src, C_SOURCE)
  const cc = spawnSync('cc', ['-O2', '-o', bin, src], { encoding: 'utf8' })
  return cc.status === 0 ? bin : undefined
}
const reference = compileReference()

describe('flowHash', () => {
  it('jhash3Words matches the kernel definition on fixed inputs', () => {
    // Values printed by the kernel's jhash_3words (include/linux/jhash.h) compiled with cc.
    expect(jhash3Words(0, 0, 0, 0)).toBe(459859287)
    expect(jhash3Words(1, 2, 3, 4)).toBe(2164462655)
    expect(jhash3Words(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)).toBe(3275992843)
  })

  it.runIf(reference)('equals the C definition on packet-order data (IPv4 and IPv6)', () => {
    const seed = decodeSeed()
    const cases = fc.sample(
      fc.record({
        v6: fc.boolean(),
        a: fc.array(fc.nat({ max: 255 }), { minLength: 16, maxLength: 16 }),
        sport: fc.nat({ max: 65535 }),
        dport: fc.nat({ max: 65535 }),
        proto: fc.constantFrom(6, 17, 132, 1),
      }),
      { numRuns: 40, seed: 3 },
    )
    for (const c of cases) {
      const saddr = c.v6
        ? Array.from({ length: 8 }, (_, i) =>
            ((c.a[2 * i]! << 8) | c.a[2 * i + 1]!).toString(16),
          ).join(':')
        : c.a.slice(0, 4).join('.')
      const out = spawnSync(
        reference!,
        [
          c.v6 ? '6' : '4',
          saddr,
          `${c.sport}`,
          `${c.dport}`,
          `${c.proto}`,
          `${seed.jhash0}`,
          `${seed.jhash1}`,
        ],
        { encoding: 'utf8' },
      )
      expect(out.status).toBe(0)
      expect(flowHash({ saddr, sport: c.sport, dport: c.dport, protocol: c.proto })).toBe(
        Number(out.stdout.trim()),
      )
    }
  })

  it('does not depend on the destination, only on source, ports and protocol', () => {
    const base = { saddr: '10.0.0.7', sport: 40000, dport: 80, protocol: 'TCP' as const }
    const h = flowHash(base)
    expect(flowHash({ ...base, sport: 40001 })).not.toBe(h)
    expect(flowHash({ ...base, protocol: 'UDP' })).not.toBe(h)
    expect(flowHash({ ...base, saddr: '10.0.0.8' })).not.toBe(h)
    expect(flowHash({ ...base, protocol: 6 })).toBe(h)
    expect(flowHash(base, { seed: 'AAAAAAAAAAAAAAAA' })).not.toBe(h)
    expect(flowHash(base, { initval: decodeSeed().jhash0 })).toBe(h)
  })

  it('lookupBackend returns the slot flowHash points at, and spreads flows over backends', () => {
    const backends = [1, 2, 3].map((id) => ({ id, address: `10.0.1.${id}`, port: 8080 }))
    const table = buildLookupTable(backends, { tableSize: 1021 })
    const seen = new Map<number, number>()
    for (let sport = 30000; sport < 33000; sport++) {
      const flow = { saddr: '192.0.2.10', sport, dport: 80 }
      const id = lookupBackend(table, flow)
      expect(id).toBe(table[flowHash(flow) % 1021])
      seen.set(id, (seen.get(id) ?? 0) + 1)
    }
    for (const id of [1, 2, 3]) expect(seen.get(id)).toBeGreaterThan(800)
  })

  it.each([
    ['flow.saddr', { saddr: 'nope', sport: 1, dport: 2 }],
    ['flow.sport', { saddr: '10.0.0.1', sport: 70000, dport: 2 }],
    ['flow.dport', { saddr: '10.0.0.1', sport: 1, dport: -2 }],
    ['flow.protocol', { saddr: '10.0.0.1', sport: 1, dport: 2, protocol: 'QUIC' }],
  ])('rejects a bad %s', (path, flow) => {
    try {
      flowHash(flow as never)
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(MaglevError)
      expect((e as MaglevError).path).toBe(path)
      expect((e as MaglevError).code).toBe('INVALID_FLOW')
    }
  })
})
