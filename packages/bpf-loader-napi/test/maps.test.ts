import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type BpfError,
  BpfObject,
  createMap,
  ipv4,
  lpmKey,
  openPinnedMap,
  possibleCpus,
  struct,
  u32,
  u64,
} from '../src/index'
import { setBatchParallel } from '../src/map'
import { ipv4UdpPacket, testObject, u32le, u64le } from './_helpers'

describeKernel('BpfMap', ['root', 'bpf', 'bpffs'], () => {
  let pins: { path: string; remove(): void }
  beforeAll(() => {
    pins = tempBpffsDir()
  })
  afterAll(() => pins?.remove())

  describe('hash map from createMap', () => {
    it('round-trips lookup/update/delete with flags, keys and entries', () => {
      using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64, name: 'rt' })
      expect(m.info).toMatchObject({
        name: 'rt',
        type: 'hash',
        keySize: 4,
        valueSize: 8,
        maxEntries: 64,
      })
      expect(m.info.id).toBeGreaterThan(0)
      expect(m.lookup(u32le(1))).toBeUndefined()
      m.update(u32le(1), u64le(10))
      m.update(u32le(2), u64le(20), 'noexist')
      expect(() => m.update(u32le(2), u64le(21), 'noexist')).toThrow(
        expect.objectContaining({ code: 'EEXIST', call: 'bpf_map_update_elem' }),
      )
      expect(() => m.update(u32le(3), u64le(30), 'exist')).toThrow(
        expect.objectContaining({ code: 'ENOENT' }),
      )
      m.update(u32le(2), u64le(22), 'exist')
      expect(m.lookup(u32le(2))?.readBigUInt64LE()).toBe(22n)
      expect(
        m
          .keys()
          .map((k) => k.readUInt32LE())
          .sort(),
      ).toEqual([1, 2])
      expect(
        m
          .entries()
          .map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()])
          .sort(),
      ).toEqual([
        [1, 10n],
        [2, 22n],
      ])
      expect(m.delete(u32le(1))).toBe(true)
      expect(m.delete(u32le(1))).toBe(false)
      expect(m.keys()).toHaveLength(1)
    })

    it('names the map, the field and the expected size on a wrong key or value', () => {
      using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'sizes' })
      expect(() => m.lookup(Buffer.alloc(8))).toThrow(
        "map 'sizes' key: expected a 4-byte Buffer, got a 8-byte Buffer",
      )
      expect(() => m.update(u32le(1), Buffer.alloc(4))).toThrow(
        "map 'sizes' value: expected a 8-byte Buffer, got a 4-byte Buffer",
      )
      expect(() => m.update('x' as unknown as Buffer, u64le(1))).toThrow(
        /key: expected a 4-byte Buffer, got "x"/,
      )
      expect(() => m.update(u32le(1), u64le(1), 'sometimes' as 'any')).toThrow(
        /'any', 'noexist' or 'exist'/,
      )
    })

    it('reports E2BIG with a hint when the map is full', () => {
      using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 2 })
      m.update(u32le(1), u64le(1))
      m.update(u32le(2), u64le(2))
      const err = (() => {
        try {
          m.update(u32le(3), u64le(3))
        } catch (e) {
          return e as BpfError
        }
      })()
      expect(err?.code).toBe('E2BIG')
      expect(err?.errno).toBe(7)
      expect(err?.hint).toMatch(/max_entries/)
    })

    it('fails clearly after close', () => {
      const m = createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'gone' })
      m.close()
      expect(() => m.lookup(u32le(0))).toThrow(
        expect.objectContaining({ code: 'CLOSED', message: "map 'gone' is closed" }),
      )
      expect(() => m.fd).toThrow(/closed/)
      m.close()
    })

    it('lookupInto fills a caller buffer, leaves it alone when absent, and checks both sizes', () => {
      using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'into' })
      m.update(u32le(1), u64le(11n))
      const out = Buffer.alloc(8, 0xee)
      expect(m.lookupInto(u32le(2), out)).toBe(false)
      expect(out).toEqual(Buffer.alloc(8, 0xee))
      expect(m.lookupInto(u32le(1), out)).toBe(true)
      expect(out.readBigUInt64LE()).toBe(11n)
      expect(() => m.lookupInto(u32le(1), Buffer.alloc(4))).toThrow(
        expect.objectContaining({
          code: 'INVALID_INPUT',
          message: "map 'into' value: expected a 8-byte Buffer, got a 4-byte Buffer",
        }),
      )
      expect(() => m.lookupInto(Buffer.alloc(2), out)).toThrow(
        "map 'into' key: expected a 4-byte Buffer, got a 2-byte Buffer",
      )
      expect(() => m.lookupInto(u32le(1), new Uint8Array(8) as Buffer)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      )
      expect(() => m.delete(Buffer.alloc(5))).toThrow(/key: expected a 4-byte Buffer/)
      expect(() => m.delete(null as unknown as Buffer)).toThrow(/key: expected a 4-byte Buffer/)
      expect(() => m.lookup(new Uint16Array(2) as unknown as Buffer)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      )
      expect(m.lookup(u32le(1))?.readBigUInt64LE()).toBe(11n)
      m.close()
      for (const call of [
        () => m.lookupInto(u32le(1), out),
        () => m.update(u32le(1), u64le(1n)),
        () => m.delete(u32le(1)),
        () => m.lookupAndDelete(u32le(1)),
      ])
        expect(call).toThrow(expect.objectContaining({ code: 'CLOSED' }))
    })

    // A Buffer whose own `length` property lies: the checks must use the length V8 keeps, or the
    // kernel would write 8 bytes into a 1-byte buffer (and read past short keys).
    it('refuses buffers whose length property lies, without touching memory past them', async () => {
      using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8, name: 'liar' })
      m.update(u32le(1), u64le(0x1122334455667788n))
      const liar = (size: number, claimed: number) => {
        const backing = Buffer.alloc(64, 0xab)
        const b = backing.subarray(0, size)
        Object.defineProperty(b, 'length', { value: claimed })
        return { b, backing }
      }
      const out = liar(1, 8)
      expect(() => m.lookupInto(u32le(1), out.b)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringMatching(/value/) }),
      )
      expect(out.backing).toEqual(Buffer.alloc(64, 0xab))
      const key = liar(1, 4)
      expect(() => m.lookup(key.b)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
      expect(() => m.lookupInto(key.b, Buffer.alloc(8))).toThrow(/key/)
      expect(() => m.update(key.b, u64le(1n))).toThrow(/key/)
      expect(() => m.update(u32le(2), liar(2, 8).b)).toThrow(/value/)
      expect(() => m.delete(key.b)).toThrow(/key/)
      expect(() => m.lookupAndDelete(key.b)).toThrow(/key/)
      await expect(m.batchUpdate({ keys: liar(4, 8).b, values: Buffer.alloc(16) })).rejects.toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      )
      await expect(m.batchUpdate({ keys: u32le(3), values: liar(4, 8).b })).rejects.toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      )
      await expect(m.batchUpdate([[key.b, u64le(1n)]])).rejects.toThrow(/key \[0\]/)
      await expect(m.batchUpdate([[u32le(4), liar(4, 8).b]])).rejects.toThrow(/value \[0\]/)
      await expect(m.batchDelete(liar(2, 4).b)).rejects.toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      )
      // nothing was half-applied
      expect(m.keys().map((k) => k.readUInt32LE())).toEqual([1])
      expect(m.lookup(u32le(1))?.readBigUInt64LE()).toBe(0x1122334455667788n)
    })

    it('validates createMap options', () => {
      expect(() =>
        createMap({ type: 'hashy' as 'hash', keySize: 4, valueSize: 4, maxEntries: 1 }),
      ).toThrow(/createMap type: expected one of/)
      expect(() => createMap({ type: 'hash', keySize: -1, valueSize: 4, maxEntries: 1 })).toThrow(
        /keySize/,
      )
      expect(() =>
        createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'bad name!' }),
      ).toThrow(/name/)
      expect(() => createMap({ type: 'hash', keySize: 0, valueSize: 4, maxEntries: 1 })).toThrow(
        expect.objectContaining({ code: 'EINVAL', call: 'bpf_map_create' }),
      )
    })
  })

  it('batch update, lookup and delete of many entries', async () => {
    using m = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 5000, name: 'batch' })
    const keys = Buffer.alloc(4 * 3000)
    const values = Buffer.alloc(8 * 3000)
    for (let i = 0; i < 3000; i++) {
      keys.writeUInt32LE(i, i * 4)
      values.writeBigUInt64LE(BigInt(i) * 3n, i * 8)
    }
    expect(await m.batchUpdate({ keys, values })).toBe(3000)
    const all = await m.batchLookup()
    expect(all).toHaveLength(3000)
    for (const [k, v] of all) expect(v.readBigUInt64LE()).toBe(BigInt(k.readUInt32LE()) * 3n)
    expect(await m.batchDelete(keys.subarray(0, 4 * 1000))).toBe(1000)
    expect((await m.batchLookupPacked()).count).toBe(2000)
    expect(await m.batchUpdate([[u32le(99999), u64le(1)]])).toBe(1)
    const drained = await m.batchLookup({ andDelete: true })
    expect(drained).toHaveLength(2001)
    expect(m.keys()).toHaveLength(0)
  })

  // Large batches go to parallel parts only when CPUs are idle; both paths are forced here so
  // that a busy or a quiet machine tests each of them.
  it.each(['always', 'never'] as const)(
    'a large batch (parallel parts: %s) keeps every entry, and the last copy of a key wins',
    async (mode) => {
      setBatchParallel(mode)
      try {
        const n = 40_000
        using m = createMap({
          type: 'hash',
          keySize: 4,
          valueSize: 8,
          maxEntries: n,
          name: 'bigbatch',
        })
        // every key twice: first with value 1, later with its real value; the later one must stay
        const keys = Buffer.alloc(4 * 2 * n)
        const values = Buffer.alloc(8 * 2 * n)
        for (let i = 0; i < n; i++) {
          keys.writeUInt32LE(i, i * 4)
          values.writeBigUInt64LE(1n, i * 8)
          keys.writeUInt32LE(i, (n + i) * 4)
          values.writeBigUInt64LE(BigInt(i) * 7n + 3n, (n + i) * 8)
        }
        expect(await m.batchUpdate({ keys, values })).toBe(2 * n)
        const got = await m.batchLookupPacked()
        expect(got.count).toBe(n)
        for (let i = 0; i < got.count; i++) {
          const k = got.keys.readUInt32LE(i * 4)
          expect(got.values.readBigUInt64LE(i * 8)).toBe(BigInt(k) * 7n + 3n)
        }
        // a failing batch reports how much was written (in parts: that it is not a prefix)
        using small = createMap({
          type: 'hash',
          keySize: 4,
          valueSize: 8,
          maxEntries: 100,
          name: 'full',
        })
        const err = await small.batchUpdate({ keys, values }).catch((e: unknown) => e)
        expect(err).toMatchObject({ call: 'bpf_map_update_batch', code: 'E2BIG' })
        expect(String((err as Error).message)).toMatch(
          mode === 'always' ? /not a prefix/ : /100 of 80000 entries written/,
        )
      } finally {
        setBatchParallel('auto')
      }
    },
  )

  it('per-CPU values: one slot per possible CPU', () => {
    const n = possibleCpus()
    expect(n).toBeGreaterThan(0)
    using m = createMap({
      type: 'percpu_hash',
      keySize: 4,
      valueSize: 4,
      maxEntries: 8,
      name: 'pcpu',
    })
    const values = Array.from({ length: n }, (_, i) => u32le(100 + i))
    m.updatePerCpu(u32le(7), values)
    const got = m.lookupPerCpu(u32le(7))
    expect(got?.map((b) => b.readUInt32LE())).toEqual(values.map((b) => b.readUInt32LE()))
    expect(m.lookup(u32le(7))?.length).toBe(8 * n) // raw: 8-byte aligned slots
    expect(() => m.updatePerCpu(u32le(1), [u32le(1)].slice(0, n - 1 || 0))).toThrow(
      /array of \d+ Buffers/,
    )
    // updatePerCpu sends the padding between slots as zeros, whatever an earlier call (here a
    // raw update with 0xff everywhere, which the kernel keeps) left in the map's element slot
    m.update(u32le(8), Buffer.alloc(8 * n, 0xff))
    expect(m.lookup(u32le(8))).toEqual(Buffer.alloc(8 * n, 0xff))
    m.updatePerCpu(u32le(8), values)
    const raw = m.lookup(u32le(8))!
    for (let c = 0; c < n; c++) {
      expect(raw.readUInt32LE(8 * c)).toBe(100 + c)
      expect(raw.readUInt32LE(8 * c + 4)).toBe(0)
    }
    using plain = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 })
    expect(() => plain.lookupPerCpu(u32le(0))).toThrow(/a per-CPU map/)
  })

  it('batch ops on a per-CPU map carry every CPU slot', async () => {
    const n = possibleCpus()
    using m = createMap({
      type: 'percpu_hash',
      keySize: 4,
      valueSize: 4,
      maxEntries: 16,
      name: 'pcpub',
    })
    expect(m.valueStride).toBe(8 * n)
    const value = (k: number) => {
      const v = Buffer.alloc(8 * n)
      for (let c = 0; c < n; c++) v.writeUInt32LE(k * 100 + c, 8 * c)
      return v
    }
    expect(
      await m.batchUpdate([1, 2, 3].map((k) => [u32le(k), value(k)] as [Buffer, Buffer])),
    ).toBe(3)
    const all = await m.batchLookup()
    expect(
      all.map(([k, v]) => [k.readUInt32LE(), v.equals(value(k.readUInt32LE()))]).sort(),
    ).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ])
    expect(m.lookupPerCpu(u32le(2))?.map((b) => b.readUInt32LE())).toEqual(
      Array.from({ length: n }, (_, c) => 200 + c),
    )
  })

  it('typed maps with struct codecs', () => {
    using m = createMap({ type: 'hash', keySize: 8, valueSize: 16, maxEntries: 8, name: 'typed' })
    const key = struct([
      ['ip', ipv4],
      ['port', u32],
    ] as const)
    const val = struct([
      ['packets', u64],
      ['bytes', u64],
    ] as const)
    const t = m.typed(key, val)
    t.update({ ip: '10.1.2.3', port: 80 }, { packets: 5n, bytes: 1500n })
    expect(t.lookup({ ip: '10.1.2.3', port: 80 })).toEqual({ packets: 5n, bytes: 1500n })
    expect(t.keys()).toEqual([{ ip: '10.1.2.3', port: 80 }])
    expect(() => m.typed(u32, val)).toThrow(/key codec: expected size 8/)
  })

  it('pins, opens the pin, unpins; ENOENT on a missing pin says why', () => {
    const path = `${pins.path}/m1`
    using m = createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2, name: 'pinme' })
    m.update(u32le(1), u32le(77))
    m.pin(path)
    {
      using again = openPinnedMap(path)
      expect(again.lookup(u32le(1))?.readUInt32LE()).toBe(77)
      expect(again.info.name).toBe('pinme')
    }
    m.unpin()
    expect(() => openPinnedMap(path)).toThrow(
      expect.objectContaining({ code: 'ENOENT', call: 'bpf_obj_get' }),
    )
    expect(() => openPinnedMap('/tmp/nowhere/x')).toThrow(/bpffs is not mounted at \/tmp\/nowhere/)
    expect(() => openPinnedMap('relative/x')).toThrow(/absolute path/)
    expect(() => m.pin('/sys/fs/bpf/../x')).toThrow(/\.\./)
  })

  it('queue and stack maps: push, peek, pop; lookupAndDelete on a hash', () => {
    using q = createMap({ type: 'queue', keySize: 0, valueSize: 4, maxEntries: 4, name: 'q' })
    using st = createMap({ type: 'stack', keySize: 0, valueSize: 4, maxEntries: 4, name: 'st' })
    for (const n of [1, 2, 3]) {
      q.push(u32le(n))
      st.push(u32le(n))
    }
    expect(q.peek()?.readUInt32LE()).toBe(1)
    expect([q.pop(), q.pop(), q.pop(), q.pop()].map((b) => b?.readUInt32LE())).toEqual([
      1,
      2,
      3,
      undefined,
    ])
    expect([st.pop(), st.pop(), st.pop()].map((b) => b?.readUInt32LE())).toEqual([3, 2, 1])
    using h = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })
    expect(() => h.push(u64le(1))).toThrow(/a queue or stack map/)
    h.update(u32le(5), u64le(50))
    expect(h.lookupAndDelete(u32le(5))?.readBigUInt64LE()).toBe(50n)
    expect(h.lookupAndDelete(u32le(5))).toBeUndefined()
  })

  it('freeze makes a map read-only for user space', () => {
    using m = createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'frozen' })
    m.update(u32le(0), u32le(1))
    m.freeze()
    expect(() => m.update(u32le(0), u32le(2))).toThrow(expect.objectContaining({ code: 'EPERM' }))
    expect(m.lookup(u32le(0))?.readUInt32LE()).toBe(1)
  })

  describe('maps of a loaded object', () => {
    let obj: BpfObject
    beforeAll(async () => {
      obj = BpfObject.open(testObject('loader_maps'))
      obj.setGlobal('cfg_magic', 5)
      await obj.load()
    })
    afterAll(() => obj.close())

    it('per-CPU array counted by a program', async () => {
      await obj
        .program('exercise')
        .testRun({ data: ipv4UdpPacket('1.1.1.1', '2.2.2.2'), repeat: 5 })
      const slots = obj.map('percpu_counts').lookupPerCpu(u32le(0))!
      expect(slots).toHaveLength(possibleCpus())
      expect(slots.reduce((s, b) => s + b.readBigUInt64LE(), 0n)).toBe(5n)
    })

    it('LPM trie: longest prefix wins, typed with lpmKey(ipv4)', async () => {
      const trie = obj.map('lpm_v4').typed(lpmKey(ipv4), u32)
      trie.update({ prefixLen: 8, addr: '10.0.0.0' }, 8)
      trie.update({ prefixLen: 24, addr: '10.1.2.0' }, 24)
      trie.update({ prefixLen: 32, addr: '10.1.2.3' }, 32)
      const matched = async (src: string) => {
        await obj.program('exercise').testRun({ data: ipv4UdpPacket(src, '2.2.2.2') })
        return obj.map('hash_map').lookup(u32le(2))!.readBigUInt64LE()
      }
      expect(await matched('10.1.2.3')).toBe(32n)
      expect(await matched('10.1.2.4')).toBe(24n)
      expect(await matched('10.9.9.9')).toBe(8n)
      expect(await matched('11.0.0.1')).toBe(0xffffffffn)
      expect(trie.lookup({ prefixLen: 32, addr: '10.1.2.200' })).toBe(24)
      expect(trie.delete({ prefixLen: 24, addr: '10.1.2.0' })).toBe(true)
      expect(await matched('10.1.2.4')).toBe(8n)
      expect(() => trie.update({ prefixLen: 33, addr: '10.0.0.0' }, 1)).toThrow(/prefixLen/)
    })

    it('map-in-map: setInner swaps the inner map a program reads', async () => {
      const outer = obj.map('outer')
      expect(outer.info.type).toBe('array_of_maps')
      obj.map('inner_a').update(u32le(0), u32le(111))
      const read = async () => {
        await obj.program('exercise').testRun({ data: ipv4UdpPacket('1.1.1.1', '2.2.2.2') })
        return obj.map('hash_map').lookup(u32le(3))!.readBigUInt64LE()
      }
      expect(await read()).toBe(111n)
      using inner = createMap({
        type: 'array',
        keySize: 4,
        valueSize: 4,
        maxEntries: 1,
        name: 'inner_b',
      })
      inner.update(u32le(0), u32le(222))
      outer.setInner(u32le(0), inner)
      expect(outer.innerId(u32le(0))).toBe(inner.info.id)
      expect(await read()).toBe(222n)
      using wrongShape = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 })
      expect(() => outer.setInner(u32le(1), wrongShape)).toThrow(
        expect.objectContaining({ code: 'EINVAL' }),
      )
      expect(() => obj.map('hash_map').setInner(u32le(0), inner)).toThrow(
        /array_of_maps or hash_of_maps/,
      )
    })

    it('hash_of_maps created without an object', () => {
      using tmpl = createMap({
        type: 'hash',
        keySize: 4,
        valueSize: 4,
        maxEntries: 4,
        name: 'tmpl',
      })
      using hom = createMap({
        type: 'hash_of_maps',
        keySize: 4,
        valueSize: 4,
        maxEntries: 4,
        name: 'hom',
        innerMap: tmpl,
      })
      using a = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, name: 'a' })
      hom.setInner(u32le(9), a)
      expect(hom.innerId(u32le(9))).toBe(a.info.id)
      expect(hom.delete(u32le(9))).toBe(true)
    })
  })
})
