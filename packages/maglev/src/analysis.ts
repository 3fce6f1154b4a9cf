import type { Backend } from './backend'
import { MaglevError, MaglevErrorCode } from './errors'

/** The slots whose owner changed: write `ids[k]` at slot `slots[k]`, in ascending slot order. */
export interface TableDiff {
  slots: Uint32Array
  ids: Uint32Array
}

function sameSize(before: ArrayLike<number>, after: ArrayLike<number>, what: string): void {
  if (before.length !== after.length)
    throw new MaglevError(
      MaglevErrorCode.TABLE_SIZE_MISMATCH,
      `tables of ${before.length} and ${after.length} slots cannot be compared slot by slot (a new table size needs a full rewrite)`,
      { path: what },
    )
}

/**
 * The slots that differ between two tables of the same size, so a datapath rewrites only those.
 * With `before` undefined (nothing written yet) every slot of `after` is returned.
 *
 * @throws MaglevError `TABLE_SIZE_MISMATCH` when the sizes differ.
 * @example
 * const { slots, ids } = diffTables(oldTable, newTable)
 * for (let k = 0; k < slots.length; k++) map.update(slotKey(slots[k]), idValue(ids[k]))
 */
export function diffTables(
  before: ArrayLike<number> | undefined,
  after: ArrayLike<number>,
): TableDiff {
  if (before === undefined) {
    const slots = new Uint32Array(after.length)
    for (let i = 0; i < slots.length; i++) slots[i] = i
    return { slots, ids: Uint32Array.from(after) }
  }
  sameSize(before, after, 'diffTables(before, after)')
  let changed = 0
  for (let i = 0; i < after.length; i++) if (before[i] !== after[i]) changed++
  const slots = new Uint32Array(changed)
  const ids = new Uint32Array(changed)
  for (let i = 0, k = 0; i < after.length; i++) {
    if (before[i] !== after[i]) {
      slots[k] = i
      ids[k] = after[i]!
      k++
    }
  }
  return { slots, ids }
}

/** Write a diff into a table in place (what a datapath does to its map), returning the table. */
export function applyDiff<T extends { [index: number]: number; length: number }>(
  table: T,
  diff: TableDiff,
): T {
  for (let k = 0; k < diff.slots.length; k++) table[diff.slots[k]!] = diff.ids[k]!
  return table
}

/** What {@link analyze} reports about a table. */
export interface TableAnalysis {
  /** M. */
  tableSize: number
  /** Slots per backend id, for every id in the table (and every given backend, 0 if absent). */
  slots: Map<number, number>
  /** Fewest slots any backend has. */
  minSlots: number
  /** Most slots any backend has. */
  maxSlots: number
  /** maxSlots / minSlots (Infinity when a given backend has no slot). */
  imbalance: number
  /** With backends given: each id's ideal share M·w/Σw. */
  expected?: Map<number, number>
  /** With backends given: the largest |slots − ideal| over all backends, as a share of M. */
  maxDeviation?: number
}

/**
 * Slots per backend and how unequal they are. Pass the backends (with weights) to also get each
 * backend's ideal share M·w/Σw and the worst deviation from it.
 *
 * @example analyze(table).imbalance // e.g. 1.008 for 100 equal backends at M = 16381
 */
export function analyze(table: ArrayLike<number>, backends?: readonly Backend[]): TableAnalysis {
  const slots = new Map<number, number>()
  if (backends) for (const b of backends) slots.set(b.id, 0)
  for (let i = 0; i < table.length; i++) {
    const id = table[i]!
    slots.set(id, (slots.get(id) ?? 0) + 1)
  }
  let minSlots = Number.POSITIVE_INFINITY
  let maxSlots = 0
  for (const n of slots.values()) {
    if (n < minSlots) minSlots = n
    if (n > maxSlots) maxSlots = n
  }
  if (slots.size === 0) minSlots = 0
  const result: TableAnalysis = {
    tableSize: table.length,
    slots,
    minSlots,
    maxSlots,
    imbalance: minSlots === 0 ? Number.POSITIVE_INFINITY : maxSlots / minSlots,
  }
  if (backends && backends.length > 0) {
    const total = backends.reduce((s, b) => s + (b.weight ?? 1), 0)
    const expected = new Map<number, number>()
    let maxDeviation = 0
    for (const b of backends) {
      const ideal = (table.length * (b.weight ?? 1)) / total
      expected.set(b.id, ideal)
      const dev = Math.abs((slots.get(b.id) ?? 0) - ideal) / table.length
      if (dev > maxDeviation) maxDeviation = dev
    }
    result.expected = expected
    result.maxDeviation = maxDeviation
  }
  return result
}

/**
 * The share of slots that moved between backends that exist in both tables: of the slots that
 * `before` gives to a surviving backend, the fraction that `after` gives to a different surviving
 * backend. Slots of removed backends (which must move) and slots handed to new backends are not
 * counted as moved. 0 when no backend survives.
 *
 * @throws MaglevError `TABLE_SIZE_MISMATCH` when the sizes differ.
 * @example disruption(tableWith3, tableWithout1) // < 0.01 when M ≥ 100·N
 */
export function disruption(before: ArrayLike<number>, after: ArrayLike<number>): number {
  sameSize(before, after, 'disruption(before, after)')
  const inBefore = new Set<number>()
  const inAfter = new Set<number>()
  for (let i = 0; i < before.length; i++) inBefore.add(before[i]!)
  for (let i = 0; i < after.length; i++) inAfter.add(after[i]!)
  let considered = 0
  let moved = 0
  for (let i = 0; i < before.length; i++) {
    const owner = before[i]!
    if (!inAfter.has(owner)) continue
    considered++
    const next = after[i]!
    if (next !== owner && inBefore.has(next)) moved++
  }
  return considered === 0 ? 0 : moved / considered
}
