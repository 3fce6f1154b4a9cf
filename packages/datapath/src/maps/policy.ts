import { u32 as u32Codec } from '@membrane/types'
import { PolicyDirection, PolicyEntryFlag } from '../constants'
import { DatapathError, DatapathErrorCode, describeValue } from '../errors'
import type { MapLike } from '../internal/loader'
import { policyAnyCodec, policyEntryCodec, policyFastKeyCodec, policyKeyCodec } from '../layouts'

/** Bits of the policy LPM key before the protocol: endpoint id 32 + identity 32 + direction 8. */
const POLICY_STATIC_PREFIX = 72
/** Bits of a full policy key (protocol 8 + port 16 more). */
const POLICY_FULL_PREFIX = 96

/**
 * Direction bit of a summary record in the exact-match index (`mb_policy_fast`). C:
 * `MB_POLICY_SUMMARY`.
 */
export const POLICY_SUMMARY = 0x80

/** Protocol of a policy key: a number (0 = any) or a name. */
export type PolicyProtocol = number | 'ANY' | 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ICMPV6'

/**
 * A policy map key as @membrane/policy's map state writes it (structurally typed: this package
 * does not import the policy package).
 */
export interface PolicyKeyInput {
  /** Remote identity; 0 = any. */
  identity: number
  direction: 'ingress' | 'egress'
  /** 0 / 'ANY' = any protocol (the port is then ignored). */
  protocol: PolicyProtocol
  /** Destination port, 0 = any port. */
  port: number
  /** Port prefix length 0..16 (16 = exactly `port`; smaller covers a range). Default 16. */
  portPrefixLen?: number
}

/** A policy map value as @membrane/policy's map state writes it. */
export interface PolicyValueInput {
  deny: boolean
  /** Non-zero: redirect to the L7 proxy on this port. */
  proxyPort?: number
  l7Parser?: string
  /** 0 = none; non-zero needs an mb_auth entry for the pair of identities. */
  authType?: number
  derivedFrom?: unknown
  /** Allowed, but an audit policy would deny it: verdict events say AUDIT. Default false. */
  audit?: boolean
  /**
   * Id of the policies that produced the entry (0..65535, 0 = none): the kernel copies it into
   * the policy verdict and drop events, and the flow layer resolves it. Default 0.
   */
  ruleSet?: number
}

/** A diff of one endpoint's policy map state. */
export interface PolicyDiffInput {
  upserts?: Iterable<
    { key: PolicyKeyInput; value: PolicyValueInput } | readonly [PolicyKeyInput, PolicyValueInput]
  >
  deletes?: Iterable<PolicyKeyInput | { key: PolicyKeyInput }>
}

/** One entry as read back from the map. */
export interface PolicyMapEntry {
  key: Required<Omit<PolicyKeyInput, 'protocol'>> & { protocol: number }
  deny: boolean
  proxyPort: number
  authType: number
  /** See {@link PolicyValueInput.audit}. */
  audit: boolean
  /** See {@link PolicyValueInput.ruleSet}. */
  ruleSet: number
  /** New connections that matched this entry (both counters are shared by all CPUs). */
  packets: bigint
  bytes: bigint
}

const PROTOCOLS: Record<string, number> = {
  ANY: 0,
  TCP: 6,
  UDP: 17,
  SCTP: 132,
  ICMP: 1,
  ICMPV6: 58,
}

function fail(path: string, expected: string, got: unknown): DatapathError {
  return new DatapathError(
    DatapathErrorCode.INVALID_VALUE,
    `expected ${expected}, got ${describeValue(got)}`,
    { path },
  )
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max
}

interface NormalKey {
  identity: number
  direction: 0 | 1
  protocol: number
  port: number
  portPrefixLen: number
  prefixlen: number
}

