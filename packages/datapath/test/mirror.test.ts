/**
 * The array mirrors of hash maps (internal/mirror.ts: mb_ep_direct, mb_lb4_be_direct,
 * mb_lb_maglev_direct) and the identity-0 policy summary mirror (maps/policy.ts:
 * mb_policy_any), on in-memory maps: write order, ranges, repair after opening pins, and
 * properties over random operation sequences (with and without a "crash" between the two
 * writes of one operation).
 */

import { u32 as u32Codec } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  EndpointMap,
  type EndpointRecord,
  lb4BackendCodec,
  MAGLEV_TABLE_SIZE,
  POLICY_SUMMARY,
  type PolicyKeyInput,
  PolicyMap,
  policyEntryCodec,
  policyFastKeyCodec,
  rebuildPolicyIndex,
  ServiceMaps,
} from '../src'
import { directMirror, syncDirectMirror } from '../src/internal/mirror'
import { policyAnySlot, syncPolicyAny, withPolicyAnyMirror } from '../src/maps/policy'
import { FakeMap } from './_fake-map'

type Op = { map: string; op: 'update' | 'delete'; key: number }

/** A FakeMap that records every write in a shared log and can be made to fail ("crash"). */
class LoggedMap extends FakeMap {
  constructor(
    readonly label: string,
    readonly log: Op[],
    info: ConstructorParameters<typeof FakeMap>[0],
    readonly budget: { writes: number } = { writes: Number.POSITIVE_INFINITY },
  ) {
    super(info)
  }
  #spend(): void {
    if (this.budget.writes <= 0) throw new Error('crash')
    this.budget.writes--
  }
  override update(key: Buffer, value: Buffer, flags?: 'any' | 'noexist' | 'exist'): void {
    this.#spend()
    super.update(key, value, flags)
    this.log.push({ map: this.label, op: 'update', key: key.readUInt32LE(0) })
  }
  override delete(key: Buffer): boolean {
    this.#spend()
    this.log.push({ map: this.label, op: 'delete', key: key.readUInt32LE(0) })
    return super.delete(key)
  }
}

const k32 = (n: number) => u32Codec.encode(n)
const isZero = (b: Buffer | undefined) => !b || b.every((x) => x === 0)

function pair(slots: number, valueSize = 8, budget?: { writes: number }) {
  const log: Op[] = []
  const hash = new LoggedMap('hash', log, { keySize: 4, valueSize }, budget)
  const direct = new LoggedMap(
    'direct',
    log,
    { type: 'array', keySize: 4, valueSize, maxEntries: slots },
    budget,
  )
  return { log, hash, direct, mirror: directMirror(hash, direct) }
}

/** The invariant the programs rely on: in range, the slot is the hash's value, or zero. */
function expectMirrored(hash: FakeMap, direct: FakeMap): void {
  const slots = direct.info.maxEntries
  for (const kb of hash.keys()) {
    const key = kb.readUInt32LE(0)
    if (key < slots) expect([key, direct.lookup(kb)]).toEqual([key, hash.lookup(kb)])
  }
  for (const kb of direct.keys()) {
    if (!hash.lookup(kb))
      expect([kb.readUInt32LE(0), isZero(direct.lookup(kb))]).toEqual([kb.readUInt32LE(0), true])
  }
}

