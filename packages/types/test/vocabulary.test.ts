import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  DropReason,
  dropReasonName,
  isDropReason,
  isProxyMark,
  MARK_MAGIC_MASK,
  MARK_MAGIC_PROXY,
  MarkError,
  markIdentity,
  proxyMark,
  RESERVED_IDENTITY_BY_NAME,
  RESERVED_IDENTITY_NAMES,
  ReservedIdentity,
  reservedIdentityByName,
  reservedIdentityName,
} from '../src/index'

const lib = join(__dirname, '../../../bpf-src/lib')
const defines = new Map<string, number>()
for (const f of readdirSync(lib).filter((f) => f.endsWith('.h'))) {
  for (const line of readFileSync(join(lib, f), 'utf8').split('\n')) {
    const m =
      /^#define\s+([A-Z0-9_]+)\s+\(?\s*(-?(?:0x[0-9a-fA-F]+|\d+))\s*\)?\s*(?:\/\*.*)?$/.exec(line)
    if (m) defines.set(m[1] as string, Number(m[2]))
  }
}

describe('drop reasons', () => {
  it('equal the header, both ways', () => {
    const fromHeader = Object.fromEntries(
      [...defines].filter(([k]) => k.startsWith('DROP_')).map(([k, v]) => [k.slice(5), -v]),
    )
    expect(Object.keys(fromHeader).length).toBeGreaterThan(30)
    expect({ ...DropReason }).toEqual(fromHeader)
    expect(DropReason.POLICY).toBe(133)
    expect(dropReasonName(133)).toBe('POLICY')
    expect(dropReasonName(-181)).toBe('POLICY_DENY')
    expect(dropReasonName(1)).toBeUndefined()
    expect(isDropReason(DropReason.NO_SERVICE)).toBe(true)
    expect(isDropReason(0)).toBe(false)
  })
})

describe('reserved identities', () => {
  it("are Cilium's numbers, and bpf-src's MB_ID_* agree", () => {
    expect(RESERVED_IDENTITY_BY_NAME).toEqual({
      host: 1,
      world: 2,
      unmanaged: 3,
      health: 4,
      init: 5,
      'remote-node': 6,
      'kube-apiserver': 7,
      ingress: 8,
      'world-ipv4': 9,
      'world-ipv6': 10,
    })
    const fromHeader = [...defines].filter(([k]) => k.startsWith('MB_ID_'))
    expect(fromHeader.length).toBeGreaterThan(5)
    for (const [k, v] of fromHeader)
      expect([k, v]).toEqual([k, (ReservedIdentity as Record<string, number>)[k.slice(6)]])
  })

  it('name and number map both ways', () => {
    for (const name of RESERVED_IDENTITY_NAMES) {
      const id = reservedIdentityByName(name) as number
      expect(reservedIdentityName(id)).toBe(name)
      expect(
        (ReservedIdentity as Record<string, number>)[name.toUpperCase().replaceAll('-', '_')],
      ).toBe(id)
    }
    expect(reservedIdentityName(0)).toBeUndefined()
    expect(reservedIdentityName(256)).toBeUndefined()
    expect(reservedIdentityByName('toString')).toBeUndefined()
  })
})

describe('marks', () => {
  it("match bpf-src and Cilium's layout", () => {
    expect(defines.get('MB_MARK_MAGIC_PROXY')).toBe(MARK_MAGIC_PROXY)
    expect(defines.get('MB_MARK_MAGIC_MASK')).toBe(MARK_MAGIC_MASK)
    expect(proxyMark(12345)).toBe(0x30390a00)
    expect(proxyMark(0)).toBe(0x0a00)
    expect(proxyMark(0xffff)).toBe(0xffff0a00)
    expect(markIdentity(proxyMark(4242))).toBe(4242)
    expect(isProxyMark(proxyMark(7))).toBe(true)
    expect(isProxyMark(0x0b00)).toBe(false)
    for (const bad of [-1, 0x10000, 1.5, Number.NaN])
      expect(() => proxyMark(bad)).toThrow(MarkError)
  })
})
