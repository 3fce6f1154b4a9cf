import { canonicalIp } from '@membrane/types'
import { describe, MaglevError, MaglevErrorCode } from './errors'

/** L4 protocols as Cilium spells them in a backend's hash string. */
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP', 'ANY', 'NONE'] as const

/** An L4 protocol name (see {@link PROTOCOLS}); lower case is accepted and upper-cased. */
export type Protocol = (typeof PROTOCOLS)[number]

/** One service backend as the Maglev table builder sees it. */
export interface Backend {
  /** The value written into the table for the slots this backend owns (uint32, node-local). */
  id: number
  /** IPv4 or IPv6 address, any valid spelling (it is canonicalised like Go's netip). */
  address: string
  /** L4 port, 0..65535. */
  port: number
  /** L4 protocol. Default 'TCP'. */
  protocol?: Protocol | Lowercase<Protocol>
  /** Relative weight, an integer 1..65535 (Cilium's uint16). Default 1. */
  weight?: number
  /** 'internal' backends get `/i` in their hash string (Cilium's ScopeInternal). Default 'external'. */
  scope?: 'external' | 'internal'
  /** Cluster-mesh cluster id; non-zero ids are appended as `@<id>` like Cilium's AddrCluster. Default 0. */
  clusterId?: number
}

/** A backend after validation: the hash string plus what the table builder needs. */
export interface NormalizedBackend {
  id: number
  weight: number
  hashString: string
}

function isUint(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max
}

/**
 * Validate one backend and compute its hash string. `path` names it in errors
 * (e.g. `backends[2]`).
 */
export function normalizeBackend(backend: Backend, path = 'backend'): NormalizedBackend {
  if (typeof backend !== 'object' || backend === null)
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected a backend object, got ${describe(backend)}`,
      {
        path,
      },
    )
  const {
    id,
    address,
    port,
    protocol = 'TCP',
    weight = 1,
    scope = 'external',
    clusterId = 0,
  } = backend
  if (!isUint(id, 0xffffffff))
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected an integer 0..4294967295, got ${describe(id)}`,
      {
        path: `${path}.id`,
      },
    )
  const canonical = canonicalIp(address)
  if (canonical === undefined)
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected an IPv4 or IPv6 address (no zone, no brackets, no leading zeros), got ${describe(address)}`,
      { path: `${path}.address` },
    )
  if (!isUint(port, 0xffff))
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected an integer 0..65535, got ${describe(port)}`,
      {
        path: `${path}.port`,
      },
    )
  const proto = typeof protocol === 'string' ? protocol.toUpperCase() : protocol
  if (!(PROTOCOLS as readonly unknown[]).includes(proto))
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected one of ${PROTOCOLS.join(', ')}, got ${describe(protocol)}`,
      { path: `${path}.protocol` },
    )
  if (!isUint(weight, 0xffff) || weight === 0)
    throw new MaglevError(
      MaglevErrorCode.INVALID_WEIGHT,
      `expected an integer 1..65535, got ${describe(weight)}${weight === 0 ? ' (leave a drained backend out of the list instead)' : ''}`,
      { path: `${path}.weight` },
    )
  if (scope !== 'external' && scope !== 'internal')
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected 'external' or 'internal', got ${describe(scope)}`,
      {
        path: `${path}.scope`,
      },
    )
  if (!isUint(clusterId, 0xffffffff))
    throw new MaglevError(
      MaglevErrorCode.INVALID_BACKEND,
      `expected an integer 0..4294967295, got ${describe(clusterId)}`,
      { path: `${path}.clusterId` },
    )
  let addr = canonical
  if (clusterId !== 0) addr += `@${clusterId}`
  const host = addr.includes(':') ? `[${addr}]` : addr
  const hashString = `[${host}:${port}/${proto}${scope === 'internal' ? '/i' : ''},State:active]`
  return { id, weight, hashString }
}

/**
 * The string Cilium hashes (MurmurHash3) and sorts by for a backend:
 * `[<address>:<port>/<PROTOCOL>,State:active]`, the IPv6 address in brackets, `/i` after the
 * protocol for internal-scope backends.
 *
 * @example backendHashString({ id: 1, address: '2001:db8::1', port: 80 })
 * // '[[2001:db8::1]:80/TCP,State:active]'
 */
export function backendHashString(backend: Backend): string {
  return normalizeBackend(backend).hashString
}