describe('directMirror', () => {
  it('writes the hash before the slot, and clears the slot before deleting from the hash', () => {
    const { log, hash, direct, mirror } = pair(16)
    mirror.update(k32(3), Buffer.alloc(8, 7))
    expect(log).toEqual([
      { map: 'hash', op: 'update', key: 3 },
      { map: 'direct', op: 'update', key: 3 },
    ])
    expect(direct.lookup(k32(3))).toEqual(Buffer.alloc(8, 7))
    log.length = 0
    expect(mirror.delete(k32(3))).toBe(true)
    expect(log).toEqual([
      { map: 'direct', op: 'update', key: 3 },
      { map: 'hash', op: 'delete', key: 3 },
    ])
    expect(direct.lookup(k32(3))).toEqual(Buffer.alloc(8))
    expect(hash.lookup(k32(3))).toBeUndefined()
  })

  it('keys at or beyond the array size live only in the hash', () => {
    const { log, hash, direct, mirror } = pair(16)
    mirror.update(k32(16), Buffer.alloc(8, 1))
    mirror.update(k32(70000), Buffer.alloc(8, 2))
    expect(log.map((o) => o.map)).toEqual(['hash', 'hash'])
    expect(direct.store.size).toBe(0)
    expect(mirror.lookup(k32(70000))).toEqual(Buffer.alloc(8, 2))
    log.length = 0
    expect(mirror.delete(k32(16))).toBe(true)
    expect(log).toEqual([{ map: 'hash', op: 'delete', key: 16 }])
    expect(hash.lookup(k32(16))).toBeUndefined()
    // Reads and the key list are the hash's (the authoritative record).
    expect(mirror.keys()).toEqual([k32(70000)])
    expect(mirror.info).toBe(hash.info)
  })

  it('a write the hash refuses never reaches the slot', () => {
    const { direct, mirror } = pair(16)
    mirror.update(k32(5), Buffer.alloc(8, 1))
    expect(() => mirror.update(k32(5), Buffer.alloc(8, 9), 'noexist')).toThrow(/EEXIST/)
    expect(direct.lookup(k32(5))).toEqual(Buffer.alloc(8, 1))
  })

  it('syncDirectMirror fills missing and different slots, leaves equal ones and out-of-range keys', () => {
    const { hash, direct } = pair(16)
    hash.update(k32(1), Buffer.alloc(8, 1)) // slot missing
    hash.update(k32(2), Buffer.alloc(8, 2)) // slot differs
    direct.update(k32(2), Buffer.alloc(8, 9))
    hash.update(k32(3), Buffer.alloc(8, 3)) // slot equal
    direct.update(k32(3), Buffer.alloc(8, 3))
    hash.update(k32(40), Buffer.alloc(8, 4)) // beyond the array
    const writes = direct.updates
    expect(syncDirectMirror(hash, direct)).toBe(2)
    expect(direct.updates - writes).toBe(2)
    expect(direct.lookup(k32(1))).toEqual(Buffer.alloc(8, 1))
    expect(direct.lookup(k32(2))).toEqual(Buffer.alloc(8, 2))
    expect(direct.lookup(k32(40))).toBeUndefined()
    expect(syncDirectMirror(hash, direct)).toBe(0)
  })

  const opArb = fc.oneof(
    fc.record({
      kind: fc.constant('update' as const),
      key: fc.integer({ min: 0, max: 23 }),
      value: fc.integer({ min: 1, max: 255 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 23 }) }),
  )

  it('property: after any sequence of writes and deletes every slot is the hash value or zero', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const { hash, direct, mirror } = pair(16)
        for (const op of ops) {
          if (op.kind === 'update') mirror.update(k32(op.key), Buffer.alloc(8, op.value))
          else mirror.delete(k32(op.key))
          expectMirrored(hash, direct)
        }
        // Nothing to repair when no write was interrupted.
        expect(syncDirectMirror(hash, direct)).toBe(0)
      }),
    )
  })

  it('property: an operation interrupted between its two writes never leaves a slot the hash lacks; sync repairs the rest', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(opArb, fc.integer({ min: 0, max: 3 })), { maxLength: 60 }),
        (ops) => {
          const budget = { writes: Number.POSITIVE_INFINITY }
          const { hash, direct, mirror } = pair(16, 8, budget)
          for (const [op, allowed] of ops) {
            budget.writes = allowed // 0 or 1: the operation stops before/after its first write
            try {
              if (op.kind === 'update') mirror.update(k32(op.key), Buffer.alloc(8, op.value))
              else mirror.delete(k32(op.key))
            } catch (e) {
              expect((e as Error).message).toBe('crash')
            }
            budget.writes = Number.POSITIVE_INFINITY
            // A slot whose key the hash does not hold is empty, whatever was interrupted.
            for (const kb of direct.keys())
              if (!hash.lookup(kb)) expect(isZero(direct.lookup(kb))).toBe(true)
          }
          syncDirectMirror(hash, direct)
          expectMirrored(hash, direct)
        },
      ),
    )
  })
})

