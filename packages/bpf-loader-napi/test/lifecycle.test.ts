import { readdirSync } from 'node:fs'
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { expect, it } from 'vitest'
import { BpfObject, createMap, openPinnedMap, PerfBuffer, RingBuffer } from '../src/index'
import { testObject } from './_helpers'

const fdCount = () => readdirSync('/proc/self/fd').length

describeKernel('lifecycle: close() releases every descriptor', ['root', 'bpf', 'bpffs'], () => {
  it('an unref()ed ring buffer does not keep the process alive', async () => {
    const { execFileSync } = await import('node:child_process')
    const src = new URL('../src/index.ts', import.meta.url).href
    const obj = JSON.stringify(testObject('loader_maps'))
    const code = `const m = await import(${JSON.stringify(src)});
      const o = m.BpfObject.open(${obj}); await o.load();
      new m.RingBuffer(o.map('events'), () => {}).unref(); console.log('done')`
    const out = execFileSync(
      process.execPath,
      ['--conditions=@membrane/source', '--import', 'tsx', '-e', code],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    )
    expect(out.trim()).toBe('done')
  })

  it('objects, maps, pins, ring and perf buffers leave no fd behind', async () => {
    const pins = tempBpffsDir()
    try {
      // warm up lazily opened descriptors (addon, libbpf feature probes)
      {
        using o = BpfObject.open(testObject('count_packets'))
        await o.load()
      }
      const before = fdCount()
      for (let i = 0; i < 20; i++) {
        const obj = BpfObject.open(testObject('loader_maps'))
        await obj.load()
        const rb = new RingBuffer(obj.map('events'), () => {})
        const m = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 })
        m.pin(`${pins.path}/m${i}`)
        const again = openPinnedMap(`${pins.path}/m${i}`)
        again.unpin()
        again.close()
        m.close()
        rb.close()
        obj.close()
        const perfObj = BpfObject.open(testObject('loader_perf'))
        await perfObj.load()
        const pb = new PerfBuffer(perfObj.map('perf_events'))
        pb.close()
        perfObj.close()
      }
      expect(fdCount()).toBe(before)
    } finally {
      pins.remove()
    }
  })
})

describeKernel('lifecycle: a map outlives a dropped object', ['root', 'bpf'], () => {
  it('keeps the owning object (and the fd) alive while one of its maps is reachable', async () => {
    const { execFileSync } = await import('node:child_process')
    const src = JSON.stringify(new URL('../src/index.ts', import.meta.url).href)
    const obj = JSON.stringify(testObject('count_packets'))
    // In a child with --expose-gc: drop the object, collect, reuse descriptor numbers, then ask
    // the kernel which map the handle's fd points at.
    const addonSrc = JSON.stringify(new URL('../src/_addon.ts', import.meta.url).href)
    const code = `const m = await import(${src}); const a = await import(${addonSrc});
      const make = async () => { const o = m.BpfObject.open(${obj}); await o.load(); return o.map('counts') };
      const map = await make(); const id = map.info.id
      for (let i = 0; i < 10; i++) { gc(); await new Promise((r) => setTimeout(r, 10));
        m.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 }) }
      console.log(a.loadAddon().mapInfo(map.fd).id === id ? 'same' : 'other')`
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', '--conditions=@membrane/source', '--import', 'tsx', '-e', code],
      { encoding: 'utf8', timeout: 20_000 },
    )
    expect(out.trim()).toBe('same')
  })
})
