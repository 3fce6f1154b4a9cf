/** Kernel tests of the pin layout: reuse, incompatible pins, loaded map layouts. */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createMap, openPinnedMap } from '@membrane/bpf-loader-napi'
import {
  describeKernel,
  ensureCgroup2,
  findMount,
  run,
  tempBpffsDir,
  tempCgroup,
} from '@membrane/test-utils'
import { afterEach, beforeAll, expect, it } from 'vitest'
import { Datapath, DatapathError, MAP_SPECS } from '../src/index'
import { specMismatches } from '../src/pins'
import { buildObjects } from './_btf'

describeKernel('pins under the pin root', ['root', 'bpf', 'bpffs', 'clang', 'cgroup2'], () => {
  const dirs: { path: string; remove(): void }[] = []
  beforeAll(() => buildObjects())
  afterEach(() => {
    for (const d of dirs.splice(0)) d.remove()
  })

  it('every map the kernel created matches MAP_SPECS, and each one is pinned by name', async () => {
    const pins = tempBpffsDir()
    dirs.push(pins)
    const dp = await Datapath.open({ pinRoot: pins.path })
    try {
      for (const [name, spec] of Object.entries(MAP_SPECS)) {
        if (name.startsWith('mb_sock_revnat')) continue // sock.o's, loaded with socket LB
        expect([name, specMismatches(dp.unsafeMap(name).info, spec)]).toEqual([name, []])
        expect(existsSync(join(pins.path, name))).toBe(true)
      }
    } finally {
      await dp.close()
    }
  })

  it('an incompatible pinned map is an error that changes nothing; the map and its entries stay', async () => {
    const pins = tempBpffsDir()
    dirs.push(pins)
    // An "older version" of mb_ct4 with a 48-byte value, holding one entry.
    const old = createMap({
      type: 'lru_hash',
      keySize: 16,
      valueSize: 48,
      maxEntries: 1024,
      name: 'mb_ct4',
    })
    old.update(Buffer.alloc(16, 1), Buffer.alloc(48, 7))
    old.pin(join(pins.path, 'mb_ct4'))
    old.close()
    const error = await Datapath.open({ pinRoot: pins.path }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DatapathError)
    expect((error as DatapathError).code).toBe('INCOMPATIBLE_PIN')
    expect((error as Error).message).toMatch(
      /mb_ct4 \(valueSize: pinned 48, needed 56; maxEntries: pinned 1024, needed 131072\)/,
    )
    expect((error as Error).message).toMatch(/To migrate/)
    const again = openPinnedMap(join(pins.path, 'mb_ct4'))
    expect(again.info.valueSize).toBe(48)
    expect(again.lookup(Buffer.alloc(16, 1))).toEqual(Buffer.alloc(48, 7))
    again.close()
    // Nothing else was created either.
    expect(existsSync(join(pins.path, 'mb_policy'))).toBe(false)
  })

  it('rejects a pin root outside bpffs or with unsafe characters before touching anything', async () => {
    await expect(Datapath.open({ pinRoot: '/tmp/not-bpffs' })).rejects.toThrowError(/mounted bpffs/)
    await expect(Datapath.open({ pinRoot: '/sys/fs/bpf/../x' })).rejects.toThrowError(/'\.\.'/)
  })

  it('socket LB links are pinned by close({ keepPrograms }) and removed by a later detach', async () => {
    const pins = tempBpffsDir()
    dirs.push(pins)
    const root = ['/sys/fs/cgroup', findMount('cgroup2') ?? '', ensureCgroup2()].find(
      (p) => p && existsSync(join(p, 'cgroup.procs')),
    )
    const cg = tempCgroup(root)
    const attached = async () => {
      // Text output: a header line, then "ID AttachType AttachFlags Name" per program.
      const { stdout } = await run('bpftool', ['cgroup', 'show', cg.path])
      return stdout
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/).pop() ?? '')
        .filter(Boolean)
        .sort()
    }
    try {
      const dp = await Datapath.open({ pinRoot: pins.path })
      await dp.attachSocketLb(cg.path)
      expect(await attached()).toEqual([
        'sock_connect4',
        'sock_connect6',
        'sock_getpeername4',
        'sock_getpeername6',
        'sock_recvmsg4',
        'sock_recvmsg6',
        'sock_sendmsg4',
        'sock_sendmsg6',
      ])
      await dp.close({ keepPrograms: true })
      const linkDirs = readdirSync(join(pins.path, 'links'))
      expect(linkDirs.length).toBe(1)
      expect(readdirSync(join(pins.path, 'links', linkDirs[0] as string)).sort()).toEqual([
        'connect4',
        'connect6',
        'getpeername4',
        'getpeername6',
        'recvmsg4',
        'recvmsg6',
        'sendmsg4',
        'sendmsg6',
      ])
      expect((await attached()).length).toBe(8) // still attached with no process holding them
      const again = await Datapath.open({ pinRoot: pins.path })
      expect(await again.detachSocketLb(cg.path)).toBe(true)
      expect(await attached()).toEqual([])
      await again.close()
    } finally {
      cg.remove()
    }
  })
})
