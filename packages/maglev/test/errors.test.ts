import { describe, expect, it } from 'vitest'
import { type Backend, buildLookupTable, decodeSeed, MaglevError } from '../src/index'

const ok: Backend = { id: 1, address: '10.0.0.1', port: 80 }

function codeOf(fn: () => unknown): { code: string; path: string | undefined; message: string } {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(MaglevError)
    const err = e as MaglevError
    return { code: err.code, path: err.path, message: err.message }
  }
  throw new Error('expected a MaglevError, nothing was thrown')
}

describe('errors', () => {
  it.each([0, 250, 252, 16383, 131072, 1.5, '16381', Number.NaN])('table size %s', (tableSize) => {
    const e = codeOf(() => buildLookupTable([ok], { tableSize: tableSize as number }))
    expect(e.code).toBe('INVALID_TABLE_SIZE')
    expect(e.path).toBe('tableSize')
    expect(e.message).toContain('251, 509, 1021')
  })

  it.each([
    ['not base64', 'not-base64!!!!!!'],
    ['9 bytes', 'AAAAAAAAAAAA'],
    ['15 bytes', 'AAAAAAAAAAAAAAAAAAAA'],
    ['bad padding', 'AAAAAAAAAAAAAA=A'],
    ['empty', ''],
  ])('seed: %s', (_what, seed) => {
    const e = codeOf(() => buildLookupTable([ok], { seed }))
    expect(e.code).toBe('INVALID_SEED')
    expect(e.path).toBe('seed')
  })

  it('names the decoded length of a seed that is not 12 bytes', () => {
    expect(codeOf(() => decodeSeed('AAAAAAAAAAAA')).message).toContain('9 bytes')
  })

  it('decodes the default seed into three big-endian words', () => {
    // JLfvgnHc2kaSUFaI = 24 b7 ef 82 | 71 dc da 46 | 92 50 56 88
    expect(decodeSeed('JLfvgnHc2kaSUFaI')).toEqual({
      murmur: 0x24b7ef82,
      jhash0: 0x71dcda46,
      jhash1: 0x92505688,
    })
  })

  it('rejects an empty backend list', () => {
    expect(codeOf(() => buildLookupTable([])).code).toBe('NO_BACKENDS')
  })

  it('rejects duplicate ids, naming both', () => {
    const e = codeOf(() => buildLookupTable([ok, { ...ok, address: '10.0.0.2' }]))
    expect(e.code).toBe('DUPLICATE_ID')
    expect(e.path).toBe('backends[1].id')
    expect(e.message).toContain('backends[0]')
  })

  it('rejects the same backend twice under two ids (the same address spelled differently)', () => {
    const e = codeOf(() =>
      buildLookupTable([
        { id: 1, address: '2001:db8::1', port: 80 },
        { id: 2, address: '2001:DB8:0:0::1', port: 80, protocol: 'tcp' },
      ]),
    )
    expect(e.code).toBe('DUPLICATE_BACKEND')
  })

  it.each([0, -1, 1.5, 65536, Number.NaN])('rejects weight %s', (weight) => {
    const e = codeOf(() => buildLookupTable([ok, { id: 2, address: '10.0.0.2', port: 80, weight }]))
    expect(e.code).toBe('INVALID_WEIGHT')
    expect(e.path).toBe('backends[1].weight')
  })

  it.each([
    ['id', { id: -1 }],
    ['id', { id: 2 ** 32 }],
    ['address', { address: '10.0.0.256' }],
    ['address', { address: '010.0.0.1' }],
    ['address', { address: 'fe80::1%eth0' }],
    ['address', { address: '[2001:db8::1]' }],
    ['address', { address: '1:2:3:4:5:6:7:8:9' }],
    ['address', { address: 'example.com' }],
    ['port', { port: 65536 }],
    ['port', { port: -1 }],
    ['protocol', { protocol: 'ICMP' }],
    ['scope', { scope: 'cluster' }],
    ['clusterId', { clusterId: -3 }],
  ])('rejects a bad %s', (field, patch) => {
    const e = codeOf(() => buildLookupTable([{ ...ok, ...(patch as Partial<Backend>) }]))
    expect(e.code).toBe('INVALID_BACKEND')
    expect(e.path).toBe(`backends[0].${field}`)
  })
})
