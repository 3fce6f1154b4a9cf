import { type Backend, normalizeBackend } from './backend'
import { describe, MaglevError, MaglevErrorCode } from './errors'
import { computeTable, offsetAndSkip } from './internal/compute'
import { DEFAULT_SEED, decodeSeed } from './seed'

/** The table sizes Cilium accepts for `--bpf-lb-maglev-table-size` (all prime). */
export const TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const

/** One of {@link TABLE_SIZES}. */
export type TableSize = (typeof TABLE_SIZES)[number]

/** Cilium's default table size M. */
export const DEFAULT_TABLE_SIZE: TableSize = 16381

/** Options of {@link buildLookupTable}. */
export interface LookupTableOptions {
  /** Table size M, one of {@link TABLE_SIZES}. Default 16381. Choose M > 100·N for < 1% imbalance. */
  tableSize?: number
  /** Cluster-wide seed: base64 of 12 bytes (bytes 0..3 seed MurmurHash3). Default 'JLfvgnHc2kaSUFaI'. */
  seed?: string
}

/** Validate a table size; returns it typed. */
function checkTableSize(tableSize: unknown, path = 'tableSize'): TableSize {
  if (!(TABLE_SIZES as readonly unknown[]).includes(tableSize))
    throw new MaglevError(
      MaglevErrorCode.INVALID_TABLE_SIZE,
      `expected one of ${TABLE_SIZES.join(', ')}, got ${describe(tableSize)}`,
      { path },
    )
  return tableSize as TableSize
}

/**
 * Build the Maglev lookup table Cilium builds for these backends, table size and seed:
 * `table[i]` is the `id` of the backend that owns slot i. Input order does not matter (backends
 * are sorted by their hash string, as on every Cilium node). Memory beyond the returned table is
 * O(N); Cilium's N×M permutation matrix is never built.
 *
 * @throws MaglevError on an empty list, a bad table size or seed, a malformed backend, a weight
 *   outside 1..65535, duplicate ids or two backends with the same address/port/protocol/scope.
 * @example
 * const table = buildLookupTable(
 *   [{ id: 1, address: '10.0.0.1', port: 80 }, { id: 2, address: '10.0.0.2', port: 80, weight: 3 }],
 *   { tableSize: 251 },
 * )
 * table.length // 251; every entry is 1 or 2
 */
export function buildLookupTable(
  backends: readonly Backend[],
  options: LookupTableOptions = {},
): Uint32Array {
  const m = checkTableSize(options.tableSize ?? DEFAULT_TABLE_SIZE)
  const { murmur } = decodeSeed(options.seed ?? DEFAULT_SEED)
  if (!Array.isArray(backends) || backends.length === 0)
    throw new MaglevError(
      MaglevErrorCode.NO_BACKENDS,
      `expected a non-empty array of backends, got ${describe(backends)}`,
      { path: 'backends' },
    )
  const entries = new Array<{ key: string; id: number; weight: number }>(backends.length)
  const byId = new Map<number, number>()
  const byKey = new Map<string, number>()
  for (let i = 0; i < backends.length; i++) {
    const path = `backends[${i}]`
    const b = normalizeBackend(backends[i]!, path)
    const sameId = byId.get(b.id)
    if (sameId !== undefined)
      throw new MaglevError(
        MaglevErrorCode.DUPLICATE_ID,
        `id ${b.id} is also the id of backends[${sameId}]`,
        {
          path: `${path}.id`,
        },
      )
    const sameKey = byKey.get(b.hashString)
    if (sameKey !== undefined)
      throw new MaglevError(
        MaglevErrorCode.DUPLICATE_BACKEND,
        `${b.hashString} is the same backend as backends[${sameKey}] (address, port, protocol and scope must differ)`,
        { path },
      )
    byId.set(b.id, i)
    byKey.set(b.hashString, i)
    entries[i] = { key: b.hashString, id: b.id, weight: b.weight }
  }
  return computeTable(entries, m, murmur)
}

/**
 * A backend's Maglev permutation parameters as Cilium computes them: with (h1, h2) the
 * MurmurHash3 x64_128 of its hash string, offset = h1 mod M and skip = (h2 mod (M − 1)) + 1.
 * Its preference list is (offset + j·skip) mod M for j = 0, 1, ...
 */
export function permutationOf(
  backend: Backend,
  options: LookupTableOptions = {},
): { hashString: string; offset: number; skip: number } {
  const m = checkTableSize(options.tableSize ?? DEFAULT_TABLE_SIZE)
  const { murmur } = decodeSeed(options.seed ?? DEFAULT_SEED)
  const { hashString } = normalizeBackend(backend)
  const [offset, skip] = offsetAndSkip(hashString, m, murmur)
  return { hashString, offset, skip }
}