/** Validate a key and compute its LPM prefix (the port masked to its prefix). */
function normalizePolicyKey(key: PolicyKeyInput, path = 'key'): NormalKey {
  if (typeof key !== 'object' || key === null) throw fail(path, 'a policy key object', key)
  if (!isUint(key.identity, 0xffffffff))
    throw fail(`${path}.identity`, 'an identity 0..4294967295', key.identity)
  if (key.direction !== 'ingress' && key.direction !== 'egress')
    throw fail(`${path}.direction`, "'ingress' or 'egress'", key.direction)
  const protocol =
    typeof key.protocol === 'string' ? PROTOCOLS[key.protocol.toUpperCase()] : key.protocol
  if (!isUint(protocol, 255))
    throw fail(
      `${path}.protocol`,
      'a protocol number 0..255 or TCP/UDP/SCTP/ICMP/ANY',
      key.protocol,
    )
  if (!isUint(key.port, 0xffff)) throw fail(`${path}.port`, 'a port 0..65535', key.port)
  const plen = key.portPrefixLen ?? 16
  if (!isUint(plen, 16))
    throw fail(`${path}.portPrefixLen`, 'a prefix length 0..16', key.portPrefixLen)
  const direction = key.direction === 'ingress' ? PolicyDirection.INGRESS : PolicyDirection.EGRESS
  if (protocol === 0)
    return {
      identity: key.identity,
      direction,
      protocol: 0,
      port: 0,
      portPrefixLen: 0,
      prefixlen: POLICY_STATIC_PREFIX,
    }
  if (key.port === 0 || plen === 0)
    return {
      identity: key.identity,
      direction,
      protocol,
      port: 0,
      portPrefixLen: 0,
      prefixlen: POLICY_STATIC_PREFIX + 8,
    }
  const mask = (0xffff << (16 - plen)) & 0xffff
  return {
    identity: key.identity,
    direction,
    protocol,
    port: key.port & mask,
    portPrefixLen: plen,
    prefixlen: POLICY_STATIC_PREFIX + 8 + plen,
  }
}

/**
 * The policy entries of one endpoint inside the global LPM policy map (`mb_policy`). Applies
 * @membrane/policy's map-state diffs; never flushes the endpoint to rewrite it.
 *
 * @example
 * const pm = datapath.policyMap(12)
 * pm.apply({ upserts: [{ key: { identity: 256, direction: 'ingress', protocol: 'TCP', port: 80 },
 *                        value: { deny: false } }] })
 */
export class PolicyMap {
  readonly endpointId: number
  readonly #map: MapLike
  readonly #index: MapLike | undefined

  /**
   * @param map the policy LPM trie (`mb_policy`)
   * @param endpointId 1..65535
   * @param index the exact-match index in front of the trie (`mb_policy_fast`), kept in step
   *   with the trie by every write; without it only the trie is written (programs built
   *   with the index would then miss these entries).
   */
  constructor(map: MapLike, endpointId: number, index?: MapLike) {
    if (!isUint(endpointId, 0xffff) || endpointId === 0)
      throw fail('endpointId', 'an endpoint id 1..65535', endpointId)
    this.#map = map
    this.#index = index
    this.endpointId = endpointId
  }

  /** Write one trie entry and its index records (`old`: the trie's value before). */
  #put(kb: Buffer, vb: Buffer, old: Buffer | undefined): void {
    indexPut(this.#index, kb, vb, old)
    this.#map.update(kb, vb)
  }

  /** Delete one trie entry and its index records. */
  #remove(kb: Buffer): boolean {
    if (!this.#map.delete(kb)) {
      // Not in the trie: an index record alone would be stale.
      if (this.#index && kb.readUInt32LE(0) === POLICY_FULL_PREFIX)
        this.#index.delete(fastKeyOf(kb))
      return false
    }
    indexRemove(this.#index, kb)
    return true
  }

  #encodeKey(k: NormalKey): Buffer {
    return policyKeyCodec.encode({
      prefixlen: k.prefixlen,
      endpointId: this.endpointId,
      identity: k.identity,
      direction: k.direction,
      protocol: k.protocol,
      dport: k.port,
    })
  }

