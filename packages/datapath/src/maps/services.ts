import { buildLookupTable, DEFAULT_SEED, diffTables } from '@membrane/maglev'
import { canonicalIp, u32 as u32Codec } from '@membrane/types'
import { BackendFlag, LbAlgorithm, ServiceFlag } from '../constants'
import { DatapathError, DatapathErrorCode, describeValue } from '../errors'
import type { MapLike } from '../internal/loader'
import {
  lb4BackendCodec,
  lb4KeyCodec,
  lb6BackendCodec,
  lb6KeyCodec,
  lb6RevnatCodec,
  lbServiceCodec,
  lbSlotKeyCodec,
  MAGLEV_TABLE_SIZE,
  maglevCodec,
} from '../layouts'

/** L4 protocol of a service. */
export type ServiceProtocol = 'TCP' | 'UDP'

const PROTO: Record<ServiceProtocol, number> = { TCP: 6, UDP: 17 }
const PROTO_NAME: Record<number, ServiceProtocol> = { 6: 'TCP', 17: 'UDP' }

/** One backend of a service. */
export interface BackendInput {
  address: string
  port: number
  /** Maglev weight 1..65535 (default 1). */
  weight?: number
  /** Keep serving existing connections but take no new ones. */
  draining?: boolean
}

/** A service frontend and its backends. */
export interface ServiceInput {
  /** ClusterIP (IPv4). */
  address: string
  port: number
  protocol?: ServiceProtocol
  /** Backend selection for new flows (default 'maglev'). Socket LB always picks at random. */
  algorithm?: 'maglev' | 'random'
  backends: readonly BackendInput[]
  /** Translate at connect() for sockets in the attached cgroup (default true). */
  socketLb?: boolean
}

/** A backend as written to the maps. */
export interface BackendState {
  id: number
  address: string
  port: number
  protocol: ServiceProtocol
  weight: number
  draining: boolean
}

/** A service as written to the maps. */
export interface ServiceState {
  /** Service id (the rev-NAT index), 1..65535. */
  id: number
  address: string
  port: number
  protocol: ServiceProtocol
  algorithm: 'maglev' | 'random'
  socketLb: boolean
  /** Active backends, in slot order (slot i+1). */
  backends: BackendState[]
  /** Backends that left the service and drain (existing connections keep them). */
  draining: BackendState[]
}

/** The maps ServiceMaps writes (the IPv6 ones are optional). */
export interface ServiceMapSet {
  services: MapLike
  backends: MapLike
  slots: MapLike
  maglev: MapLike
  services6?: MapLike
  backends6?: MapLike
  revNat6?: MapLike
}

/** Canonical text of an IPv4 or IPv6 address, or undefined. */
function canonical(address: unknown): string | undefined {
  return typeof address === 'string' ? canonicalIp(address) : undefined
}

const isV6 = (address: string) => address.includes(':')

function bad(path: string, expected: string, got: unknown): DatapathError {
  return new DatapathError(
    DatapathErrorCode.INVALID_VALUE,
    `expected ${expected}, got ${describeValue(got)}`,
    {
      path,
    },
  )
}

const frontendKey = (address: string, port: number, proto: number) => `${address}:${port}/${proto}`

/**
 * Services, backends, backend slots and Maglev tables (`mb_lb4_*`, `mb_lb_*`). Backend ids are
 * shared between services that use the same address:port/protocol. Maglev tables come from
 * @membrane/maglev's buildLookupTable (size {@link MAGLEV_TABLE_SIZE}), rewritten only when
 * diffTables says a slot changed. A backend that leaves a service drains: it stays in the
 * backends map (conntrack keeps it for existing flows) until {@link ServiceMaps.gcBackends}
 * finds no connection using it.
 */
export class ServiceMaps {
  readonly #m: ServiceMapSet
  readonly #seed: string
  readonly #byFrontend = new Map<string, ServiceState>()
  readonly #backendIds = new Map<string, number>()
  readonly #backendById = new Map<number, BackendState>()
  readonly #tables = new Map<number, Uint32Array>()

  constructor(maps: ServiceMapSet, options: { maglevSeed?: string } = {}) {
    this.#m = maps
    this.#seed = options.maglevSeed ?? DEFAULT_SEED
    this.#recover()
  }

