import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (tests run from it or from the package). */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const BUILD_DIR = join(REPO_ROOT, 'bpf-src', 'build')

/** Build the BPF objects (incremental) under the shared lock. */
export function buildObjects(): void {
  execFileSync(
    'flock',
    ['/tmp/membrane-bpf.lock', 'node', join(REPO_ROOT, 'tools/bpf-build.mjs'), '--quiet'],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
}

export function objectPath(name: string): string {
  const p = join(BUILD_DIR, `${name}.o`)
  if (!existsSync(p)) buildObjects()
  return p
}

interface BtfMember {
  name: string
  type_id: number
  bits_offset: number
}

export interface BtfType {
  id: number
  kind: string
  name: string
  size?: number
  type_id?: number
  nr_elems?: number
  members?: BtfMember[]
  vars?: { type_id: number; offset: number; size: number }[]
}

/** The BTF types of an object, by id (`bpftool -j btf dump file`). */
export function readBtf(objectFile: string): Map<number, BtfType> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', objectFile], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  })
  const types = (JSON.parse(out) as { types: BtfType[] }).types
  return new Map(types.map((t) => [t.id, t]))
}

/** Follow typedefs/const/volatile to the underlying type. */
export function resolveType(btf: Map<number, BtfType>, id: number): BtfType {
  let t = btf.get(id)
  while (t && ['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(t.kind))
    t = btf.get(t.type_id as number)
  if (!t) throw new Error(`BTF type ${id} missing`)
  return t
}

/** sizeof a BTF type. */
function sizeOf(btf: Map<number, BtfType>, id: number): number {
  const t = resolveType(btf, id)
  if (t.kind === 'ARRAY') {
    const arr = t as BtfType & { type_id: number; nr_elems: number }
    return sizeOf(btf, arr.type_id) * arr.nr_elems
  }
  if (t.kind === 'PTR') return 8
  if (t.size === undefined) throw new Error(`BTF type ${t.kind} ${t.name} has no size`)
  return t.size
}

/** A struct by name with each member's byte offset and size. */
export function structLayout(
  btf: Map<number, BtfType>,
  name: string,
): { size: number; members: Map<string, { offset: number; size: number }> } | undefined {
  for (const t of btf.values()) {
    if (t.kind !== 'STRUCT' || t.name !== name) continue
    const members = new Map<string, { offset: number; size: number }>()
    for (const m of t.members ?? [])
      members.set(m.name, { offset: m.bits_offset / 8, size: sizeOf(btf, m.type_id) })
    return { size: t.size as number, members }
  }
  return undefined
}

const MAP_TYPE_NAMES: Record<number, string> = {
  1: 'hash',
  2: 'array',
  5: 'percpu_hash',
  6: 'percpu_array',
  9: 'lru_hash',
  11: 'lpm_trie',
  27: 'ringbuf',
}

/** The map definitions of an object's `.maps` section, read from BTF. */
export function mapDefinitions(btf: Map<number, BtfType>): Map<
  string,
  {
    type: string
    keySize: number
    valueSize: number
    maxEntries: number
    flags: number
    pinned: boolean
  }
> {
  const out = new Map()
  const sec = [...btf.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps')
  for (const v of sec?.vars ?? []) {
    const variable = btf.get(v.type_id) as BtfType
    const def = resolveType(btf, variable.type_id as number)
    const num = (member: string): number | undefined => {
      const m = def.members?.find((x) => x.name === member)
      if (!m) return undefined
      const ptr = resolveType(btf, m.type_id)
      const arr = resolveType(btf, ptr.type_id as number)
      return arr.nr_elems
    }
    const typeSize = (member: string): number => {
      const m = def.members?.find((x) => x.name === member)
      if (!m) return 0
      const ptr = resolveType(btf, m.type_id)
      return sizeOf(btf, ptr.type_id as number)
    }
    out.set(variable.name, {
      type: MAP_TYPE_NAMES[num('type') ?? -1] ?? `type${num('type')}`,
      keySize: typeSize('key'),
      valueSize: typeSize('value'),
      maxEntries: num('max_entries') ?? 0,
      flags: num('map_flags') ?? 0,
      pinned: num('pinning') === 1,
    })
  }
  return out
}
