/**
 * The one check of every C struct mirror in the repository against the compiled objects' BTF:
 * datapath's map layouts, the event record of @membrane/types and @membrane/bandwidth's throttle
 * map. Every named struct codec registers itself when declared (`namedStructs()`), so a codec
 * added anywhere is checked here; each package also lists its codecs, and a codec missing from
 * its package's list fails the first test. The other way round, a struct that a map of the
 * objects uses as key or value without a codec fails the last.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { THROTTLE_STRUCT_CODECS } from '@membrane/bandwidth'
import { requireKernel } from '@membrane/test-utils'
import { EVENT_STRUCT_CODECS, namedStructs, type StructCodec } from '@membrane/types'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STRUCT_CODECS } from '../src'
import {
  type BtfType,
  buildObjects,
  objectPath,
  REPO_ROOT,
  readBtf,
  resolveType,
  structLayout,
} from './_btf'

/** Every package's list of struct codecs. */
const LISTED: ReadonlyArray<StructCodec<unknown>> = [
  ...STRUCT_CODECS,
  ...EVENT_STRUCT_CODECS,
  ...THROTTLE_STRUCT_CODECS,
] as ReadonlyArray<StructCodec<unknown>>

/**
 * Structs no program keeps in a map (ring-buffer records): compiled into a probe object whose
 * only purpose is their BTF, from the header that declares them.
 */
const PROBED: Record<string, string> = { mb_event: 'lib/events.h' }

const tools = requireKernel(['clang', 'bin:bpftool'])

it('every declared struct codec is in its package list, and every listed one is declared', () => {
  const names = (list: ReadonlyArray<StructCodec<unknown>>) => list.map((c) => c.cName).sort()
  expect(names(namedStructs())).toEqual(names(LISTED))
  expect(new Set(names(LISTED)).size).toBe(LISTED.length)
})

describe.skipIf(!tools.ok)('struct codecs match the compiled objects (BTF)', () => {
  let btfs: Map<number, BtfType>[] = []
  const dir = mkdtempSync(join(tmpdir(), 'mb-btf-probe-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  beforeAll(() => {
    buildObjects()
    btfs = ['endpoint', 'sock', 'bandwidth'].map((o) => readBtf(objectPath(o)))
    const src = Object.entries(PROBED).flatMap(([name, header]) => [
      `#include "${header}"`,
      `struct ${name} mb_btf_probe_${name};`,
    ])
    writeFileSync(join(dir, 'probe.c'), `${src.join('\n')}\n`)
    const bpf = join(REPO_ROOT, 'bpf-src')
    execFileSync('clang-19', [
      ...['-target', 'bpf', '-g', '-O2', '-c'],
      ...['-I', join(bpf, 'build'), '-I', bpf, '-I', join(bpf, 'include')],
      ...['-o', join(dir, 'probe.o'), join(dir, 'probe.c')],
    ])
    btfs.push(readBtf(join(dir, 'probe.o')))
  })

  const find = (name: string) => {
    for (const b of btfs) {
      const s = structLayout(b, name)
      if (s) return s
    }
    return undefined
  }

  for (const codec of LISTED) {
    it(`struct ${codec.cName}: sizeof, and every member's name, offset and size, both ways`, () => {
      const layout = find(codec.cName)
      expect(layout, `struct ${codec.cName} is not in the objects' BTF`).toBeDefined()
      if (!layout) return
      expect({ sizeof: codec.size }).toEqual({ sizeof: layout.size })
      const ts = codec.fields.map((f) => ({
        member: f.cName,
        offset: f.offset,
        size: f.codec.size,
      }))
      const c = [...layout.members].map(([member, m]) => ({ member, ...m }))
      expect(ts).toEqual(c)
    })
  }

  it('every struct a map of the objects is keyed by or holds has a codec', () => {
    const listed = new Set(LISTED.map((c) => c.cName))
    const missing: string[] = []
    let structs = 0
    for (const btf of btfs) {
      const sec = [...btf.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps')
      for (const v of sec?.vars ?? []) {
        const variable = btf.get(v.type_id) as BtfType
        const def = resolveType(btf, variable.type_id as number)
        for (const m of def.members ?? []) {
          if (m.name !== 'key' && m.name !== 'value') continue
          const t = resolveType(btf, resolveType(btf, m.type_id).type_id as number)
          if (t.kind !== 'STRUCT') continue
          structs++
          if (!listed.has(t.name)) missing.push(`${variable.name}.${m.name}: struct ${t.name}`)
        }
      }
    }
    expect(missing).toEqual([])
    expect(structs).toBeGreaterThan(20)
  })
})
