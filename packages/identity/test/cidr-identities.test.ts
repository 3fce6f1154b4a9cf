import { describe, expect, it } from 'vitest'
import { CIDRIdentities, IPCache, MemoryAllocator } from '../src/index'

describe('CIDRIdentities', () => {
  it('allocates, maps and releases CIDR identities as the wanted set changes', async () => {
    const ids = new MemoryAllocator()
    const ipcache = new IPCache()
    const cidrs = new CIDRIdentities(ids, ipcache)
    ipcache.upsert('10.1.2.3', { identity: 300 }) // an endpoint: source local
    const first = new Map(
      await cidrs.update(['0.0.0.0/0', '10.0.0.0/8', '10.1.2.3/32', '10.1.0.0/8']),
    )
    expect([...first.keys()].sort()).toEqual(['0.0.0.0/0', '10.0.0.0/8', '10.1.2.3/32'])
    const ten = first.get('10.0.0.0/8') as number
    expect(ids.lookupById(ten)?.labels.has('cidr:10.0.0.0/8')).toBe(true)
    expect(ipcache.lookup('10.9.9.9')?.entry).toEqual({ identity: ten, source: 'generated' })
    expect(ipcache.lookup('11.0.0.1')?.entry.identity).toBe(first.get('0.0.0.0/0'))
    expect(ipcache.lookup('10.1.2.3')?.entry.identity).toBe(300) // local wins over generated

    await cidrs.update(['0.0.0.0/0'])
    expect(ids.lookupById(ten)).toBeUndefined()
    expect(ipcache.lookup('10.9.9.9')?.prefix.cidr).toBe('0.0.0.0/0')
    expect(ipcache.sources('10.1.2.3')).toEqual([{ identity: 300, source: 'local' }])

    await expect(cidrs.update(['0.0.0.0/0', 'nope'])).rejects.toMatchObject({
      code: 'INVALID_PREFIX',
    })
    expect([...cidrs.current.keys()]).toEqual(['0.0.0.0/0'])
    await cidrs.clear()
    expect(ipcache.size).toBe(1)
    expect(ids.list().filter((r) => r.id > 255)).toEqual([])
  })
})
