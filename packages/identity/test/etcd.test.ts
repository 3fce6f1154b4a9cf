import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import { afterAll, beforeAll, describe } from 'vitest'
import { EtcdAllocator } from '../src/etcd'
import { describeAllocatorBackend } from './conformance'

const check = requireKernel(['etcd'])
let etcd: EtcdServer | undefined
let counter = 0

describe.skipIf(!check.ok)(`etcd backend${check.ok ? '' : ` [skipped: ${check.reason}]`}`, () => {
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.stop()
  })

  describeAllocatorBackend('etcd', {
    create: (options) =>
      EtcdAllocator.create({
        endpoints: (etcd as EtcdServer).endpoint,
        node: 'node-a',
        prefix: `test/conformance/${process.pid}-${++counter}`,
        leaseTtlSeconds: 5,
        ...options,
      }),
    collectGarbage: async (a) => {
      await (a as EtcdAllocator).collectGarbage()
      await (a as EtcdAllocator).collectGarbage()
    },
  })
})
