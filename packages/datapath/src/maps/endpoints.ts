import {
  ipv4 as ipv4Codec,
  isIpv4,
  isIpv6,
  type Prefix,
  parseIp,
  parsePrefixOrUndefined,
  prefixContainsIp,
  u32 as u32Codec,
} from '@membrane/types'
import { EndpointFlag } from '../constants'
import { DatapathError, DatapathErrorCode, describeValue } from '../errors'
import type { MapLike } from '../internal/loader'
import { endpointCodec } from '../layouts'

/** One workload as the endpoint programs see it. */
export interface EndpointRecord {
  /** Endpoint id, 1..65535. */
  id: number
  /** Security identity of the workload. */
  identity: number
  /** ifindex of the host-side veth (where the programs are attached). */
  ifindex: number
  /** The workload's IPv4 address. */
  ip: string
  /** The workload's IPv6 address, when it has one. */
  ip6?: string
  /** MAC of the container side of the veth. */
  mac: string
  /** MAC of the host side of the veth. */
  nodeMac?: string
  /** Enforce ingress policy (default true). Without it, all ingress is allowed. */
  enforceIngress?: boolean
  /** Enforce egress policy (default true). */
  enforceEgress?: boolean
}

function check(ep: EndpointRecord): void {
  const bad = (path: string, expected: string, got: unknown) =>
    new DatapathError(
      DatapathErrorCode.INVALID_VALUE,
      `expected ${expected}, got ${describeValue(got)}`,
      {
        path: `endpoint.${path}`,
      },
    )
  if (!Number.isInteger(ep.id) || ep.id < 1 || ep.id > 0xffff)
    throw bad('id', 'an endpoint id 1..65535', ep.id)
  if (!Number.isInteger(ep.identity) || ep.identity < 0 || ep.identity > 0xffffffff)
    throw bad('identity', 'an identity', ep.identity)
  if (!Number.isInteger(ep.ifindex) || ep.ifindex < 1)
    throw bad('ifindex', 'an ifindex >= 1', ep.ifindex)
  if (!isIpv4(ep.ip)) throw bad('ip', 'an IPv4 address', ep.ip)
  if (ep.ip6 !== undefined && !isIpv6(ep.ip6)) throw bad('ip6', 'an IPv6 address', ep.ip6)
}

/** Options of {@link EndpointMap}. */
export interface EndpointMapOptions {
  /**
   * The node's endpoint CIDR (`Datapath.open({ localCidr4 })`): the programs skip the local
   * endpoint lookup for addresses outside it, so an endpoint outside it is refused.
   */
  localCidr4?: string
}

/** An IPv4 CIDR (`a.b.c.d/n`) as the node's endpoint range, or undefined when `value` is not one. */
export function parseLocalCidr4(value: unknown): Prefix | undefined {
  if (typeof value !== 'string' || !value.includes('/')) return undefined
  const p = parsePrefixOrUndefined(value)
  return p?.family === 4 ? p : undefined
}

/** The 16-byte mb_lxc6 key of an IPv6 address, or undefined. */
function ipv6Key(ip: string): Buffer | undefined {
  const a = parseIp(ip)
  return a?.family === 6 ? Buffer.from(a.bytes) : undefined
}

/**
 * Endpoint records: `mb_endpoints` by host-veth ifindex (the Datapath passes it wrapped in its
 * array mirror `mb_ep_direct`, what the programs read per packet) and `mb_lxc4`/`mb_lxc6` by
 * address for local delivery, written together.
 */
export class EndpointMap {
  readonly #byIfindex: MapLike
  readonly #byIp: MapLike
  readonly #byIp6: MapLike | undefined
  readonly #local: Prefix | undefined

  constructor(
    byIfindex: MapLike,
    byIp: MapLike,
    byIp6?: MapLike,
    options: EndpointMapOptions = {},
  ) {
    this.#byIfindex = byIfindex
    this.#byIp = byIp
    this.#byIp6 = byIp6
    if (options.localCidr4 !== undefined) {
      const c = parseLocalCidr4(options.localCidr4)
      if (!c)
        throw new DatapathError(
          DatapathErrorCode.INVALID_VALUE,
          `expected an IPv4 CIDR such as 10.0.1.0/24, got ${describeValue(options.localCidr4)}`,
          { path: 'localCidr4' },
        )
      this.#local = c
    }
  }

