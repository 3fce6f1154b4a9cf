/**
 * Security identity numbers as Cilium assigns them: the reserved identities, the cluster range
 * and the node-local (CIDR) scope. The one table; every package imports it.
 */

/**
 * Reserved identities, numbered as Cilium numbers them (bpf-src carries the ones the datapath
 * needs as `MB_ID_<KEY>`).
 *
 * @example ReservedIdentity.WORLD // 2
 */
export const ReservedIdentity = {
  UNKNOWN: 0,
  HOST: 1,
  WORLD: 2,
  UNMANAGED: 3,
  HEALTH: 4,
  INIT: 5,
  REMOTE_NODE: 6,
  KUBE_APISERVER: 7,
  INGRESS: 8,
  WORLD_IPV4: 9,
  WORLD_IPV6: 10,
} as const

/** A reserved identity number. */
export type ReservedIdentity = (typeof ReservedIdentity)[keyof typeof ReservedIdentity]

/** The key of a reserved identity's label, `reserved:<name>` (Cilium's names). */
export type ReservedIdentityName =
  | 'host'
  | 'world'
  | 'unmanaged'
  | 'health'
  | 'init'
  | 'remote-node'
  | 'kube-apiserver'
  | 'ingress'
  | 'world-ipv4'
  | 'world-ipv6'

/**
 * Label name (`reserved:<name>`) -> reserved identity number, for the ten identities that have
 * a label (0, unknown, has none).
 */
export const RESERVED_IDENTITY_BY_NAME: Readonly<Record<ReservedIdentityName, number>> =
  Object.freeze({
    host: ReservedIdentity.HOST,
    world: ReservedIdentity.WORLD,
    unmanaged: ReservedIdentity.UNMANAGED,
    health: ReservedIdentity.HEALTH,
    init: ReservedIdentity.INIT,
    'remote-node': ReservedIdentity.REMOTE_NODE,
    'kube-apiserver': ReservedIdentity.KUBE_APISERVER,
    ingress: ReservedIdentity.INGRESS,
    'world-ipv4': ReservedIdentity.WORLD_IPV4,
    'world-ipv6': ReservedIdentity.WORLD_IPV6,
  })

/** Every reserved label name, in identity order (`host` .. `world-ipv6`). */
export const RESERVED_IDENTITY_NAMES: readonly ReservedIdentityName[] = Object.freeze(
  Object.keys(RESERVED_IDENTITY_BY_NAME) as ReservedIdentityName[],
)

const NAME_BY_ID = new Map<number, ReservedIdentityName>(
  RESERVED_IDENTITY_NAMES.map((name) => [RESERVED_IDENTITY_BY_NAME[name], name]),
)

/**
 * The label name of a reserved identity number, or undefined when `id` is not one.
 *
 * @example reservedIdentityName(6) // 'remote-node'
 */
export function reservedIdentityName(id: number): ReservedIdentityName | undefined {
  return NAME_BY_ID.get(id)
}

/**
 * The reserved identity number of a label name (`host`, `world`, ...), or undefined.
 *
 * @example reservedIdentityByName('world') // 2
 */
export function reservedIdentityByName(name: string): number | undefined {
  return Object.hasOwn(RESERVED_IDENTITY_BY_NAME, name)
    ? RESERVED_IDENTITY_BY_NAME[name as ReservedIdentityName]
    : undefined
}

/** The first cluster-local identity (before the cluster id is added). */
export const MIN_CLUSTER_IDENTITY = 256
/** The last cluster-local identity (before the cluster id is added). */
export const MAX_CLUSTER_IDENTITY = 65535
/** Highest cluster id (8 bits, as Cilium's ClusterMesh default); it sits in bits 16..23. */
export const MAX_CLUSTER_ID = 255
/** Node-local identities (CIDR identities) have this bit set: `1 << 24 | n`. */
export const LOCAL_IDENTITY_FLAG = 1 << 24
/** Highest `n` of a node-local identity. */
export const MAX_LOCAL_IDENTITY_INDEX = (1 << 24) - 1
