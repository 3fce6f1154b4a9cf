import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DatapathError, EndpointMap, IpcacheMap, MAP_SPECS } from '../src/index'
import { checkPinnedMaps, validatePinName, validatePinRoot } from '../src/pins'
import { FakeMap } from './_fake-map'

describe('IpcacheMap', () => {
  it('longest prefix wins; events from @membrane/identity apply', () => {
    const ic = new IpcacheMap(new FakeMap({ type: 'lpm_trie', keySize: 24, valueSize: 12 }))
    ic.upsert('10.0.0.0/8', 1000)
    ic.applyEvent({
      type: 'upsert',
      prefix: { cidr: '10.1.0.0/16' },
      entry: { identity: 2000, tunnelEndpoint: '192.168.1.2' },
    })
    ic.upsert('10.1.2.3', 3000)
    expect(ic.lookup('10.9.9.9')?.identity).toBe(1000)
    expect(ic.lookup('10.1.9.9')).toMatchObject({ identity: 2000, tunnelEndpoint: '192.168.1.2' })
    expect(ic.lookup('10.1.2.3')?.identity).toBe(3000)
    expect(ic.lookup('11.0.0.1')).toBeUndefined()
    ic.applyEvent({ type: 'delete', prefix: '10.1.2.3/32' })
    expect(ic.lookup('10.1.2.3')?.identity).toBe(2000)
    expect(
      ic
        .entries()
        .map((e) => e.cidr)
        .sort(),
    ).toEqual(['10.0.0.0/8', '10.1.0.0/16'])
    ic.upsert('2001:db8::/32', 4000)
    expect(ic.lookup('2001:db8::1')?.identity).toBe(4000)
    expect(() => ic.upsert('10.0.0.0/33', 1)).toThrowError(/prefix: expected an IPv4 or IPv6 CIDR/)
  })

  it('host bits are cleared so that one prefix is one key', () => {
    const map = new FakeMap({ type: 'lpm_trie', keySize: 24, valueSize: 12 })
    const ic = new IpcacheMap(map)
    ic.upsert('10.1.2.3/8', 1)
    ic.upsert('10.0.0.0/8', 2)
    expect(map.store.size).toBe(1)
  })
})

describe('EndpointMap', () => {
  it('writes the record under ifindex and IP, moves the IP entry on change', () => {
    const byIf = new FakeMap({ keySize: 4, valueSize: 48 })
    const byIp = new FakeMap({ keySize: 4, valueSize: 48 })
    const em = new EndpointMap(byIf, byIp)
    em.upsert({ id: 3, identity: 256, ifindex: 40, ip: '10.0.1.3', mac: '02:00:00:00:00:03' })
    expect(em.byIp('10.0.1.3')).toMatchObject({ id: 3, enforceIngress: true, enforceEgress: true })
    em.upsert({
      id: 3,
      identity: 256,
      ifindex: 40,
      ip: '10.0.1.4',
      mac: '02:00:00:00:00:03',
      enforceEgress: false,
    })
    expect(em.byIp('10.0.1.3')).toBeUndefined()
    expect(em.get(40)).toMatchObject({ ip: '10.0.1.4', enforceEgress: false })
    expect(em.delete(40)).toBe(true)
    expect(byIp.store.size + byIf.store.size).toBe(0)
    expect(() =>
      em.upsert({ id: 0, identity: 1, ifindex: 1, ip: '1.2.3.4', mac: '02:00:00:00:00:01' }),
    ).toThrowError(/endpoint\.id/)
  })
})

describe('pins', () => {
  it('validates pin roots and names', () => {
    expect(validatePinRoot('/sys/fs/bpf/membrane/', ['/sys/fs/bpf'])).toBe('/sys/fs/bpf/membrane')
    expect(() => validatePinRoot('relative/x', ['/sys/fs/bpf'])).toThrowError(/absolute/)
    expect(() => validatePinRoot('/sys/fs/bpf/../etc', ['/sys/fs/bpf'])).toThrowError(/'\.\.'/)
    expect(() => validatePinRoot('/tmp/x', ['/sys/fs/bpf'])).toThrowError(/mounted bpffs/)
    expect(() => validatePinRoot('/sys/fs/bpf/a b', ['/sys/fs/bpf'])).toThrowError(/only letters/)
    expect(() => validatePinRoot('/sys/fs/bpfx/a', ['/sys/fs/bpf'])).toThrowError(/mounted bpffs/)
    expect(validatePinName('mb_ct4')).toBe('mb_ct4')
    for (const bad of ['', '..', '../x', 'a/b', '-x', 'x'.repeat(64)])
      expect(() => validatePinName(bad)).toThrowError(DatapathError)
  })

  it('an incompatible pinned map is a clear error with a migration path; compatible ones pass', () => {
    const dir = mkdtempSync('/tmp/mbpins-')
    try {
      writeFileSync(join(dir, 'mb_ct4'), '')
      writeFileSync(join(dir, 'mb_policy'), '')
      const open = (p: string) => {
        const name = p.split('/').pop() as string
        const spec = MAP_SPECS[name]
        if (!spec) throw new Error('unexpected')
        return new FakeMap({ name, ...spec, ...(name === 'mb_ct4' ? { valueSize: 48 } : {}) })
      }
      expect(() => checkPinnedMaps(dir, open)).toThrowError(
        /mb_ct4 \(valueSize: pinned 48, needed 56\).*Nothing was changed.*To migrate/,
      )
      rmSync(join(dir, 'mb_ct4'))
      expect(() => checkPinnedMaps(dir, open)).not.toThrow()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
