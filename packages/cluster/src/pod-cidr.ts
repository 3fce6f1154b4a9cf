import { formatIpv4, type Prefix, parsePrefixOrUndefined } from '@membrane/types'
import { ClusterError, ClusterErrorCode } from './errors'

/** A cluster pool: the IPv4 CIDR node pod CIDRs are cut from, and the length of each. */
export interface ClusterPool {
  /** The pool, e.g. `10.0.0.0/16`. */
  readonly cidr: string
  /** Length of each node's pod CIDR, e.g. 24. */
  readonly maskSize: number
  /** How many pod CIDRs the pool holds. */
  readonly size: number
}

interface ParsedPool extends ClusterPool {
  readonly network: number
  readonly length: number
}

const invalid = (what: string, input: unknown, why: string) =>
  new ClusterError(ClusterErrorCode.INVALID_OPTION, `${what} ${JSON.stringify(input)}: ${why}`, {
    input,
  })

/**
 * Check a cluster pool (an IPv4 network address with a length of 8..30) and a per-node mask
 * (longer than the pool, at most /30, at most 2^20 pod CIDRs).
 *
 * @throws ClusterError `INVALID_OPTION` naming the field and what was expected.
 * @example parseClusterPool('10.0.0.0/16', 24).size // 256
 */
export function parseClusterPool(cidr: unknown, maskSize: unknown): ClusterPool {
  const { cidr: canonical, size } = parsePool(cidr, maskSize)
  return { cidr: canonical, maskSize: maskSize as number, size }
}

function parsePool(cidr: unknown, maskSize: unknown): ParsedPool {
  const p = typeof cidr === 'string' ? parsePrefixOrUndefined(cidr, { strict: true }) : undefined
  if (p?.family !== 4 || !cidr || !(cidr as string).includes('/')) {
    throw invalid('clusterPoolCidr', cidr, 'expected an IPv4 network like 10.0.0.0/16')
  }
  if (p.length < 8 || p.length > 30) {
    throw invalid('clusterPoolCidr', cidr, 'expected a length between /8 and /30')
  }
  if (
    typeof maskSize !== 'number' ||
    !Number.isInteger(maskSize) ||
    maskSize <= p.length ||
    maskSize > 30 ||
    maskSize - p.length > 20
  ) {
    throw invalid(
      'clusterPoolMaskSize',
      maskSize,
      `expected an integer longer than the pool's /${p.length}, at most /30 and at most /${Math.min(30, p.length + 20)}`,
    )
  }
  return {
    cidr: p.cidr,
    maskSize,
    size: 2 ** (maskSize - p.length),
    network: Number(p.address),
    length: p.length,
  }
}

/** The i-th pod CIDR of a pool (0-based). */
function nth(pool: ParsedPool, i: number): string {
  return `${formatIpv4(pool.network + i * 2 ** (32 - pool.maskSize))}/${pool.maskSize}`
}

/**
 * Check that `cidr` is one of the pool's pod CIDRs (inside the pool, with the pool's mask, no
 * host bits) and return it in canonical form.
 *
 * @throws ClusterError `INVALID_OPTION` / `POD_CIDR_TAKEN` (outside the pool).
 */
export function checkPodCidr(pool: ClusterPool, cidr: unknown): string {
  const parsed = parsePool(pool.cidr, pool.maskSize)
  const p: Prefix | undefined =
    typeof cidr === 'string' ? parsePrefixOrUndefined(cidr, { strict: true }) : undefined
  if (p?.family !== 4 || p.length !== pool.maskSize) {
    throw invalid('podCidr', cidr, `expected an IPv4 /${pool.maskSize} inside ${pool.cidr}`)
  }
  const offset = Number(p.address) - parsed.network
  if (offset < 0 || offset >= 2 ** (32 - parsed.length)) {
    throw new ClusterError(
      ClusterErrorCode.POD_CIDR_TAKEN,
      `pod CIDR ${p.cidr} lies outside the cluster pool ${pool.cidr}`,
      { input: cidr },
    )
  }
  return p.cidr
}

/**
 * The lowest pod CIDR of the pool that is not in `taken`, or undefined when all are. Pure: the
 * etcd allocator claims the answer with a transaction and asks again when another node won.
 *
 * @example firstFreePodCidr(parseClusterPool('10.0.0.0/16', 24), new Set(['10.0.0.0/24'])) // '10.0.1.0/24'
 */
export function firstFreePodCidr(
  pool: ClusterPool,
  taken: ReadonlySet<string>,
): string | undefined {
  const parsed = parsePool(pool.cidr, pool.maskSize)
  for (let i = 0; i < parsed.size; i++) {
    const c = nth(parsed, i)
    if (!taken.has(c)) return c
  }
  return undefined
}