describe('mirrors as the Datapath wires them', () => {
  const EP_SIZE = 48
  const ipOf = (i: number) => `10.0.${(i >> 8) & 255}.${i & 255}`

  /** lib/common.h mb_lookup_endpoint: the slot when its ifindex matches, else the hash. */
  function programEndpoint(hash: FakeMap, direct: FakeMap, ifindex: number) {
    if (ifindex < direct.info.maxEntries) {
      const slot = direct.lookup(k32(ifindex))
      if (slot && slot.readUInt32LE(8) === ifindex) return slot
    }
    return hash.lookup(k32(ifindex))
  }

  it('property: EndpointMap through the mirror — the programs see exactly EndpointMap.get, for ifindexes on both sides of the array', () => {
    const ifindexes = [1, 2, 3, 7, 65535, 65536, 70000, 1 << 20]
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            del: fc.boolean(),
            ifindex: fc.constantFrom(...ifindexes),
            id: fc.integer({ min: 1, max: 6 }),
            identity: fc.integer({ min: 256, max: 300 }),
          }),
          { maxLength: 40 },
        ),
        (ops) => {
          const hash = new FakeMap({ keySize: 4, valueSize: EP_SIZE })
          const direct = new FakeMap({
            type: 'array',
            keySize: 4,
            valueSize: EP_SIZE,
            maxEntries: 65536,
          })
          const eps = new EndpointMap(
            directMirror(hash, direct),
            new FakeMap({ keySize: 4, valueSize: EP_SIZE }),
          )
          for (const op of ops) {
            if (op.del) eps.delete(op.ifindex)
            else {
              const rec: EndpointRecord = {
                id: op.id,
                identity: op.identity,
                ifindex: op.ifindex,
                ip: ipOf(op.ifindex & 0xffff),
                mac: '02:00:00:00:00:01',
              }
              eps.upsert(rec)
            }
            for (const ifindex of ifindexes) {
              const seen = programEndpoint(hash, direct, ifindex)
              const want = eps.get(ifindex)
              expect(seen ? EndpointMap.decode(seen) : undefined).toEqual(want)
            }
          }
          // only ifindexes below 65536 ever get a slot
          for (const kb of direct.keys()) expect(kb.readUInt32LE(0)).toBeLessThan(65536)
          expectMirrored(hash, direct)
        },
      ),
    )
  })

  it('property: ServiceMaps through the mirrors — backend slots (proto 0 = empty) and Maglev slots (backend 0 in slot 0 = empty) follow their hashes', () => {
    const MAGLEV_SLOTS = 3
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            del: fc.boolean(),
            vip: fc.integer({ min: 1, max: 4 }),
            backends: fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { maxLength: 4 }),
            algorithm: fc.constantFrom('maglev' as const, 'random' as const),
          }),
          { maxLength: 12 },
        ),
        (ops) => {
          const backends = new FakeMap({ keySize: 4, valueSize: 8 })
          const beDirect = new FakeMap({
            type: 'array',
            keySize: 4,
            valueSize: 8,
            maxEntries: 65536,
          })
          const maglev = new FakeMap({ keySize: 4, valueSize: MAGLEV_TABLE_SIZE * 4 })
          const mgDirect = new FakeMap({
            type: 'array',
            keySize: 4,
            valueSize: MAGLEV_TABLE_SIZE * 4,
            maxEntries: MAGLEV_SLOTS,
          })
          const svc = new ServiceMaps({
            services: new FakeMap({ keySize: 8, valueSize: 8 }),
            backends: directMirror(backends, beDirect),
            slots: new FakeMap({ keySize: 4, valueSize: 4 }),
            maglev: directMirror(maglev, mgDirect),
          })
          for (const op of ops) {
            const address = `10.96.0.${op.vip}`
            if (op.del) svc.delete(address, 80)
            else
              svc.upsert({
                address,
                port: 80,
                algorithm: op.algorithm,
                backends: op.backends.map((b) => ({ address: `10.0.9.${b}`, port: 8080 })),
              })
            svc.gcBackends(new Set())
            expectMirrored(backends, beDirect)
            expectMirrored(maglev, mgDirect)
            // What the programs read (lib/lb.h) is what the authoritative hashes hold.
            for (const kb of backends.keys()) {
              const slot = beDirect.lookup(kb)
              expect(slot && lb4BackendCodec.decode(slot).proto !== 0).toBe(true)
            }
            for (const kb of mgDirect.keys()) {
              const slot = mgDirect.lookup(kb) as Buffer
              const empty = slot.readUInt32LE(0) === 0
              expect([kb.readUInt32LE(0), empty]).toEqual([
                kb.readUInt32LE(0),
                maglev.lookup(kb) === undefined,
              ])
            }
          }
          for (const s of svc.list())
            if (s.id >= MAGLEV_SLOTS && s.algorithm === 'maglev' && s.backends.length)
              expect(mgDirect.lookup(k32(s.id))).toBeUndefined()
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('mb_policy_any (identity-0 summary mirror)', () => {
  const newTrie = () => new FakeMap({ type: 'lpm_trie', keySize: 20, valueSize: 24 })
  const newIndex = () => new FakeMap({ keySize: 12, valueSize: 24 })
  const newAny = () =>
    new FakeMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 65536 * 2 })

  /** What the slot should be: {shorter, full} of the identity-0 summary record, or zero. */
  function expectedSlot(index: FakeMap, ep: number, dir: 0 | 1): Buffer {
    const rec = index.lookup(
      policyFastKeyCodec.encode({
        endpointId: ep,
        identity: 0,
        direction: dir | POLICY_SUMMARY,
        protocol: 0,
        dport: 0,
      }),
    )
    const out = Buffer.alloc(8)
    if (rec) {
      const v = policyEntryCodec.decode(rec)
      out.writeUInt32LE(Number(v.packets), 0)
      out.writeUInt32LE(Number(v.bytes), 4)
    }
    return out
  }

  const keyArb: fc.Arbitrary<PolicyKeyInput> = fc.record({
    identity: fc.constantFrom(0, 0, 0, 256, 300),
    direction: fc.constantFrom('ingress' as const, 'egress' as const),
    protocol: fc.constantFrom(0, 6, 17),
    port: fc.constantFrom(0, 80, 443, 5000),
    portPrefixLen: fc.constantFrom(16, 16, 12, 0),
  })
  const diffArb = fc.record({
    ep: fc.integer({ min: 1, max: 3 }),
    upserts: fc.array(fc.record({ key: keyArb, value: fc.record({ deny: fc.boolean() }) }), {
      maxLength: 4,
    }),
    deletes: fc.array(keyArb, { maxLength: 4 }),
  })

  it('property: after random PolicyMap.apply diffs each slot (endpoint << 1 | direction) equals the identity-0 summary {shorter, full}, or zero', () => {
    fc.assert(
      fc.property(fc.array(diffArb, { maxLength: 25 }), (diffs) => {
        const trie = newTrie()
        const index = newIndex()
        const any = newAny()
        const mirrored = withPolicyAnyMirror(index, any)
        for (const d of diffs) {
          new PolicyMap(trie, d.ep, mirrored).apply({ upserts: d.upserts, deletes: d.deletes })
          for (const ep of [1, 2, 3])
            for (const dir of [0, 1] as const) {
              const slot = any.lookup(k32(policyAnySlot(ep, dir))) ?? Buffer.alloc(8)
              expect([ep, dir, slot]).toEqual([ep, dir, expectedSlot(index, ep, dir)])
            }
        }
        // Only identity-0 summaries reach the mirror.
        for (const kb of any.keys()) {
          const slot = kb.readUInt32LE(0)
          expect(slot >> 1).toBeGreaterThanOrEqual(1)
          expect(slot >> 1).toBeLessThanOrEqual(3)
        }
        expect(syncPolicyAny(index, any)).toBe(0)
      }),
    )
  })

  it('the slot counts agree with the trie: shorter entries and full-port entries of identity 0', () => {
    const trie = newTrie()
    const index = newIndex()
    const any = newAny()
    const pm = new PolicyMap(trie, 9, withPolicyAnyMirror(index, any))
    pm.apply({
      upserts: [
        {
          key: { identity: 0, direction: 'ingress', protocol: 6, port: 443 },
          value: { deny: false },
        },
        {
          key: { identity: 0, direction: 'ingress', protocol: 6, port: 80 },
          value: { deny: true },
        },
        {
          key: { identity: 0, direction: 'ingress', protocol: 17, port: 0, portPrefixLen: 0 },
          value: { deny: false },
        },
        {
          key: { identity: 256, direction: 'ingress', protocol: 6, port: 22 },
          value: { deny: false },
        },
      ],
    })
    const slot = any.lookup(k32(policyAnySlot(9, 0))) as Buffer
    expect({ shorter: slot.readUInt32LE(0), full: slot.readUInt32LE(4) }).toEqual({
      shorter: 1,
      full: 2,
    })
    expect(any.lookup(k32(policyAnySlot(9, 1)))).toBeUndefined() // no egress entries
    pm.clear()
    expect(any.lookup(k32(policyAnySlot(9, 0)))).toEqual(Buffer.alloc(8))
  })

  it('syncPolicyAny and rebuildPolicyIndex through the mirror restore zeroed or missing slots', () => {
    const trie = newTrie()
    const index = newIndex()
    const any = newAny()
    const pm = new PolicyMap(trie, 4, withPolicyAnyMirror(index, any))
    pm.apply({
      upserts: [
        {
          key: { identity: 0, direction: 'egress', protocol: 6, port: 53 },
          value: { deny: false },
        },
        {
          key: { identity: 0, direction: 'egress', protocol: 0, port: 0 },
          value: { deny: false },
        },
      ],
    })
    const want = any.lookup(k32(policyAnySlot(4, 1))) as Buffer
    expect(want.readUInt32LE(0)).toBe(1)
    expect(want.readUInt32LE(4)).toBe(1)
    // Zeroed by hand (a crash after the index write): the sync rewrites it, once.
    any.update(k32(policyAnySlot(4, 1)), Buffer.alloc(8))
    expect(syncPolicyAny(index, any)).toBe(1)
    expect(any.lookup(k32(policyAnySlot(4, 1)))).toEqual(want)
    expect(syncPolicyAny(index, any)).toBe(0)
    // An index lost altogether (pins of a version without it): the rebuild through the mirror
    // writes the slot with the summary.
    const index2 = newIndex()
    const any2 = newAny()
    rebuildPolicyIndex(trie, withPolicyAnyMirror(index2, any2))
    expect(any2.lookup(k32(policyAnySlot(4, 1)))).toEqual(want)
  })
})
