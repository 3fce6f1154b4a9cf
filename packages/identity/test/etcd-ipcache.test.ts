import { type EtcdServer, requireKernel, startEtcd } from '@membrane/test-utils'
import { Etcd3 } from 'etcd3'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { EtcdIPCacheSync } from '../src/etcd'
import { IPCache, type IPCacheEvent } from '../src/index'

const check = requireKernel(['etcd'])
let etcd: EtcdServer
let counter = 0

describe.skipIf(!check.ok)(
  `ipcache sync over etcd${check.ok ? '' : ` [skipped: ${check.reason}]`}`,
  () => {
    const open: EtcdIPCacheSync[] = []
    beforeAll(async () => {
      etcd = await startEtcd()
    })
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()))
    })
    afterAll(async () => {
      await etcd?.stop()
    })
    const node = async (name: string, prefix: string) => {
      const ipcache = new IPCache()
      const events: IPCacheEvent[] = []
      ipcache.subscribe((e) => events.push(e))
      const sync = await EtcdIPCacheSync.create({
        endpoints: etcd.endpoint,
        node: name,
        ipcache,
        prefix,
        leaseTtlSeconds: 3,
      })
      open.push(sync)
      return { ipcache, events, sync }
    }

    it('shares entries between nodes, with deletes and node departures', async () => {
      const prefix = `test/ip/${process.pid}-${++counter}`
      const a = await node('node-a', prefix)
      await a.sync.upsert('10.0.1.5', { identity: 256, tunnelEndpoint: '192.168.0.1' })
      await a.sync.upsert('2001:db8::5', { identity: 257, encryptKey: 1 })
      // A node that starts later loads what is there.
      const b = await node('node-b', prefix)
      expect(b.ipcache.lookup('10.0.1.5')?.entry).toEqual({
        identity: 256,
        tunnelEndpoint: '192.168.0.1',
        source: 'kvstore',
      })
      expect(b.ipcache.lookup('2001:db8::5')?.entry).toMatchObject({ identity: 257, encryptKey: 1 })
      await b.sync.upsert('10.0.2.0/24', { identity: 300 })
      await vi.waitFor(() => expect(a.ipcache.lookup('10.0.2.77')?.entry.identity).toBe(300))
      expect(a.ipcache.get('10.0.1.5')?.source).toBe('local')
      expect(a.ipcache.sources('10.0.1.5')).toHaveLength(1)

      await a.sync.delete('10.0.1.5')
      await vi.waitFor(() => expect(b.ipcache.lookup('10.0.1.5')).toBeUndefined())
      expect(b.events.some((e) => e.type === 'delete' && e.prefix.cidr === '10.0.1.5/32')).toBe(
        true,
      )

      const client = new Etcd3({ hosts: etcd.endpoint })
      try {
        const raw = await client.get(`${prefix}/default/2001:db8::5/128`).json()
        expect(raw).toEqual({
          cidr: '2001:db8::5/128',
          identity: 257,
          encryptKey: 1,
          node: 'node-a',
        })
      } finally {
        client.close()
      }
      await a.sync.close()
      await vi.waitFor(() => expect(b.ipcache.lookup('2001:db8::5')).toBeUndefined())
      expect(b.ipcache.get('10.0.2.0/24')?.source).toBe('local')
    })

    it('publishes what was upserted while etcd was down once it is back', async () => {
      const prefix = `test/ip/${process.pid}-${++counter}`
      const ipcache = new IPCache()
      const a = await EtcdIPCacheSync.create({
        endpoints: etcd.endpoint,
        node: 'node-a',
        ipcache,
        prefix,
        timeoutMs: 500,
      })
      open.push(a)
      await etcd.kill()
      try {
        await expect(a.upsert('10.9.9.9', { identity: 777 })).rejects.toMatchObject({
          code: 'BACKEND_UNAVAILABLE',
          retryable: true,
        })
        expect(ipcache.get('10.9.9.9')?.identity).toBe(777)
      } finally {
        await etcd.restart()
      }
      const b = await node('node-b', prefix)
      await vi.waitFor(
        () => expect(b.ipcache.get('10.9.9.9')).toMatchObject({ identity: 777, source: 'kvstore' }),
        {
          timeout: 10_000,
          interval: 200,
        },
      )
    })

    it('withdraws what was deleted while etcd was down once it is back', async () => {
      const prefix = `test/ip/${process.pid}-${++counter}`
      const ipcache = new IPCache()
      // A lease that outlives the outage: only the withdrawal can remove the key.
      const a = await EtcdIPCacheSync.create({
        endpoints: etcd.endpoint,
        node: 'node-a',
        ipcache,
        prefix,
        leaseTtlSeconds: 60,
        timeoutMs: 300,
      })
      open.push(a)
      await a.upsert('10.8.8.8', { identity: 888 })
      const b = await node('node-b', prefix)
      await vi.waitFor(() => expect(b.ipcache.get('10.8.8.8')?.identity).toBe(888))
      await etcd.kill()
      try {
        await expect(a.delete('10.8.8.8')).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' })
        expect(ipcache.get('10.8.8.8')).toBeUndefined()
      } finally {
        await etcd.restart()
      }
      await vi.waitFor(() => expect(b.ipcache.get('10.8.8.8')).toBeUndefined(), {
        timeout: 15_000,
        interval: 200,
      })
    })

    it('publishes again when another node that overwrote the prefix withdraws it', async () => {
      const prefix = `test/ip/${process.pid}-${++counter}`
      const a = await node('node-a', prefix)
      const b = await node('node-b', prefix)
      await a.sync.upsert('10.5.5.5', { identity: 501 })
      await b.sync.upsert('10.5.5.5', { identity: 502 })
      await vi.waitFor(() =>
        expect(
          a.ipcache
            .sources('10.5.5.5')
            .map((e) => e.source)
            .sort(),
        ).toEqual(['kvstore', 'local']),
      )
      await b.sync.delete('10.5.5.5')
      const c = await node('node-c', prefix)
      await vi.waitFor(
        () => expect(c.ipcache.get('10.5.5.5')).toMatchObject({ identity: 501, source: 'kvstore' }),
        {
          timeout: 10_000,
          interval: 100,
        },
      )
      expect(a.ipcache.sources('10.5.5.5')).toEqual([{ identity: 501, source: 'local' }])
    })

    it('rejects bad entries before publishing anything', async () => {
      const prefix = `test/ip/${process.pid}-${++counter}`
      const a = await node('node-a', prefix)
      await expect(a.sync.upsert('10.0.0.0/33', { identity: 1 })).rejects.toMatchObject({
        code: 'INVALID_PREFIX',
      })
      await expect(a.sync.upsert('10.0.0.0/8', { identity: -5 })).rejects.toThrow(
        /identity must be/,
      )
      expect(a.sync.published()).toEqual([])
      expect(a.ipcache.size).toBe(0)
    })
  },
)
