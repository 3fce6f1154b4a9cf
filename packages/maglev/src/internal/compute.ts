import { fillTable } from './fill'
import { mod64, murmur3Into } from './murmur3'

/** A backend reduced to what the table needs: the string that is hashed and sorted, id, weight. */
export interface TableEntry {
  key: string
  id: number
  weight: number
}

const hashOut = new Uint32Array(4)
const scratch = new Uint8Array(256)
const encoder = new TextEncoder()

/** Hash `key` (UTF-8; ASCII keys, i.e. all hash strings, go through a reused buffer). */
function hashKey(key: string, murmurSeed: number): void {
  if (key.length <= scratch.length) {
    let i = 0
    for (; i < key.length; i++) {
      const c = key.charCodeAt(i)
      if (c > 0x7f) break
      scratch[i] = c
    }
    if (i === key.length) {
      murmur3Into(scratch, i, murmurSeed, hashOut)
      return
    }
  }
  const bytes = encoder.encode(key)
  murmur3Into(bytes, bytes.length, murmurSeed, hashOut)
}

/** Cilium's per-backend permutation parameters for table size m: [offset, skip]. */
export function offsetAndSkip(key: string, m: number, murmurSeed: number): [number, number] {
  hashKey(key, murmurSeed)
  return [mod64(hashOut[0]!, hashOut[1]!, m), mod64(hashOut[2]!, hashOut[3]!, m - 1) + 1]
}

/** Go's string ordering: byte-wise. For strings of UTF-16 code units < 0xD800 this is `<`. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Build the table for already-validated entries with distinct keys and ids: sort by key, hash,
 * fill, then turn backend indices into ids in place.
 */
export function computeTable(
  entries: readonly TableEntry[],
  m: number,
  murmurSeed: number,
): Uint32Array {
  const l = entries.length
  const order = new Array<number>(l)
  for (let i = 0; i < l; i++) order[i] = i
  order.sort((a, b) => compareKeys(entries[a]!.key, entries[b]!.key))
  const offsets = new Uint32Array(l)
  const skips = new Uint32Array(l)
  const weights = new Uint32Array(l)
  const ids = new Uint32Array(l)
  for (let i = 0; i < l; i++) {
    const e = entries[order[i]!]!
    hashKey(e.key, murmurSeed)
    offsets[i] = mod64(hashOut[0]!, hashOut[1]!, m)
    skips[i] = mod64(hashOut[2]!, hashOut[3]!, m - 1) + 1
    weights[i] = e.weight
    ids[i] = e.id
  }
  const table = new Uint32Array(m)
  fillTable(offsets, skips, weights, table)
  for (let s = 0; s < m; s++) table[s] = ids[table[s]!]!
  return table
}
