/**
 * What a node name may be wherever it becomes part of a key (etcd keys of the identity
 * allocator, the shared ipcache and the node registry): refused, never rewritten, so two names
 * are always two keys.
 */
export const NODE_NAME_RULE = '1..253 characters of [A-Za-z0-9._-], starting with a letter or digit'

/**
 * True when `value` is a node name by {@link NODE_NAME_RULE}.
 * @example isNodeName('node-1') // true; isNodeName('node/1') // false
 */
export function isNodeName(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(value)
}