  /** Rebuild the in-memory view from the maps (after a restart). */
  #recover(): void {
    const backendMaps: Array<[MapLike, typeof lb4BackendCodec | typeof lb6BackendCodec]> = [
      [this.#m.backends, lb4BackendCodec],
    ]
    if (this.#m.backends6) backendMaps.push([this.#m.backends6, lb6BackendCodec])
    for (const [map, codec] of backendMaps)
      for (const kb of map.keys()) {
        const vb = map.lookup(kb)
        if (!vb) continue
        const id = u32Codec.decode(kb)
        const b = codec.decode(vb)
        const protocol = PROTO_NAME[b.proto] ?? 'TCP'
        const state: BackendState = {
          id,
          address: b.address,
          port: b.port,
          protocol,
          weight: 1,
          draining: (b.flags & BackendFlag.DRAINING) !== 0,
        }
        this.#backendById.set(id, state)
        this.#backendIds.set(frontendKey(b.address, b.port, b.proto), id)
      }
    const serviceMaps: Array<[MapLike, typeof lb4KeyCodec | typeof lb6KeyCodec]> = [
      [this.#m.services, lb4KeyCodec],
    ]
    if (this.#m.services6) serviceMaps.push([this.#m.services6, lb6KeyCodec])
    for (const [map, keyCodec] of serviceMaps)
      for (const kb of map.keys()) {
        const vb = map.lookup(kb)
        if (!vb) continue
        const k = keyCodec.decode(kb)
        const v = lbServiceCodec.decode(vb)
        const backends: BackendState[] = []
        for (let slot = 1; slot <= v.count; slot++) {
          const idb = this.#m.slots.lookup(
            lbSlotKeyCodec.encode({ revNatIndex: v.revNatIndex, slot }),
          )
          const b = idb ? this.#backendById.get(u32Codec.decode(idb)) : undefined
          if (b) backends.push(b)
        }
        const algorithm = v.algorithm === LbAlgorithm.MAGLEV ? 'maglev' : 'random'
        if (algorithm === 'maglev') {
          const tb = this.#m.maglev.lookup(u32Codec.encode(v.revNatIndex))
          if (tb) this.#tables.set(v.revNatIndex, maglevCodec.decode(tb).backendIds)
        }
        this.#byFrontend.set(frontendKey(k.address, k.dport, k.proto), {
          id: v.revNatIndex,
          address: k.address,
          port: k.dport,
          protocol: PROTO_NAME[k.proto] ?? 'TCP',
          algorithm,
          socketLb: (v.flags & ServiceFlag.SOCK_LB_SKIP) === 0,
          backends,
          draining: [],
        })
      }
  }

