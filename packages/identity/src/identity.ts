import {
  LOCAL_IDENTITY_FLAG,
  MAX_CLUSTER_ID,
  MAX_CLUSTER_IDENTITY,
  MAX_LOCAL_IDENTITY_INDEX,
  MIN_CLUSTER_IDENTITY,
  makePrefix,
  type Prefix,
  prefixMask,
  RESERVED_IDENTITY_BY_NAME,
  ReservedIdentity,
} from '@membrane/types'
import { toPrefix } from './_prefix'
import { IdentityError, IdentityErrorCode } from './errors'
import { cidrLabelKey, type Label, Labels, makeLabel } from './labels'

/** A security identity: a number and the labels it stands for. */
export interface Identity {
  readonly id: number
  readonly labels: Labels
}

/**
 * The plain shape other packages consume (`@membrane/policy`'s selector cache): the id and the
 * labels printed as `source:key=value` strings, in canonical order.
 */
export interface IdentityRecord {
  id: number
  labels: string[]
}

/** What kind of number an identity is. */
export type IdentityScope = 'reserved' | 'cluster' | 'local' | 'invalid'

/** Make an {@link Identity}. */
export function makeIdentity(id: number, labels: Labels): Identity {
  return Object.freeze({ id, labels })
}

/** The plain `{ id, labels: string[] }` record of an identity. */
export function toIdentityRecord(identity: Identity): IdentityRecord {
  return { id: identity.id, labels: [...identity.labels.toStrings()] }
}

/** Whether `id` is reserved (1..255), cluster-scoped (256..2^24-1) or node-local (CIDR). */
export function identityScope(id: number): IdentityScope {
  if (!Number.isInteger(id) || id <= 0 || id > 0xffffffff) return 'invalid'
  if (id < MIN_CLUSTER_IDENTITY) return 'reserved'
  if (id < LOCAL_IDENTITY_FLAG) return (id & 0xffff) >= MIN_CLUSTER_IDENTITY ? 'cluster' : 'invalid'
  if (id <= (LOCAL_IDENTITY_FLAG | MAX_LOCAL_IDENTITY_INDEX)) return 'local'
  return 'invalid'
}

/** The first and last identity a cluster allocates: `clusterId << 16 | 256..65535`. */
export function clusterIdentityRange(clusterId = 0): { min: number; max: number } {
  if (!Number.isInteger(clusterId) || clusterId < 0 || clusterId > MAX_CLUSTER_ID) {
    throw new IdentityError(
      IdentityErrorCode.INVALID_OPTION,
      `clusterId ${JSON.stringify(clusterId)}: expected an integer 0..${MAX_CLUSTER_ID}`,
      { input: clusterId },
    )
  }
  return {
    min: (clusterId << 16) | MIN_CLUSTER_IDENTITY,
    max: (clusterId << 16) | MAX_CLUSTER_IDENTITY,
  }
}

const reservedIdentities: readonly Identity[] = Object.freeze(
  Object.entries(RESERVED_IDENTITY_BY_NAME).map(([key, id]) =>
    makeIdentity(id, Labels.from([makeLabel('reserved', key)])),
  ),
)
const reservedById = new Map(reservedIdentities.map((i) => [i.id, i]))

/** Every reserved identity (1..10) with its one `reserved:<name>` label. */
export function reservedIdentityList(): readonly Identity[] {
  return reservedIdentities
}

/** The reserved identity of `id`, if it is one. */
export function reservedIdentity(id: number): Identity | undefined {
  return reservedById.get(id)
}

/**
 * The reserved identity a label set stands for, if any: any set holding `reserved:host` is the
 * host (1); a set that is exactly one other reserved label is that identity. A set that mixes a
 * reserved label (other than host) with others has no identity and is an error.
 *
 * @throws IdentityError `INVALID_IDENTITY`
 */
export function reservedIdentityOf(labels: Labels): Identity | undefined {
  const reserved = labels.bySource('reserved')
  if (reserved.size === 0) return undefined
  if (reserved.get('reserved', 'host') !== undefined) return reservedById.get(ReservedIdentity.HOST)
  if (labels.size === 1) {
    const key = (reserved.toArray()[0] as Label).key
    return reservedById.get(
      RESERVED_IDENTITY_BY_NAME[key as keyof typeof RESERVED_IDENTITY_BY_NAME],
    )
  }
  // CIDR identities carry reserved:world next to their cidr: labels.
  if (isCIDRLabelSet(labels)) return undefined
  throw new IdentityError(
    IdentityErrorCode.INVALID_IDENTITY,
    `labels ${JSON.stringify(labels.toStrings())} mix a reserved label with others; only reserved:host may carry more labels`,
    { input: labels.toStrings() },
  )
}

/**
 * The labels of a CIDR identity: `cidr:<p>` for every prefix containing `prefix` (from /0 to the
 * prefix itself) plus `reserved:world`, so a policy selecting `cidr:10.0.0.0/8` matches the
 * identity of 10.1.2.3/32 by plain label matching. IPv6 prefixes are written with '-' for ':'
 * (`cidr:2001-db8--/32`).
 *
 * @example cidrLabels('10.1.2.3/32').has('cidr:10.0.0.0/8') // true
 */
export function cidrLabels(prefix: string | Prefix): Labels {
  const p = toPrefix(prefix)
  const out: Label[] = [makeLabel('reserved', 'world')]
  for (let len = 0; len <= p.length; len++) {
    const q = makePrefix(p.family, p.address & prefixMask(p.family, len), len)
    out.push(Object.freeze({ source: 'cidr', key: cidrLabelKey(q.cidr), value: '' }))
  }
  return Labels.from(out)
}

/** True when every label is `cidr:` or `reserved:world` and at least one is `cidr:`. */
export function isCIDRLabelSet(labels: Labels): boolean {
  let cidr = 0
  for (const l of labels) {
    if (l.source === 'cidr') cidr++
    else if (!(l.source === 'reserved' && l.key === 'world')) return false
  }
  return cidr > 0
}