  static encodeValue(value: PolicyValueInput, k: NormalKey, path = 'value'): Buffer {
    if (typeof value !== 'object' || value === null)
      throw fail(path, 'a policy value object', value)
    if (typeof value.deny !== 'boolean') throw fail(`${path}.deny`, 'a boolean', value.deny)
    const proxyPort = value.proxyPort ?? 0
    if (!isUint(proxyPort, 0xffff)) throw fail(`${path}.proxyPort`, 'a port 0..65535', proxyPort)
    const authType = value.authType ?? 0
    if (!isUint(authType, 255)) throw fail(`${path}.authType`, 'an auth type 0..255', authType)
    const ruleSet = value.ruleSet ?? 0
    if (!isUint(ruleSet, 0xffff)) throw fail(`${path}.ruleSet`, 'a rule set id 0..65535', ruleSet)
    let flags = value.audit === true && !value.deny ? PolicyEntryFlag.AUDIT : 0
    if (k.protocol === 0) flags |= PolicyEntryFlag.WILDCARD_PROTO | PolicyEntryFlag.WILDCARD_PORT
    else if (k.portPrefixLen === 0) flags |= PolicyEntryFlag.WILDCARD_PORT
    return policyEntryCodec.encode({
      proxyPort: value.deny ? 0 : proxyPort,
      deny: value.deny ? 1 : 0,
      authType,
      flags,
      prefixLen: k.portPrefixLen,
      ruleSet,
      packets: 0n,
      bytes: 0n,
    })
  }

  /**
   * What a map state of one endpoint occupies in the kernel: `entries` in the trie
   * (`mb_policy`, one per distinct key) and `indexRecords` in the exact-match index (`mb_policy_fast`:
   * each full-port entry, plus one summary record per remote identity and direction). Pure: the
   * agent checks a new policy against the maps' capacity with it before writing anything.
   *
   * @example
   * PolicyMap.usage([{ identity: 256, direction: 'ingress', protocol: 'TCP', port: 80 }])
   * // { entries: 1, indexRecords: 2 }
   */
  static usage(keys: Iterable<PolicyKeyInput>): { entries: number; indexRecords: number } {
    const entries = new Set<string>()
    let full = 0
    const summaries = new Set<string>()
    for (const key of keys) {
      const k = normalizePolicyKey(key)
      const id = `${k.identity}/${k.direction}/${k.protocol}/${k.port}/${k.prefixlen}`
      if (entries.has(id)) continue
      entries.add(id)
      if (k.prefixlen === POLICY_FULL_PREFIX) full++
      summaries.add(`${k.identity}/${k.direction}`)
    }
    return { entries: entries.size, indexRecords: full + summaries.size }
  }

