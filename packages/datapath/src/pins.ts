import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join, normalize } from 'node:path'
import { DatapathError, DatapathErrorCode, describeValue } from './errors'
import type { MapInfoLike, MapLike } from './internal/loader'
import { MAGLEV_TABLE_SIZE } from './layouts'

/** Where maps are pinned unless told otherwise. */
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/membrane'

/** What a map must look like (as the kernel reports it). */
export interface MapSpec {
  type: string
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
}

const NO_PREALLOC = 1

/**
 * Every pinned map of the datapath objects and the layout this version needs. A test checks
 * this table against the maps of the compiled objects.
 */
export const MAP_SPECS: Readonly<Record<string, MapSpec>> = {
  mb_config: { type: 'array', keySize: 4, valueSize: 64, maxEntries: 1, flags: 0 },
  mb_endpoints: { type: 'hash', keySize: 4, valueSize: 48, maxEntries: 4096, flags: 0 },
  mb_ep_direct: { type: 'array', keySize: 4, valueSize: 48, maxEntries: 65536, flags: 0 },
  mb_lxc4: { type: 'hash', keySize: 4, valueSize: 48, maxEntries: 4096, flags: 0 },
  mb_metrics: { type: 'percpu_array', keySize: 4, valueSize: 16, maxEntries: 1024, flags: 0 },
  mb_ct4: { type: 'lru_hash', keySize: 16, valueSize: 56, maxEntries: 131072, flags: 0 },
  mb_ct6: { type: 'lru_hash', keySize: 40, valueSize: 56, maxEntries: 131072, flags: 0 },
  mb_lxc6: { type: 'hash', keySize: 16, valueSize: 48, maxEntries: 4096, flags: 0 },
  mb_ipcache: {
    type: 'lpm_trie',
    keySize: 24,
    valueSize: 12,
    maxEntries: 262144,
    flags: NO_PREALLOC,
  },
  mb_policy: {
    type: 'lpm_trie',
    keySize: 20,
    valueSize: 24,
    maxEntries: 262144,
    flags: NO_PREALLOC,
  },
  mb_policy_fast: {
    type: 'hash',
    keySize: 12,
    valueSize: 24,
    maxEntries: 262144,
    flags: NO_PREALLOC,
  },
  mb_policy_any: { type: 'array', keySize: 4, valueSize: 8, maxEntries: 131072, flags: 0 },
  mb_auth: { type: 'hash', keySize: 12, valueSize: 8, maxEntries: 16384, flags: NO_PREALLOC },
  mb_lb4_services: { type: 'hash', keySize: 8, valueSize: 8, maxEntries: 65536, flags: 0 },
  mb_lb4_backends: { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 65536, flags: 0 },
  mb_lb4_be_direct: { type: 'array', keySize: 4, valueSize: 8, maxEntries: 65536, flags: 0 },
  mb_lb6_services: { type: 'hash', keySize: 24, valueSize: 8, maxEntries: 65536, flags: 0 },
  mb_lb6_backends: { type: 'hash', keySize: 4, valueSize: 24, maxEntries: 65536, flags: 0 },
  mb_lb6_reverse_nat: { type: 'hash', keySize: 4, valueSize: 24, maxEntries: 65536, flags: 0 },
  mb_lb_slots: { type: 'hash', keySize: 4, valueSize: 4, maxEntries: 262144, flags: NO_PREALLOC },
  mb_lb_maglev_direct: {
    type: 'array',
    keySize: 4,
    valueSize: MAGLEV_TABLE_SIZE * 4,
    maxEntries: 4096, // the default of Datapath.open({ maglevDirectTables })
    flags: 0,
  },
  mb_lb_maglev: {
    type: 'hash',
    keySize: 4,
    valueSize: MAGLEV_TABLE_SIZE * 4,
    maxEntries: 65536,
    flags: NO_PREALLOC,
  },
  mb_frag4: { type: 'lru_hash', keySize: 12, valueSize: 8, maxEntries: 8192, flags: 0 },
  mb_proxy4: { type: 'lru_hash', keySize: 8, valueSize: 20, maxEntries: 65536, flags: 0 },
  mb_proxy6: { type: 'lru_hash', keySize: 20, valueSize: 32, maxEntries: 65536, flags: 0 },
  mb_sock_revnat4: { type: 'lru_hash', keySize: 16, valueSize: 8, maxEntries: 65536, flags: 0 },
  mb_sock_revnat6: { type: 'lru_hash', keySize: 32, valueSize: 24, maxEntries: 65536, flags: 0 },
}

