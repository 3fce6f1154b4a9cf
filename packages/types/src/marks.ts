/**
 * skb->mark layout shared by the datapath and the L7 proxy (Cilium's magic mark layout): the
 * magic in bits 8..11, the source identity in the upper 16 bits. bpf-src carries the same
 * numbers (`MB_MARK_MAGIC_*` in lib/common.h).
 */

/** Mask of the magic bits of a mark. C: `MB_MARK_MAGIC_MASK`. */
export const MARK_MAGIC_MASK = 0x0f00

/**
 * The magic of the L7 proxy's upstream sockets (SO_MARK): the destination's ingress path takes
 * the source identity from the mark and does not redirect the flow to the proxy again.
 * C: `MB_MARK_MAGIC_PROXY`.
 */
export const MARK_MAGIC_PROXY = 0x0a00

/** Error from {@link proxyMark}: the identity does not fit the mark's 16 bits. */
export class MarkError extends RangeError {
  /** Always `INVALID_IDENTITY`. */
  readonly code = 'INVALID_IDENTITY' as const
  readonly input: unknown
  constructor(input: unknown) {
    super(`expected an identity 0..65535 to fit the mark, got ${String(input)}`)
    this.name = 'MarkError'
    this.input = input
  }
}

/**
 * The SO_MARK of a proxy upstream socket for a client of `identity`: `identity << 16 | 0x0A00`.
 *
 * @throws MarkError when `identity` is not an integer 0..65535.
 * @example proxyMark(12345) // 0x30390a00
 */
export function proxyMark(identity: number): number {
  if (!Number.isInteger(identity) || identity < 0 || identity > 0xffff)
    throw new MarkError(identity)
  return ((identity << 16) | MARK_MAGIC_PROXY) >>> 0
}

/** True when `mark` carries the proxy magic. */
export function isProxyMark(mark: number): boolean {
  return (mark & MARK_MAGIC_MASK) === MARK_MAGIC_PROXY
}

/** The identity in the upper 16 bits of a mark. C: `MB_MARK_IDENTITY(m)`. */
export function markIdentity(mark: number): number {
  return mark >>> 16
}
