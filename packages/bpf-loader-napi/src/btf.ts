import {
  array,
  bytes,
  type Codec,
  i8,
  i16,
  i32,
  i64,
  structAt,
  u8,
  u16,
  u32,
  u64,
} from '@membrane/types'
import { invalid } from './errors'

/** A C type as an object's BTF describes it (sizes and offsets in bytes). */
export interface TypeLayout {
  /** The type's name (a typedef keeps its own name), '' for anonymous types. */
  name?: string
  kind: 'int' | 'array' | 'struct' | 'union' | 'enum' | 'ptr' | 'float' | 'void' | 'other'
  size: number
  /** int: signedness, bool encoding and width. */
  signed?: boolean
  bool?: boolean
  bits?: number
  /** array: element count and type. */
  len?: number
  elem?: TypeLayout
  /** struct/union: members in declaration order. */
  fields?: Array<{
    name: string
    offset: number
    bitOffset?: number
    bitSize?: number
    type?: TypeLayout
  }>
}

const INTS: Record<number, [Codec<number> | Codec<bigint>, Codec<number> | Codec<bigint>]> = {
  1: [u8, i8],
  2: [u16, i16],
  4: [u32, i32],
  8: [u64, i64],
}

/**
 * A codec built from a BTF layout: integers by width and sign (64-bit as bigint), `char`/`__u8`
 * arrays as Buffers, other arrays as arrays, structs as objects with the compiler's offsets,
 * unions and floats as raw bytes, pointers as u64. Bitfields are refused (name the field).
 *
 * @example
 * const { key, value } = obj.mapLayout('ipcache')!
 * const codec = codecFromLayout(value!)
 */
export function codecFromLayout(t: TypeLayout, path = t.name || t.kind): Codec<unknown> {
  switch (t.kind) {
    case 'int':
    case 'enum': {
      const pair = INTS[t.size]
      if (!pair) throw invalid(`${path}`, 'an integer of 1, 2, 4 or 8 bytes', t.size)
      return pair[t.signed ? 1 : 0] as Codec<unknown>
    }
    case 'ptr':
      return u64 as Codec<unknown>
    case 'array': {
      const elem = t.elem
      if (!elem || t.len === undefined) throw invalid(`${path}`, 'an array with an element type', t)
      if (elem.kind === 'int' && elem.size === 1) return bytes(t.len) as Codec<unknown>
      return array(codecFromLayout(elem, `${path}[]`), t.len) as Codec<unknown>
    }
    case 'struct': {
      const layout = (t.fields ?? []).map((f) => {
        if (f.bitSize !== undefined)
          throw invalid(
            `${path}.${f.name}`,
            'a whole-byte field (bitfields are not supported)',
            f.bitSize,
          )
        if (!f.type) throw invalid(`${path}.${f.name}`, 'a field type (nested too deep)', f)
        return {
          name: f.name,
          offset: f.offset,
          codec: codecFromLayout(f.type, `${path}.${f.name}`),
        }
      })
      const align = Math.max(1, ...layout.map((f) => f.codec.align))
      return structAt(layout, t.size, align) as Codec<unknown>
    }
    case 'union':
    case 'float':
    case 'other':
      return bytes(t.size) as Codec<unknown>
    case 'void':
      throw invalid(`${path}`, 'a sized type', 'void')
  }
}
