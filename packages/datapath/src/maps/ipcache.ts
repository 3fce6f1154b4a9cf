import { isIpv4, parsePrefixOrUndefined, prefixBytes, readIp } from '@membrane/types'
import { DatapathError, DatapathErrorCode, describeValue } from '../errors'
import type { MapLike } from '../internal/loader'
import { ipcacheKeyCodec, ipcacheValueCodec } from '../layouts'

/** Bits of the ipcache key before the address (pad + cluster id + family). */
const IPCACHE_STATIC_PREFIX = 32
const FAMILY_V4 = 1
const FAMILY_V6 = 2

/** What the ipcache map stores for a prefix. */
export interface IpcacheMapEntry {
  cidr: string
  identity: number
  tunnelEndpoint?: string
}

/** A prefix, as text (`10.0.0.0/8`, `10.0.0.1`) or as @membrane/identity's Prefix (`{ cidr }`). */
export type PrefixInput = string | { readonly cidr: string }

/**
 * An @membrane/identity IPCache event (structurally typed): upserts and deletes of the
 * effective entry of a prefix.
 */
export type IpcacheEventInput =
  | { type: 'upsert'; prefix: PrefixInput; entry: { identity: number; tunnelEndpoint?: string } }
  | { type: 'delete'; prefix: PrefixInput }

interface Parsed {
  family: 4 | 6
  bytes: Buffer
  length: number
  cidr: string
}

function parseCidr(input: PrefixInput, path: string): Parsed {
  const text = typeof input === 'string' ? input : input?.cidr
  const p = typeof text === 'string' ? parsePrefixOrUndefined(text) : undefined
  if (!p || typeof text !== 'string')
    throw new DatapathError(
      DatapathErrorCode.INVALID_VALUE,
      `expected an IPv4 or IPv6 CIDR (a.b.c.d/n), got ${describeValue(typeof input === 'string' ? input : (text ?? input))}`,
      { path },
    )
  // Host bits are cleared (equal prefixes encode to equal keys); the LPM key holds 16 bytes.
  const bytes = Buffer.alloc(16)
  bytes.set(prefixBytes(p))
  return { family: p.family, bytes, length: p.length, cidr: text }
}

function formatKey(family: number, ip: Buffer, length: number): string {
  return `${readIp(ip, 0, family === FAMILY_V4 ? 4 : 6)}/${length}`
}

/**
 * The ipcache (`mb_ipcache`): IP prefix -> security identity, longest prefix wins. Feed it
 * @membrane/identity's IPCache events with {@link IpcacheMap.applyEvent}.
 */
export class IpcacheMap {
  readonly #map: MapLike

  constructor(map: MapLike) {
    this.#map = map
  }

  #key(p: Parsed): Buffer {
    return ipcacheKeyCodec.encode({
      prefixlen: IPCACHE_STATIC_PREFIX + p.length,
      clusterId: 0,
      family: p.family === 4 ? FAMILY_V4 : FAMILY_V6,
      ip: p.bytes,
    })
  }

  /** Map a prefix to an identity (and optionally the node that hosts it). */
  upsert(prefix: PrefixInput, identity: number, options: { tunnelEndpoint?: string } = {}): void {
    const p = parseCidr(prefix, 'prefix')
    if (!Number.isInteger(identity) || identity < 0 || identity > 0xffffffff)
      throw new DatapathError(
        DatapathErrorCode.INVALID_VALUE,
        `expected an identity, got ${describeValue(identity)}`,
        {
          path: 'identity',
        },
      )
    this.#map.update(
      this.#key(p),
      ipcacheValueCodec.encode({
        identity,
        tunnelEndpoint: options.tunnelEndpoint ?? '0.0.0.0',
        flags: 0,
      }),
    )
  }

  /** Remove a prefix; false when it was not there. */
  delete(prefix: PrefixInput): boolean {
    return this.#map.delete(this.#key(parseCidr(prefix, 'prefix')))
  }

  /** Apply one @membrane/identity IPCache event. */
  applyEvent(event: IpcacheEventInput): void {
    if (event.type === 'upsert') {
      const tunnel = event.entry.tunnelEndpoint
      this.upsert(
        event.prefix,
        event.entry.identity,
        tunnel && isIpv4(tunnel) ? { tunnelEndpoint: tunnel } : {},
      )
    } else this.delete(event.prefix)
  }

  /** The identity the datapath resolves for an address (longest prefix match in the kernel). */
  lookup(address: string): IpcacheMapEntry | undefined {
    const p = parseCidr(address, 'address')
    const full = { ...p, length: p.family === 4 ? 32 : 128 }
    const vb = this.#map.lookup(this.#key(full))
    if (!vb) return undefined
    const v = ipcacheValueCodec.decode(vb)
    return {
      cidr: address,
      identity: v.identity,
      ...(v.tunnelEndpoint !== '0.0.0.0' ? { tunnelEndpoint: v.tunnelEndpoint } : {}),
    }
  }

  /** Every entry. */
  entries(): IpcacheMapEntry[] {
    const out: IpcacheMapEntry[] = []
    for (const kb of this.#map.keys()) {
      const vb = this.#map.lookup(kb)
      if (!vb) continue
      const k = ipcacheKeyCodec.decode(kb)
      const v = ipcacheValueCodec.decode(vb)
      out.push({
        cidr: formatKey(k.family, k.ip, k.prefixlen - IPCACHE_STATIC_PREFIX),
        identity: v.identity,
        ...(v.tunnelEndpoint !== '0.0.0.0' ? { tunnelEndpoint: v.tunnelEndpoint } : {}),
      })
    }
    return out
  }
}
