import type { MapInfoLike, MapLike } from '../src/internal/loader'

/**
 * An in-memory map with the kernel's semantics for hash/array/LRU (exact keys) and LPM tries
 * (lookup = longest stored prefix covering the key's data; keys start with a u32 prefixlen).
 */
export class FakeMap implements MapLike {
  readonly info: MapInfoLike
  readonly store = new Map<string, Buffer>()
  updates = 0
  deletes = 0

  constructor(
    info: Partial<Omit<MapInfoLike, 'type'>> & {
      type?: string
      keySize: number
      valueSize: number
    },
  ) {
    const type = (info.type ?? 'hash') as MapInfoLike['type']
    this.info = { name: 'fake', maxEntries: 1 << 20, flags: 0, id: 0, ...info, type }
  }

  #check(key: Buffer): void {
    if (key.length !== this.info.keySize)
      throw new Error(`key of ${key.length} bytes, map has ${this.info.keySize}`)
  }

  lookup(key: Buffer): Buffer | undefined {
    this.#check(key)
    if (this.info.type !== 'lpm_trie') return this.store.get(key.toString('hex'))
    const want = key.readUInt32LE(0)
    let best: { len: number; value: Buffer } | undefined
    for (const [hex, value] of this.store) {
      const k = Buffer.from(hex, 'hex')
      const len = k.readUInt32LE(0)
      if (len > want) continue
      if (!prefixEqual(k.subarray(4), key.subarray(4), len)) continue
      if (!best || len > best.len) best = { len, value }
    }
    return best ? Buffer.from(best.value) : undefined
  }

  update(key: Buffer, value: Buffer, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    this.#check(key)
    if (value.length !== this.info.valueSize)
      throw new Error(`value of ${value.length} bytes, map has ${this.info.valueSize}`)
    const hex = key.toString('hex')
    if (flags === 'noexist' && this.store.has(hex)) throw new Error('EEXIST')
    if (flags === 'exist' && !this.store.has(hex)) throw new Error('ENOENT')
    if (!this.store.has(hex) && this.store.size >= this.info.maxEntries) throw new Error('E2BIG')
    this.store.set(hex, Buffer.from(value))
    this.updates++
  }

  delete(key: Buffer): boolean {
    this.#check(key)
    this.deletes++
    return this.store.delete(key.toString('hex'))
  }

  keys(): Buffer[] {
    return [...this.store.keys()].map((h) => Buffer.from(h, 'hex'))
  }
}

function prefixEqual(a: Buffer, b: Buffer, bits: number): boolean {
  const whole = bits >> 3
  if (!a.subarray(0, whole).equals(b.subarray(0, whole))) return false
  const rest = bits & 7
  if (!rest) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return ((a[whole] as number) & mask) === ((b[whole] as number) & mask)
}
