import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireKernel } from '@membrane/test-utils'
import { beforeAll, describe, expect, it } from 'vitest'
import { MAP_SPECS, METRICS_ENTRIES, VXLAN_OVERHEAD } from '../src'
import * as C from '../src/constants'
import { type BtfType, buildObjects, mapDefinitions, objectPath, REPO_ROOT, readBtf } from './_btf'

const tools = requireKernel(['clang', 'bin:bpftool'])

describe.skipIf(!tools.ok)('map definitions match the built objects (BTF)', () => {
  let btfs: Map<number, BtfType>[] = []
  beforeAll(() => {
    buildObjects()
    btfs = [readBtf(objectPath('endpoint')), readBtf(objectPath('sock'))]
  })

  it('MAP_SPECS equal the map definitions of endpoint.o and sock.o', () => {
    const defs = new Map([
      ...mapDefinitions(btfs[0] as Map<number, BtfType>),
      ...mapDefinitions(btfs[1] as Map<number, BtfType>),
    ])
    for (const [name, spec] of Object.entries(MAP_SPECS)) {
      const def = defs.get(name)
      expect(def, `map ${name} not defined in the objects`).toBeDefined()
      expect({ name, ...spec, pinned: true }).toEqual({ name, ...def })
    }
    // Every pinned map of the objects (except @membrane/bandwidth's, lib/edt.h) is listed.
    const bandwidthMaps = new Set(['mb_throttle', 'mb_throttle_on'])
    const pinned = [...defs].filter(([, d]) => d.pinned).map(([n]) => n)
    expect(pinned.filter((n) => !bandwidthMaps.has(n) && !(n in MAP_SPECS))).toEqual([])
  })
})

describe('TS numbers derived from the headers', () => {
  const lib = join(REPO_ROOT, 'bpf-src', 'lib')
  const defines = new Map<string, number>()
  for (const f of readdirSync(lib).filter((f) => f.endsWith('.h'))) {
    for (const line of readFileSync(join(lib, f), 'utf8').split('\n')) {
      const m =
        /^#define\s+([A-Z0-9_]+)\s+\(?\s*(-?(?:0x[0-9a-fA-F]+|\d+))\s*(?:<<\s*(\d+))?\s*\)?/.exec(
          line,
        )
      if (!m) continue
      const base = Number(m[2])
      defines.set(m[1] as string, m[3] ? base << Number(m[3]) : base)
    }
  }

  const families: Array<[string, Record<string, number>]> = [
    ['MB_CFG_', C.ConfigFlag],
    ['MB_EP_F_', C.EndpointFlag],
    ['MB_CT_TUPLE_F_', C.CtTupleFlag],
    ['MB_CT_F_', C.CtFlag],
    ['MB_POLICY_F_', C.PolicyEntryFlag],
    ['MB_LB_ALG_', C.LbAlgorithm],
    ['MB_SVC_F_', C.ServiceFlag],
    ['MB_BACKEND_F_', C.BackendFlag],
    ['MB_DIR_', C.TrafficDirection],
  ]
  for (const [prefix, obj] of families) {
    it(`${prefix}* equal the TS constants`, () => {
      for (const [name, value] of Object.entries(obj))
        expect([name, defines.get(`${prefix}${name}`)]).toEqual([name, value])
    })
  }

  it('policy directions and Maglev table size', () => {
    expect(defines.get('MB_POLICY_INGRESS')).toBe(C.PolicyDirection.INGRESS)
    expect(defines.get('MB_POLICY_EGRESS')).toBe(C.PolicyDirection.EGRESS)
    expect(defines.get('MB_MAGLEV_TABLE_SIZE')).toBe(
      MAP_SPECS.mb_lb_maglev?.valueSize ? MAP_SPECS.mb_lb_maglev.valueSize / 4 : 0,
    )
    expect(defines.get('MB_POLICY_STATIC_PREFIX')).toBe(72)
    expect(defines.get('MB_METRICS_ENTRIES')).toBe(METRICS_ENTRIES)
    expect(defines.get('MB_IPCACHE_STATIC_PREFIX')).toBe(32)
    expect(defines.get('MB_OVERLAY_OVERHEAD')).toBe(VXLAN_OVERHEAD)
  })
})
