import { describe, expect, it } from 'vitest'
import { IdentityError, MemoryAllocator } from '../src/index'
import { describeAllocatorBackend } from './conformance'

describeAllocatorBackend('memory', {
  create: async (options) => new MemoryAllocator(options),
})

describe('MemoryAllocator', () => {
  it('rejects a cluster id out of range and a range outside the cluster', () => {
    expect(() => new MemoryAllocator({ clusterId: 256 })).toThrow(IdentityError)
    expect(() => new MemoryAllocator({ clusterId: 1, minId: 256 })).toThrow(/identity range/)
  })

  it('does not reuse a released id at once', () => {
    const a = new MemoryAllocator()
    const x = a.allocateSync(['k8s:app=x']).id
    a.releaseSync(x)
    const y = a.allocateSync(['k8s:app=y']).id
    expect(y).not.toBe(x)
    expect(a.references(y)).toBe(1)
  })
})

describe('MemoryAllocator restore', () => {
  it('gives the same ids back after a restart, and prunes what nobody takes', async () => {
    const before = new MemoryAllocator()
    const web = before.allocateSync(['k8s:app=web'])
    const db = before.allocateSync(['k8s:app=db'])
    const cidr = await before.allocateCIDR('10.0.0.0/8')
    const saved = JSON.parse(JSON.stringify(before.list()))
    const after = new MemoryAllocator({ restore: saved })
    expect(after.lookupByLabels(['k8s:app=db'])?.id).toBe(db.id)
    expect(after.allocateSync(['k8s:app=web'])).toMatchObject({ id: web.id, isNew: false })
    expect((await after.allocateCIDR('10.0.0.0/8')).id).toBe(cidr.id)
    expect(after.releaseSync(db.id)).toBe(false)
    const fresh = after.allocateSync(['k8s:app=new'])
    expect([web.id, db.id]).not.toContain(fresh.id)
    const deleted: number[] = []
    after.watch((e) => e.type === 'delete' && deleted.push(e.identity.id), { replay: false })
    expect(after.pruneUnreferenced()).toEqual([db.id])
    expect(deleted).toEqual([db.id])
    expect(after.lookupById(web.id)).toBeDefined()
  })

  it('rejects restored records that conflict or fall outside the range', () => {
    expect(
      () =>
        new MemoryAllocator({
          restore: [
            { id: 300, labels: ['k8s:app=a'] },
            { id: 300, labels: ['k8s:app=b'] },
          ],
        }),
    ).toThrow(/conflicts with 300/)
    expect(
      () => new MemoryAllocator({ clusterId: 1, restore: [{ id: 300, labels: ['k8s:app=a'] }] }),
    ).toThrow(/outside the cluster range/)
  })
})