const SAFE_PATH = /^[A-Za-z0-9._/-]+$/
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/

/** Validate a name that becomes one path component of a pin. */
export function validatePinName(name: unknown, path = 'name'): string {
  if (typeof name !== 'string' || !SAFE_NAME.test(name) || name === '.' || name === '..')
    throw new DatapathError(
      DatapathErrorCode.INVALID_NAME,
      `expected a pin name of letters, digits, '_', '.', '-' (1..63, not starting with '.' or '-'), got ${describeValue(name)}`,
      { path },
    )
  return name
}

/** The bpffs mount points of this mount namespace. */
function bpffsMounts(): string[] {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' '))
      .filter((f) => f[f.indexOf('-') + 1] === 'bpf')
      .map((f) => (f[4] ?? '').replace(/\\040/g, ' '))
  } catch {
    return []
  }
}

/**
 * Validate a pin root: absolute, normalized, only safe characters, no `..`, and inside a
 * mounted bpffs. Returns the normalized path.
 */
export function validatePinRoot(root: unknown, mounts: readonly string[] = bpffsMounts()): string {
  const fail = (why: string) =>
    new DatapathError(DatapathErrorCode.INVALID_NAME, `${why}, got ${describeValue(root)}`, {
      path: 'pinRoot',
    })
  if (typeof root !== 'string' || root.length === 0 || root.length > 200)
    throw fail('expected a path')
  if (!isAbsolute(root)) throw fail('expected an absolute path')
  if (!SAFE_PATH.test(root)) throw fail("expected only letters, digits, '.', '_', '-' and '/'")
  if (root.split('/').includes('..')) throw fail("expected no '..' component")
  const norm = normalize(root).replace(/\/+$/, '') || '/'
  const inside = mounts.some((m) => norm === m || norm.startsWith(m.endsWith('/') ? m : `${m}/`))
  if (!inside)
    throw fail(
      `expected a directory on a mounted bpffs (mounted: ${mounts.join(', ') || 'none'}; mount one with \`mount -t bpf bpf /sys/fs/bpf\`)`,
    )
  return norm
}

/** Differences between a map's actual layout and the spec, as `field: have X, need Y`. */
export function specMismatches(info: MapInfoLike, spec: MapSpec): string[] {
  const out: string[] = []
  for (const field of ['type', 'keySize', 'valueSize', 'maxEntries', 'flags'] as const) {
    if (info[field] !== spec[field])
      out.push(`${field}: pinned ${info[field]}, needed ${spec[field]}`)
  }
  return out
}

/**
 * Before loading: every map already pinned under `root` must match this version's layout.
 * An incompatible pin is an error naming the differences and the way to migrate; nothing is
 * emptied or replaced.
 */
export function checkPinnedMaps(
  root: string,
  open: (path: string) => MapLike,
  overrides: Readonly<Record<string, Partial<MapSpec>>> = {},
): void {
  const problems: string[] = []
  for (const [name, spec] of Object.entries(MAP_SPECS)) {
    const path = join(root, name)
    if (!existsSync(path)) continue
    const m = open(path)
    try {
      const diff = specMismatches(m.info, { ...spec, ...overrides[name] })
      if (diff.length) problems.push(`${path} (${diff.join('; ')})`)
    } finally {
      m.close?.()
    }
  }
  if (problems.length)
    throw new DatapathError(
      DatapathErrorCode.INCOMPATIBLE_PIN,
      `pinned map(s) incompatible with this datapath version: ${problems.join(', ')}. Nothing was changed. ` +
        'To migrate: keep the running programs as they are, move each listed pin aside ' +
        '(e.g. `mv <pin> <pin>.old`; programs attached now keep using the old map), open the ' +
        'Datapath again (it creates the new maps), let the agent re-apply its state (endpoints, ' +
        'policy, ipcache, services are reconciled by diff), re-attach the endpoints, then remove ' +
        'the .old pins. Conntrack entries of the old map are not carried over.',
      { path: 'pinRoot' },
    )
}