  #allocServiceId(): number {
    const used = new Set([...this.#byFrontend.values()].map((s) => s.id))
    for (let id = 1; id <= 0xffff; id++) if (!used.has(id)) return id
    throw new DatapathError(DatapathErrorCode.MAP_FULL, 'all 65535 service ids are in use', {
      path: 'services',
    })
  }

  #backendId(address: string, port: number, proto: number): number {
    const key = frontendKey(address, port, proto)
    const known = this.#backendIds.get(key)
    if (known !== undefined) return known
    const taken = new Set(this.#backendIds.values())
    let id = 1
    while (this.#backendById.has(id) || taken.has(id)) id++
    this.#backendIds.set(key, id)
    return id
  }

  /** Which services use a backend id as an active backend. */
  #activeUsers(id: number, except?: ServiceState): number {
    let n = 0
    for (const s of this.#byFrontend.values())
      if (s !== except && s.backends.some((b) => b.id === id)) n++
    return n
  }

  #backendMap(address: string): MapLike {
    if (!isV6(address)) return this.#m.backends
    if (!this.#m.backends6) throw bad('backend.address', 'an IPv4 address (no IPv6 maps)', address)
    return this.#m.backends6
  }

  #writeBackend(b: BackendState): void {
    const value = {
      address: b.address,
      port: b.port,
      proto: PROTO[b.protocol],
      flags: b.draining ? BackendFlag.DRAINING : 0,
    }
    const encoded = isV6(b.address) ? lb6BackendCodec.encode(value) : lb4BackendCodec.encode(value)
    this.#backendMap(b.address).update(u32Codec.encode(b.id), encoded)
    this.#backendById.set(b.id, b)
  }

  #serviceKey(address: string, port: number, proto: number): { map: MapLike; key: Buffer } {
    const fields = { address, dport: port, proto, scope: 0 }
    if (!isV6(address)) return { map: this.#m.services, key: lb4KeyCodec.encode(fields) }
    if (!this.#m.services6) throw bad('service.address', 'an IPv4 address (no IPv6 maps)', address)
    return { map: this.#m.services6, key: lb6KeyCodec.encode(fields) }
  }

  /**
   * Create or update a service. Writes go in an order that never exposes a half-written
   * service: backends, slots and Maglev table first, the service entry (with its backend
   * count) after, stale slots last.
   */
  upsert(input: ServiceInput): ServiceState {
    if (typeof input !== 'object' || input === null) throw bad('service', 'a service object', input)
    const address = canonical(input.address)
    if (!address) throw bad('service.address', 'an IPv4 or IPv6 address', input.address)
    const v6 = isV6(address)
    if (!Number.isInteger(input.port) || input.port < 1 || input.port > 0xffff)
      throw bad('service.port', 'a port 1..65535', input.port)
    const protocol = input.protocol ?? 'TCP'
    if (!(protocol in PROTO)) throw bad('service.protocol', "'TCP' or 'UDP'", input.protocol)
    const algorithm = input.algorithm ?? 'maglev'
    if (algorithm !== 'maglev' && algorithm !== 'random')
      throw bad('service.algorithm', "'maglev' or 'random'", input.algorithm)
    if (!Array.isArray(input.backends)) throw bad('service.backends', 'an array', input.backends)
    const proto = PROTO[protocol]
    const seen = new Set<string>()
    const backendsIn = input.backends.map((b) => ({
      ...b,
      address: canonical(b?.address) ?? String(b?.address),
    }))
    backendsIn.forEach((b, i) => {
      const path = `service.backends[${i}]`
      const addr = canonical(input.backends[i]?.address)
      if (!addr || isV6(addr) !== v6)
        throw bad(
          `${path}.address`,
          `an ${v6 ? 'IPv6' : 'IPv4'} address (the service's family)`,
          input.backends[i]?.address,
        )
      if (!Number.isInteger(b.port) || b.port < 1 || b.port > 0xffff)
        throw bad(`${path}.port`, 'a port 1..65535', b.port)
      const w = b.weight ?? 1
      if (!Number.isInteger(w) || w < 1 || w > 0xffff)
        throw bad(`${path}.weight`, 'a weight 1..65535', b.weight)
      const k = `${b.address}:${b.port}`
      if (seen.has(k)) throw bad(`${path}`, 'each backend once', k)
      seen.add(k)
    })

    const fk = frontendKey(address, input.port, proto)
    const old = this.#byFrontend.get(fk)
    const id = old?.id ?? this.#allocServiceId()

    const all: BackendState[] = backendsIn.map((b) => ({
      id: this.#backendId(b.address, b.port, proto),
      address: b.address,
      port: b.port,
      protocol,
      weight: b.weight ?? 1,
      draining: b.draining ?? false,
    }))
    const active = all.filter((b) => !b.draining)
    const removed = (old ? [...old.backends, ...old.draining] : []).filter(
      (b) => !all.some((n) => n.id === b.id),
    )
    const draining = [
      ...all.filter((b) => b.draining),
      ...removed.map((b) => ({ ...b, draining: true })),
    ]

    // 1. backends (active ones; a backend another service still uses actively stays active)
    for (const b of active) this.#writeBackend(b)
    for (const b of draining) {
      if (this.#activeUsers(b.id, old) > 0) continue
      this.#writeBackend(b)
    }
    // 2. slots 1..n
    active.forEach((b, i) => {
      this.#m.slots.update(
        lbSlotKeyCodec.encode({ revNatIndex: id, slot: i + 1 }),
        u32Codec.encode(b.id),
      )
    })
    // 3. Maglev table
    const idKey = u32Codec.encode(id)
    if (algorithm === 'maglev' && active.length > 0) {
      const table = buildLookupTable(
        active.map((b) => ({
          id: b.id,
          address: b.address,
          port: b.port,
          protocol: b.protocol,
          weight: b.weight,
        })),
        { tableSize: MAGLEV_TABLE_SIZE, seed: this.#seed },
      )
      const before = this.#tables.get(id)
      if (!before || diffTables(before, table).slots.length > 0)
        this.#m.maglev.update(idKey, maglevCodec.encode({ backendIds: table }))
      this.#tables.set(id, table)
    }
    // 4. the reverse NAT record (IPv6) and the service entry
    if (v6) this.#m.revNat6?.update(idKey, lb6RevnatCodec.encode({ address, port: input.port }))
    const flags = input.socketLb === false ? ServiceFlag.SOCK_LB_SKIP : 0
    const sk = this.#serviceKey(address, input.port, proto)
    sk.map.update(
      sk.key,
      lbServiceCodec.encode({
        count: active.length,
        revNatIndex: id,
        algorithm: algorithm === 'maglev' ? LbAlgorithm.MAGLEV : LbAlgorithm.RANDOM,
        flags,
      }),
    )
    // 5. stale slots and tables
    for (let slot = active.length + 1; slot <= (old?.backends.length ?? 0); slot++)
      this.#m.slots.delete(lbSlotKeyCodec.encode({ revNatIndex: id, slot }))
    if ((algorithm !== 'maglev' || active.length === 0) && this.#tables.has(id)) {
      this.#m.maglev.delete(idKey)
      this.#tables.delete(id)
    }
    const state: ServiceState = {
      id,
      address,
      port: input.port,
      protocol,
      algorithm,
      socketLb: input.socketLb !== false,
      backends: active,
      draining,
    }
    this.#byFrontend.set(fk, state)
    return state
  }

  /** Remove a service; its backends drain until {@link ServiceMaps.gcBackends}. */
  delete(address: string, port: number, protocol: ServiceProtocol = 'TCP'): boolean {
    const proto = PROTO[protocol]
    const addr = canonical(address)
    if (!addr) return false
    const fk = frontendKey(addr, port, proto)
    const old = this.#byFrontend.get(fk)
    if (!old) return false
    const sk = this.#serviceKey(addr, port, proto)
    sk.map.delete(sk.key)
    if (isV6(addr)) this.#m.revNat6?.delete(u32Codec.encode(old.id))
    for (let slot = 1; slot <= old.backends.length; slot++)
      this.#m.slots.delete(lbSlotKeyCodec.encode({ revNatIndex: old.id, slot }))
    this.#m.maglev.delete(u32Codec.encode(old.id))
    this.#tables.delete(old.id)
    this.#byFrontend.delete(fk)
    for (const b of old.backends)
      if (this.#activeUsers(b.id) === 0) this.#writeBackend({ ...b, draining: true })
    return true
  }

  /** A service by frontend. */
  get(address: string, port: number, protocol: ServiceProtocol = 'TCP'): ServiceState | undefined {
    const addr = canonical(address)
    return addr ? this.#byFrontend.get(frontendKey(addr, port, PROTO[protocol])) : undefined
  }

  /** Every service. */
  list(): ServiceState[] {
    return [...this.#byFrontend.values()]
  }

  /** The Maglev table written for a service id (a copy), if any. */
  maglevTable(serviceId: number): Uint32Array | undefined {
    const tb = this.#m.maglev.lookup(u32Codec.encode(serviceId))
    return tb ? maglevCodec.decode(tb).backendIds : undefined
  }

  /** A backend by id. */
  backend(id: number): BackendState | undefined {
    return this.#backendById.get(id)
  }

  /**
   * Delete draining backends that no service uses and no live connection references
   * (`referenced`: backend ids of conntrack service entries, from CtMap.gc()). Returns the
   * ids deleted.
   */
  gcBackends(referenced: ReadonlySet<number>): number[] {
    const out: number[] = []
    for (const [id, b] of this.#backendById) {
      if (!b.draining || referenced.has(id) || this.#activeUsers(id) > 0) continue
      this.#backendMap(b.address).delete(u32Codec.encode(id))
      this.#backendById.delete(id)
      this.#backendIds.delete(frontendKey(b.address, b.port, PROTO[b.protocol]))
      for (const s of this.#byFrontend.values()) s.draining = s.draining.filter((d) => d.id !== id)
      out.push(id)
    }
    return out
  }
}
