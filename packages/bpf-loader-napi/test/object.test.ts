import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  BpfError,
  BpfObject,
  createMap,
  ipv4,
  lpmKey,
  openPinnedMap,
  struct,
  u32,
  u64,
  VerifierError,
} from '../src/index'
import { ipv4UdpPacket, testObject, u32le } from './_helpers'

describeKernel('BpfObject', ['root', 'bpf', 'bpffs'], () => {
  let pins: { path: string; remove(): void }
  beforeAll(() => {
    pins = tempBpffsDir()
  })
  afterAll(() => pins?.remove())

  it('opens an object and lists programs and maps with types before load', () => {
    using obj = BpfObject.open(testObject('loader_maps'))
    const progs = obj.programSpecs()
    expect(progs.map((p) => p.name).sort()).toEqual(['emit_event', 'exercise', 'rewrite'])
    expect(progs.every((p) => p.type === 'sched_cls' && p.section === 'tc')).toBe(true)
    const maps = Object.fromEntries(obj.mapSpecs().map((m) => [m.name, m]))
    expect(maps.hash_map).toMatchObject({
      type: 'hash',
      keySize: 4,
      valueSize: 8,
      maxEntries: 1024,
    })
    expect(maps.percpu_counts?.type).toBe('percpu_array')
    expect(maps.lpm_v4?.type).toBe('lpm_trie')
    expect(maps.outer?.type).toBe('array_of_maps')
    expect(maps.events?.type).toBe('ringbuf')
    expect(obj.globals().map((g) => g.name)).toEqual(
      expect.arrayContaining(['cfg_magic', 'cfg_wide', 'seen_runs']),
    )
    expect(() => obj.maps).toThrow(/not loaded/)
  })

  it('describes map key/value layouts from BTF, to check codecs against the C structs', () => {
    using obj = BpfObject.open(testObject('loader_maps'))
    const lpm = obj.mapLayout('lpm_v4')!
    expect(lpm.key).toMatchObject({ name: 'lpm_v4_key', kind: 'struct', size: 8 })
    expect(lpm.key!.fields!.map((f) => [f.name, f.offset, f.type?.kind, f.type?.size])).toEqual([
      ['prefixlen', 0, 'int', 4],
      ['addr', 4, 'array', 4],
    ])
    expect(lpm.value).toMatchObject({ name: '__u32', kind: 'int', size: 4, signed: false })
    expect(lpmKey(ipv4).size).toBe(lpm.key!.size)
    // only types the program's globals, maps and signatures use are in BTF
    const skb = obj.typeLayout('__sk_buff')!
    expect(skb.size).toBe(192)
    const at = (name: string) => skb.fields!.find((f) => f.name === name)?.offset
    expect([at('len'), at('mark'), at('priority'), at('data'), at('data_end')]).toEqual([
      0, 8, 32, 76, 80,
    ])
    const key = obj.typeLayout('lpm_v4_key')!
    const codec = struct([
      ['prefixlen', u32],
      ['addr', ipv4],
    ] as const)
    expect(codec.size).toBe(key.size)
    expect(obj.typeLayout('no_such_type')).toBeNull()
    expect(() => obj.mapLayout('nope')).toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })

  it('derives codecs from BTF: typedMap reads the LPM trie with compiler offsets', async () => {
    using obj = BpfObject.open(testObject('loader_maps'))
    await obj.load()
    const trie = obj.typedMap('lpm_v4')
    trie.update({ prefixlen: 16, addr: Buffer.from([10, 9, 0, 0]) }, 7)
    expect(trie.lookup({ prefixlen: 32, addr: Buffer.from([10, 9, 1, 2]) })).toBe(7)
    expect(obj.typedMap('hash_map').keyCodec.size).toBe(4)
    const counts = obj.typedMap('percpu_counts')
    expect(counts.valueCodec).toBe(u64)
    expect(() => obj.typedMap('events')).toThrow(/no BTF key\/value types/)
    // the kernel's copy of the BTF answers the same, e.g. for a map opened from a pin
    expect(obj.map('lpm_v4').layout()).toEqual(obj.mapLayout('lpm_v4'))
    using plain = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 })
    expect(plain.layout()).toBeNull()
  })

  it('loads from a Buffer, sets .rodata globals before load and the program sees them', async () => {
    const elf = await readFile(testObject('loader_maps'))
    using obj = BpfObject.open(elf, { name: 'from_buffer' })
    obj.setGlobal('cfg_magic', 0xc0ffee)
    obj.setGlobal('cfg_wide', 0x1122334455667788n)
    obj.setGlobal('verdict_override', 2)
    expect(() => obj.setGlobal('cfg_magic', 2 ** 40)).toThrow(/fits 4 bytes/)
    expect(() => obj.setGlobal('nope', 1)).toThrow(/one of the object's globals/)
    expect(() => obj.setGlobal('cfg_magic', Buffer.alloc(3))).toThrow(/4-byte Buffer/)
    await obj.load()
    expect(() => obj.setGlobal('cfg_magic', 1)).toThrow(BpfError)
    const r = await obj.program('exercise').testRun({ data: ipv4UdpPacket('10.0.0.1', '10.0.0.2') })
    expect(r.retval).toBe(2) // .data verdict_override
    const hash = obj.map('hash_map')
    expect(obj.readGlobal('seen_runs').readUInt32LE()).toBe(1) // .bss, written by the program
    expect(obj.readGlobal('cfg_magic').readUInt32LE()).toBe(0xc0ffee)
    expect(hash.lookup(u32le(0))?.readBigUInt64LE()).toBe(0xc0ffeen)
    expect(hash.lookup(u32le(1))?.readBigUInt64LE()).toBe(0x1122334455667788n)
  })

  it('resizes a map before load, not after', async () => {
    using obj = BpfObject.open(testObject('loader_maps'))
    obj.setMaxEntries('hash_map', 77)
    expect(() => obj.setMaxEntries('nope', 1)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    await obj.load()
    expect(obj.map('hash_map').info.maxEntries).toBe(77)
    expect(() => obj.setMaxEntries('hash_map', 5)).toThrow(/after load/)
  })

  it('rejects a broken program with a VerifierError carrying the whole log', async () => {
    using obj = BpfObject.open(testObject('loader_broken'))
    const err = await obj.load().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(VerifierError)
    const v = err as VerifierError
    expect(v.program).toBe('unchecked_read')
    expect(v.code).toBe('VERIFIER_REJECTED')
    expect(v.log.length).toBeGreaterThan(2)
    expect(v.log.join('\n')).toMatch(/invalid access to packet|R\d+ .*pkt/)
    expect(v.message).toMatch(/unchecked_read/)
    expect(v.stack).toMatch(/object\.test\.ts/) // the caller's stack survives the worker
    await expect(obj.load()).rejects.toThrow(/already/)
  })

  it('a verifier log larger than logSize is ENOSPC with a hint, not a rejection', async () => {
    using obj = BpfObject.open(testObject('loader_maps'))
    const err = (await obj
      .load({ logLevel: 2, logSize: 1024 })
      .catch((e: unknown) => e)) as BpfError
    expect(err).toBeInstanceOf(BpfError)
    expect(err).not.toBeInstanceOf(VerifierError)
    expect(err.code).toBe('ENOSPC')
    expect(err.message).toMatch(/exceeded logSize.*larger logSize/)
  })

  it('keeps verifier logs of accepted programs when asked (logLevel 1)', async () => {
    using obj = BpfObject.open(testObject('count_packets'))
    await obj.load({ logLevel: 1 })
    expect(obj.verifierLogs.count_packets?.some((l) => /processed \d+ insns/.test(l))).toBe(true)
  })

  it('pins LIBBPF_PIN_BY_NAME maps under pinRoot and reuses a compatible pin', async () => {
    const root = `${pins.path}/reuse`
    {
      using a = BpfObject.open(testObject('loader_pin'), { pinRoot: root })
      await a.load()
      a.map('pinned_cfg').update(u32le(1), u32le(42))
      expect(existsSync(`${root}/pinned_cfg`)).toBe(true)
    }
    using b = BpfObject.open(testObject('loader_pin'), { pinRoot: root })
    await b.load()
    expect(b.map('pinned_cfg').lookup(u32le(1))?.readUInt32LE()).toBe(42)
    using pinned = openPinnedMap(`${root}/pinned_cfg`)
    expect(pinned.info.id).toBe(b.map('pinned_cfg').info.id)
  })

  it('pins one map at an explicit path with setPinPath', async () => {
    const path = `${pins.path}/explicit_hash`
    {
      using a = BpfObject.open(testObject('loader_maps'))
      a.setPinPath('hash_map', path)
      expect(() => a.setPinPath('hash_map', 'relative')).toThrow(/absolute path/)
      await a.load()
      a.map('hash_map').update(u32le(9), Buffer.alloc(8, 9))
    }
    using pinned = openPinnedMap(path)
    expect(pinned.lookup(u32le(9))).toEqual(Buffer.alloc(8, 9))
    pinned.unpin()
  })

  it('refuses an incompatible pin, naming the map and the mismatch', async () => {
    const root = `${pins.path}/mismatch`
    {
      using a = BpfObject.open(testObject('loader_pin'), { pinRoot: root })
      await a.load()
    }
    using b = BpfObject.open(testObject('loader_pin_mismatch'), { pinRoot: root })
    const err = (await b.load().catch((e: unknown) => e)) as BpfError
    expect(err).toBeInstanceOf(BpfError)
    expect(err.code).toBe('PIN_MISMATCH')
    expect(err.message).toMatch(/pinned_cfg/)
    expect(err.message).toMatch(/max_entries pinned 16 != object 32/)
  })

  it('says when pinRoot is not on bpffs', () => {
    expect(() => BpfObject.open(testObject('loader_maps'), { pinRoot: '/tmp/not-bpffs' })).toThrow(
      /not on bpffs.*mount -t bpf/,
    )
  })

  it('gives clear errors for a missing file and closed handles', async () => {
    expect(() => BpfObject.open('/nonexistent/x.o')).toThrow(/does not exist/)
    const obj = BpfObject.open(testObject('count_packets'))
    await obj.load()
    const map = obj.map('counts')
    const prog = obj.program('count_packets')
    obj.close()
    expect(() => map.lookup(u32le(0))).toThrow(/map 'counts' is closed/)
    expect(() => prog.fd).toThrow(/program 'count_packets' is closed/)
    expect(() => obj.program('count_packets')).toThrow(/closed/)
    await expect(prog.testRun({ data: Buffer.alloc(64) })).rejects.toMatchObject({ code: 'CLOSED' })
    obj.close() // twice is fine
  })
})
