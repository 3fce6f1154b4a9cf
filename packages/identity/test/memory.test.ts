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
