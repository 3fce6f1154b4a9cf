/**
 * Array mirrors of hash maps. Where the programs look a small integer key up on every packet
 * or new flow (a backend id, a service id), they read an array slot — an inlined lookup — and
 * fall back to the authoritative hash when the slot is empty or out of range. User space
 * writes through {@link directMirror}: the hash first and the slot second, and on delete the
 * slot is cleared before the hash entry goes, so a slot never holds what the hash does not.
 */
import { u32 as u32Codec } from '@membrane/types'
import type { MapLike } from './loader'

/** A MapLike that writes `hash` and mirrors every write into `direct` (u32 keys). */
export function directMirror(hash: MapLike, direct: MapLike): MapLike {
  const inRange = (kb: Buffer) => kb.length === 4 && kb.readUInt32LE(0) < direct.info.maxEntries
  return {
    info: hash.info,
    lookup: (kb) => hash.lookup(kb),
    keys: () => hash.keys(),
    update(kb, vb, flags) {
      hash.update(kb, vb, flags)
      if (inRange(kb)) direct.update(kb, vb)
    },
    delete(kb) {
      if (inRange(kb)) direct.update(kb, Buffer.alloc(direct.info.valueSize))
      return hash.delete(kb)
    },
  }
}

/**
 * Rewrite the slots of `direct` from `hash` where they differ (after opening pins: a version
 * without the mirror, or a crash between the two writes). Returns the slots written.
 */
export function syncDirectMirror(hash: MapLike, direct: MapLike): number {
  let n = 0
  for (const kb of hash.keys()) {
    if (u32Codec.decode(kb) >= direct.info.maxEntries) continue
    const vb = hash.lookup(kb)
    if (!vb || direct.lookup(kb)?.equals(vb)) continue
    direct.update(kb, vb)
    n++
  }
  return n
}