  /**
   * Apply a diff: validate everything first (nothing is half-applied on bad input), then
   * write upserts before deletes so that a replaced entry never leaves a gap.
   * Returns how many entries were written and deleted.
   */
  apply(diff: PolicyDiffInput): { upserted: number; deleted: number } {
    const writes: Array<[Buffer, Buffer]> = []
    const removes: Buffer[] = []
    const written = new Set<string>()
    let i = 0
    for (const item of diff.upserts ?? []) {
      const path = `upserts[${i++}]`
      const [key, value] = Array.isArray(item)
        ? (item as readonly [PolicyKeyInput, PolicyValueInput])
        : [(item as { key: PolicyKeyInput }).key, (item as { value: PolicyValueInput }).value]
      const k = normalizePolicyKey(key, `${path}.key`)
      const kb = this.#encodeKey(k)
      writes.push([kb, PolicyMap.encodeValue(value, k, `${path}.value`)])
      written.add(kb.toString('hex'))
    }
    i = 0
    for (const item of diff.deletes ?? []) {
      const path = `deletes[${i++}]`
      const key =
        'key' in (item as object) && !('identity' in (item as object))
          ? (item as { key: PolicyKeyInput }).key
          : (item as PolicyKeyInput)
      const kb = this.#encodeKey(normalizePolicyKey(key, path))
      // A key both deleted and upserted in one diff (same LPM key) stays.
      if (!written.has(kb.toString('hex'))) removes.push(kb)
    }
    for (const [k, v] of writes) {
      // Keep the hit counters of an entry that is rewritten with the same verdict.
      const old = exactLookup(this.#map, k)
      if (old?.subarray(0, 8).equals(v.subarray(0, 8)) && indexHas(this.#index, k, v)) continue
      this.#put(k, v, old)
    }
    let deleted = 0
    for (const k of removes) if (this.#remove(k)) deleted++
    return { upserted: writes.length, deleted }
  }

  /** Look up the entry stored under exactly this key (no longest-prefix match). */
  get(key: PolicyKeyInput): PolicyMapEntry | undefined {
    const k = normalizePolicyKey(key)
    for (const e of this.entries()) {
      if (
        e.key.identity === k.identity &&
        e.key.direction === key.direction &&
        e.key.protocol === k.protocol &&
        e.key.port === k.port &&
        e.key.portPrefixLen === k.portPrefixLen
      )
        return e
    }
    return undefined
  }

  /** Every entry of this endpoint (walks the global map). */
  entries(): PolicyMapEntry[] {
    const out: PolicyMapEntry[] = []
    for (const kb of this.#rawKeys()) {
      const vb = this.#map.lookup(kb)
      if (!vb) continue
      const k = policyKeyCodec.decode(kb)
      const v = policyEntryCodec.decode(vb)
      // Full-port entries are counted in the index (the programs find them there).
      const fast =
        k.prefixlen === POLICY_FULL_PREFIX ? this.#index?.lookup(fastKeyOf(kb)) : undefined
      if (fast) {
        const fv = policyEntryCodec.decode(fast)
        v.packets += fv.packets
        v.bytes += fv.bytes
      }
      out.push({
        key: {
          identity: k.identity,
          direction: k.direction === PolicyDirection.INGRESS ? 'ingress' : 'egress',
          protocol: k.prefixlen > POLICY_STATIC_PREFIX ? k.protocol : 0,
          port: k.dport,
          portPrefixLen: Math.max(0, k.prefixlen - POLICY_STATIC_PREFIX - 8),
        },
        deny: v.deny !== 0,
        proxyPort: v.proxyPort,
        authType: v.authType,
        audit: (v.flags & PolicyEntryFlag.AUDIT) !== 0,
        ruleSet: v.ruleSet,
        packets: v.packets,
        bytes: v.bytes,
      })
    }
    return out
  }

  #rawKeys(): Buffer[] {
    return this.#map.keys().filter((kb) => kb.readUInt32LE(4) === this.endpointId)
  }

  /** Number of entries of this endpoint. */
  get size(): number {
    return this.#rawKeys().length
  }

  /** Delete every entry of this endpoint (when the endpoint goes away). */
  clear(): number {
    let n = 0
    for (const kb of this.#rawKeys()) if (this.#remove(kb)) n++
    return n
  }

  /**
   * Make the map hold exactly `state` (e.g. after a restart), by diff: entries already
   * right are left alone, others are written, stale ones deleted last.
   */
  reconcile(
    state: Iterable<
      { key: PolicyKeyInput; value: PolicyValueInput } | readonly [PolicyKeyInput, PolicyValueInput]
    >,
  ): { upserted: number; deleted: number } {
    const wanted = new Map<string, [Buffer, Buffer]>()
    let i = 0
    for (const item of state) {
      const path = `state[${i++}]`
      const [key, value] = Array.isArray(item)
        ? (item as readonly [PolicyKeyInput, PolicyValueInput])
        : [(item as { key: PolicyKeyInput }).key, (item as { value: PolicyValueInput }).value]
      const k = normalizePolicyKey(key, `${path}.key`)
      const kb = this.#encodeKey(k)
      wanted.set(kb.toString('hex'), [kb, PolicyMap.encodeValue(value, k, `${path}.value`)])
    }
    let upserted = 0
    for (const [kb, vb] of wanted.values()) {
      const old = exactLookup(this.#map, kb)
      if (old?.subarray(0, 8).equals(vb.subarray(0, 8)) && indexHas(this.#index, kb, vb)) continue
      this.#put(kb, vb, old)
      upserted++
    }
    let deleted = 0
    for (const kb of this.#rawKeys()) {
      if (!wanted.has(kb.toString('hex')) && this.#remove(kb)) deleted++
    }
    return { upserted, deleted }
  }
}

/** A summary count as the u32 of an `mb_policy_any` slot (saturating). */
const u32 = (n: bigint) => Number(n > 0xffffffffn ? 0xffffffffn : n < 0n ? 0n : n)

/** The `mb_policy_any` slot of an endpoint and direction (0 ingress, 1 egress). */
export function policyAnySlot(endpointId: number, direction: number): number {
  return ((endpointId << 1) | (direction & 1)) >>> 0
}

/**
 * The exact-match index (`mb_policy_fast`) with its identity-0 summary records mirrored into
 * `mb_policy_any` (what the programs read for the "any remote" lookup every policy check
 * makes): a MapLike that writes a summary record of identity 0 to both. Pass it wherever the
 * index is wanted (PolicyMap, rebuildPolicyIndex); {@link syncPolicyAny} fills the mirror
 * after opening pins.
 */
export function withPolicyAnyMirror(fast: MapLike, any: MapLike): MapLike {
  const slotOf = (kb: Buffer): Buffer | undefined => {
    const k = policyFastKeyCodec.decode(kb)
    if (k.identity !== 0 || !(k.direction & POLICY_SUMMARY)) return undefined
    return u32Codec.encode(policyAnySlot(k.endpointId, k.direction))
  }
  return {
    info: fast.info,
    lookup: (kb) => fast.lookup(kb),
    keys: () => fast.keys(),
    update(kb, vb, flags) {
      fast.update(kb, vb, flags)
      const slot = slotOf(kb)
      if (!slot) return
      const v = policyEntryCodec.decode(vb)
      any.update(slot, policyAnyCodec.encode({ shorter: u32(v.packets), full: u32(v.bytes) }))
    },
    delete(kb) {
      const slot = slotOf(kb)
      if (slot) any.update(slot, Buffer.alloc(8))
      return fast.delete(kb)
    },
  }
}

/**
 * Rewrite `mb_policy_any` from the identity-0 summary records of `mb_policy_fast` (pins of a
 * version without the mirror; a crash between the two writes). Returns the slots written.
 */
export function syncPolicyAny(fast: MapLike, any: MapLike): number {
  const want = new Map<number, Buffer>()
  for (const kb of fast.keys()) {
    const k = policyFastKeyCodec.decode(kb)
    if (k.identity !== 0 || !(k.direction & POLICY_SUMMARY)) continue
    const vb = fast.lookup(kb)
    if (!vb) continue
    const v = policyEntryCodec.decode(vb)
    want.set(
      policyAnySlot(k.endpointId, k.direction),
      policyAnyCodec.encode({ shorter: u32(v.packets), full: u32(v.bytes) }),
    )
  }
  let n = 0
  for (const [slot, vb] of want) {
    const key = u32Codec.encode(slot)
    if (!any.lookup(key)?.equals(vb)) {
      any.update(key, vb)
      n++
    }
  }
  return n
}

/** The index key of a trie key: the full key itself, or its summary record. */
function fastKeyOf(kb: Buffer): Buffer {
  const k = policyKeyCodec.decode(kb)
  const full = k.prefixlen === POLICY_FULL_PREFIX
  return policyFastKeyCodec.encode({
    endpointId: k.endpointId,
    identity: k.identity,
    direction: full ? k.direction : k.direction | POLICY_SUMMARY,
    protocol: full ? k.protocol : 0,
    dport: full ? k.dport : 0,
  })
}

/** The summary record's key of a trie key. */
function summaryKeyOf(kb: Buffer): Buffer {
  const k = policyKeyCodec.decode(kb)
  return policyFastKeyCodec.encode({
    endpointId: k.endpointId,
    identity: k.identity,
    direction: k.direction | POLICY_SUMMARY,
    protocol: 0,
    dport: 0,
  })
}

const isFull = (kb: Buffer) => kb.readUInt32LE(0) === POLICY_FULL_PREFIX

/** Whether the index already holds what writing (kb, vb) would put there. */
function indexHas(index: MapLike | undefined, kb: Buffer, vb: Buffer): boolean {
  if (!index) return true
  if (!index.lookup(summaryKeyOf(kb))) return false
  if (!isFull(kb)) return true
  return index.lookup(fastKeyOf(kb))?.subarray(0, 8).equals(vb.subarray(0, 8)) ?? false
}

/** A summary record's counts: entries shorter than a full key, and full-port entries. */
function summaryCounts(index: MapLike, sk: Buffer): { shorter: bigint; full: bigint } {
  const cur = index.lookup(sk)
  if (!cur) return { shorter: 0n, full: 0n }
  const v = policyEntryCodec.decode(cur)
  return { shorter: v.packets, full: v.bytes }
}

function writeSummary(index: MapLike, sk: Buffer, c: { shorter: bigint; full: bigint }): void {
  if (c.shorter <= 0n && c.full <= 0n) {
    index.delete(sk)
    return
  }
  index.update(
    sk,
    policyEntryCodec.encode({
      proxyPort: 0,
      deny: 0,
      authType: 0,
      flags: 0,
      prefixLen: 0,
      ruleSet: 0,
      packets: c.shorter > 0n ? c.shorter : 0n,
      bytes: c.full > 0n ? c.full : 0n,
    }),
  )
}

/**
 * Index records for a trie write, made before the trie entry so that the programs never see
 * an entry the summary does not count: a new entry counts in its summary record, a full-port
 * entry is copied (its counters kept when only the counters differ).
 */
function indexPut(index: MapLike | undefined, kb: Buffer, vb: Buffer, old: Buffer | undefined) {
  if (!index) return
  const sk = summaryKeyOf(kb)
  const c = summaryCounts(index, sk)
  if (!old || (c.shorter === 0n && c.full === 0n)) {
    if (isFull(kb)) c.full += 1n
    else c.shorter += 1n
    writeSummary(index, sk, c)
  }
  if (isFull(kb)) {
    const fk = fastKeyOf(kb)
    if (!index.lookup(fk)?.subarray(0, 8).equals(vb.subarray(0, 8))) index.update(fk, vb)
  }
}

/** Index records after a trie entry was deleted. */
function indexRemove(index: MapLike | undefined, kb: Buffer): void {
  if (!index) return
  if (isFull(kb)) index.delete(fastKeyOf(kb))
  const sk = summaryKeyOf(kb)
  const c = summaryCounts(index, sk)
  if (isFull(kb)) c.full -= 1n
  else c.shorter -= 1n
  writeSummary(index, sk, c)
}

/**
 * Rebuild the exact-match index from the trie (all endpoints): after pins written by a version
 * without the index, or to repair it. Returns the number of index records it holds.
 */
export function rebuildPolicyIndex(trie: MapLike, index: MapLike): number {
  const full = new Map<string, [Buffer, Buffer]>()
  const summaries = new Map<string, [Buffer, { shorter: bigint; full: bigint }]>()
  for (const kb of trie.keys()) {
    const sk = summaryKeyOf(kb)
    const hex = sk.toString('hex')
    const c = summaries.get(hex)?.[1] ?? { shorter: 0n, full: 0n }
    if (isFull(kb)) {
      const vb = trie.lookup(kb)
      if (!vb) continue
      full.set(fastKeyOf(kb).toString('hex'), [fastKeyOf(kb), vb])
      c.full += 1n
    } else c.shorter += 1n
    summaries.set(hex, [sk, c])
  }
  for (const [sk, c] of summaries.values()) {
    const cur = index.lookup(sk)
    const now = cur ? policyEntryCodec.decode(cur) : undefined
    if (now?.packets !== c.shorter || now?.bytes !== c.full) writeSummary(index, sk, c)
  }
  for (const [fk, vb] of full.values())
    if (!index.lookup(fk)?.subarray(0, 8).equals(vb.subarray(0, 8))) index.update(fk, vb)
  for (const fk of index.keys()) {
    const hex = fk.toString('hex')
    if (!summaries.has(hex) && !full.has(hex)) index.delete(fk)
  }
  return summaries.size + full.size
}

/**
 * The trie's value stored under exactly this key: a trie lookup is a longest-prefix match, so
 * a shorter entry covering the key is told apart by the prefix its value records.
 */
function exactLookup(trie: MapLike, kb: Buffer): Buffer | undefined {
  const vb = trie.lookup(kb)
  if (!vb) return undefined
  const v = policyEntryCodec.decode(vb)
  const prefix =
    v.flags & PolicyEntryFlag.WILDCARD_PROTO
      ? POLICY_STATIC_PREFIX
      : v.flags & PolicyEntryFlag.WILDCARD_PORT
        ? POLICY_STATIC_PREFIX + 8
        : POLICY_STATIC_PREFIX + 8 + v.prefixLen
  return prefix === kb.readUInt32LE(0) ? vb : undefined
}
