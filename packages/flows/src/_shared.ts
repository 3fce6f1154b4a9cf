/**
 * Shared, immutable parts of flows (endpoint records, TCP flag sets) carry a slot where the
 * encoder keeps their protobuf bytes, so a part shared by many flows is encoded once. (A symbol
 * property read is a fast property access; a WeakMap keyed by frozen objects is not.)
 */
const ENCODED: unique symbol = Symbol('membrane.flows.encoded')

/** The slot the encoder fills. */
export interface EncodedSlot {
  bytes?: Uint8Array
}

/** Freeze `obj` as a shared part with an (initially empty) encoded-bytes slot. */
export function shared<T extends object>(obj: T): T {
  Object.defineProperty(obj, ENCODED, { value: {} satisfies EncodedSlot, enumerable: false })
  return Object.freeze(obj)
}

/** The slot of a shared part, or undefined for an ordinary object. */
export function slotOf(obj: object): EncodedSlot | undefined {
  return (obj as { [ENCODED]?: EncodedSlot })[ENCODED]
}