  static encode(ep: EndpointRecord): Buffer {
    check(ep)
    let flags = 0
    if (ep.enforceIngress ?? true) flags |= EndpointFlag.ENFORCE_INGRESS
    if (ep.enforceEgress ?? true) flags |= EndpointFlag.ENFORCE_EGRESS
    return endpointCodec.encode({
      endpointId: ep.id,
      identity: ep.identity,
      ifindex: ep.ifindex,
      ip4: ep.ip,
      ip6: ep.ip6 ?? '::',
      mac: ep.mac,
      nodeMac: ep.nodeMac ?? '00:00:00:00:00:00',
      flags,
    })
  }

  static decode(buf: Buffer): EndpointRecord {
    const v = endpointCodec.decode(buf)
    return {
      id: v.endpointId,
      identity: v.identity,
      ifindex: v.ifindex,
      ip: v.ip4,
      ...(v.ip6 !== '::' ? { ip6: v.ip6 } : {}),
      mac: v.mac,
      nodeMac: v.nodeMac,
      enforceIngress: (v.flags & EndpointFlag.ENFORCE_INGRESS) !== 0,
      enforceEgress: (v.flags & EndpointFlag.ENFORCE_EGRESS) !== 0,
    }
  }

  /** Write (or rewrite) an endpoint; an address change removes the old lxc entry. */
  upsert(ep: EndpointRecord): void {
    const value = EndpointMap.encode(ep)
    if (this.#local && !prefixContainsIp(this.#local, ep.ip))
      throw new DatapathError(
        DatapathErrorCode.INVALID_VALUE,
        `expected an address inside the node's endpoint CIDR ${this.#local.cidr}, got ${ep.ip}`,
        { path: 'endpoint.ip' },
      )
    const old = this.get(ep.ifindex)
    const v6 = ep.ip6 ? ipv6Key(ep.ip6) : undefined
    this.#byIp.update(ipv4Codec.encode(ep.ip), value)
    if (v6 && this.#byIp6) this.#byIp6.update(v6, value)
    this.#byIfindex.update(u32Codec.encode(ep.ifindex), value)
    if (old && old.ip !== ep.ip) this.#byIp.delete(ipv4Codec.encode(old.ip))
    const old6 = old?.ip6 ? ipv6Key(old.ip6) : undefined
    if (old6 && this.#byIp6 && (!v6 || !old6.equals(v6))) this.#byIp6.delete(old6)
  }

  /** The endpoint on a host-veth ifindex. */
  get(ifindex: number): EndpointRecord | undefined {
    const vb = this.#byIfindex.lookup(u32Codec.encode(ifindex))
    return vb ? EndpointMap.decode(vb) : undefined
  }

  /** The local endpoint that owns an IPv4 address. */
  byIp(ip: string): EndpointRecord | undefined {
    const vb = this.#byIp.lookup(ipv4Codec.encode(ip))
    return vb ? EndpointMap.decode(vb) : undefined
  }

  /** The endpoint with this id, if any. */
  byId(id: number): EndpointRecord | undefined {
    return this.list().find((e) => e.id === id)
  }

  /** Remove the endpoint of an ifindex (both maps); false when absent. */
  delete(ifindex: number): boolean {
    const old = this.get(ifindex)
    if (!old) return false
    const lxc = this.#byIp.lookup(ipv4Codec.encode(old.ip))
    if (lxc && EndpointMap.decode(lxc).ifindex === ifindex)
      this.#byIp.delete(ipv4Codec.encode(old.ip))
    return this.#byIfindex.delete(u32Codec.encode(ifindex))
  }

  /** Every endpoint. */
  list(): EndpointRecord[] {
    const out: EndpointRecord[] = []
    for (const kb of this.#byIfindex.keys()) {
      const vb = this.#byIfindex.lookup(kb)
      if (vb) out.push(EndpointMap.decode(vb))
    }
    return out
  }
}
