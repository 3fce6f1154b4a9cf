import { CtFlag, CtTupleFlag } from '../constants'
import type { MapLike } from '../internal/loader'
import { ctEntryCodec, ctTuple4Codec, ctTuple6Codec } from '../layouts'

/** A conntrack entry as read from `mb_ct4`. */
export interface CtEntry {
  tuple: {
    saddr: string
    daddr: string
    sport: number
    dport: number
    /** IP protocol number. */
    protocol: number
    /** A service selection entry (pre-DNAT tuple) rather than a connection. */
    service: boolean
  }
  expiresNs: bigint
  createdNs: bigint
  packets: bigint
  bytes: bigint
  srcIdentity: number
  backendId: number
  revNat?: { address: string; port: number; serviceId: number }
  proxyPort: number
  endpointId: number
  flags: number
  /** Names of the set flags (REV_NAT, PROXY_REDIRECT, TX_CLOSING, ...). */
  flagNames: string[]
  txFlagsSeen: number
  rxFlagsSeen: number
}

/** The clock bpf_ktime_get_ns() reads (CLOCK_MONOTONIC), in ns. */
export function monotonicNowNs(): bigint {
  return process.hrtime.bigint()
}

function decode(kb: Buffer, vb: Buffer): CtEntry {
  const k = kb.length === ctTuple6Codec.size ? ctTuple6Codec.decode(kb) : ctTuple4Codec.decode(kb)
  const v = ctEntryCodec.decode(vb)
  return {
    tuple: {
      saddr: k.saddr,
      daddr: k.daddr,
      sport: k.sport,
      dport: k.dport,
      protocol: k.nexthdr,
      service: (k.flags & CtTupleFlag.SERVICE) !== 0,
    },
    expiresNs: v.expiresNs,
    createdNs: v.createdNs,
    packets: v.packets,
    bytes: v.bytes,
    srcIdentity: v.srcIdentity,
    backendId: v.backendId,
    ...(v.flags & CtFlag.REV_NAT || v.flags & CtFlag.SERVICE
      ? { revNat: { address: v.revNatAddr, port: v.revNatPort, serviceId: v.revNatIndex } }
      : {}),
    proxyPort: v.proxyPort,
    endpointId: v.endpointId,
    flags: v.flags,
    flagNames: Object.entries(CtFlag)
      .filter(([, bit]) => (v.flags & bit) !== 0)
      .map(([name]) => name),
    txFlagsSeen: v.txFlagsSeen,
    rxFlagsSeen: v.rxFlagsSeen,
  }
}

/** Result of {@link CtMap.gc}. */
export interface CtGcResult {
  deleted: number
  remaining: number
  /** Backend ids that live service entries still use (for ServiceMaps.gcBackends). */
  referencedBackends: Set<number>
}

/**
 * Connection tracking (`mb_ct4`): dump, lookup and garbage collection. Entries carry their
 * own deadline (`expiresNs`, CLOCK_MONOTONIC); the kernel never deletes them by time, GC does.
 */
export class CtMap {
  readonly #map: MapLike
  readonly #map6: MapLike | undefined

  constructor(map: MapLike, map6?: MapLike) {
    this.#map = map
    this.#map6 = map6
  }

  #maps(): MapLike[] {
    return this.#map6 ? [this.#map, this.#map6] : [this.#map]
  }

  /** Every entry (IPv4 then IPv6). */
  dump(): CtEntry[] {
    const out: CtEntry[] = []
    for (const map of this.#maps()) {
      for (const kb of map.keys()) {
        const vb = map.lookup(kb)
        if (vb) out.push(decode(kb, vb))
      }
    }
    return out
  }

  /** The entry of one tuple (as the first packet carried it). */
  get(tuple: {
    saddr: string
    daddr: string
    sport: number
    dport: number
    protocol: number
    service?: boolean
  }): CtEntry | undefined {
    const v6 = tuple.saddr.includes(':')
    const fields = {
      saddr: tuple.saddr,
      daddr: tuple.daddr,
      sport: tuple.sport,
      dport: tuple.dport,
      nexthdr: tuple.protocol,
      flags: tuple.service ? CtTupleFlag.SERVICE : 0,
    }
    const kb = v6 ? ctTuple6Codec.encode(fields) : ctTuple4Codec.encode(fields)
    const map = v6 ? this.#map6 : this.#map
    const vb = map?.lookup(kb)
    return vb ? decode(kb, vb) : undefined
  }

  /** Delete entries whose deadline passed (`now` defaults to CLOCK_MONOTONIC now). */
  gc(now: bigint = monotonicNowNs()): CtGcResult {
    let deleted = 0
    let remaining = 0
    const referencedBackends = new Set<number>()
    for (const map of this.#maps()) {
      for (const kb of map.keys()) {
        const vb = map.lookup(kb)
        if (!vb) continue
        const v = ctEntryCodec.decode(vb)
        if (v.expiresNs < now) {
          if (map.delete(kb)) deleted++
          continue
        }
        remaining++
        if (v.flags & CtFlag.SERVICE) referencedBackends.add(v.backendId)
      }
    }
    return { deleted, remaining, referencedBackends }
  }

  /** Delete every entry (tests, or a deliberate reset). Returns how many. */
  flush(): number {
    let n = 0
    for (const map of this.#maps()) for (const kb of map.keys()) if (map.delete(kb)) n++
    return n
  }
}
