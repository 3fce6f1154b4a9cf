/**
 * `mb_throttle_on` (lib/edt.h): per-endpoint bits of which directions have a throttle entry,
 * with a switch in slot 0, kept by BandwidthManager when given the map (`present`).
 * Unit tests on in-memory maps that record the order of every write, and kernel tests
 * (BPF_PROG_TEST_RUN of bw_tb.o / bw_edt.o) of what the programs do with the bits.
 */
import { fileURLToPath } from 'node:url'
import { BpfObject } from '@membrane/bpf-loader-napi'
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import fc from 'fast-check'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { BandwidthManager, type FqSupport, type ThrottleMapLike } from '../src/host'
import {
  decodeThrottleKey,
  EGRESS_BANDWIDTH_ANNOTATION,
  encodeThrottleKey,
  encodeThrottleValue,
  INGRESS_BANDWIDTH_ANNOTATION,
  type ThrottleDirection,
  throttleEntry,
} from '../src/index'
import { skbCtx, udpFrame } from './_packet'

const NO_FQ: FqSupport = { fq: false, horizon: false, mq: false, detail: 'no sch_fq (test)' }
const BIT: Record<ThrottleDirection, number> = { ingress: 1 << 1, egress: 1 << 2 }

type Op =
  | { map: 'throttle'; op: 'update' | 'delete'; endpointId: number; direction: ThrottleDirection }
  | { map: 'present'; op: 'update'; slot: number; bits: number }

/** The throttle hash and the present array, logging every write in one shared list. */
function maps() {
  const log: Op[] = []
  const throttleData = new Map<string, Buffer>()
  const presentData = new Map<number, number>()
  const throttle: ThrottleMapLike & { data: Map<string, Buffer> } = {
    data: throttleData,
    lookup: (k) => {
      const v = throttleData.get(k.toString('hex'))
      return v ? Buffer.from(v) : undefined
    },
    update(k, v) {
      throttleData.set(k.toString('hex'), Buffer.from(v))
      log.push({ map: 'throttle', op: 'update', ...decodeThrottleKey(k) })
    },
    delete(k) {
      log.push({ map: 'throttle', op: 'delete', ...decodeThrottleKey(k) })
      return throttleData.delete(k.toString('hex'))
    },
    keys: () => [...throttleData.keys()].map((h) => Buffer.from(h, 'hex')),
  }
  const present: ThrottleMapLike & { data: Map<number, number> } = {
    data: presentData,
    lookup(k) {
      const slot = k.readUInt32LE(0)
      if (k.length !== 4 || slot >= 65536) throw new Error(`bad present key ${k.toString('hex')}`)
      const b = Buffer.alloc(4)
      b.writeUInt32LE(presentData.get(slot) ?? 0, 0) // an array: every slot exists
      return b
    },
    update(k, v) {
      if (k.length !== 4 || v.length !== 4) throw new Error('present map takes u32 -> u32')
      const slot = k.readUInt32LE(0)
      presentData.set(slot, v.readUInt32LE(0))
      log.push({ map: 'present', op: 'update', slot, bits: v.readUInt32LE(0) })
    },
    delete() {
      throw new Error('array maps have no delete')
    },
    keys: () =>
      [...presentData.keys()].map((s) => {
        const b = Buffer.alloc(4)
        b.writeUInt32LE(s, 0)
        return b
      }),
  }
  return { log, throttle, present }
}

/** Replay a log: the state of the entries and bits after each write. */
function* replay(log: readonly Op[], start: { entries: Set<string>; bits: Map<number, number> }) {
  const entries = new Set(start.entries)
  const bits = new Map(start.bits)
  for (const op of log) {
    if (op.map === 'throttle') {
      const k = `${op.endpointId}/${op.direction}`
      if (op.op === 'update') entries.add(k)
      else entries.delete(k)
    } else bits.set(op.slot, op.bits)
    yield { op, entries, bits }
  }
}

function expectedBits(throttle: { data: Map<string, Buffer> }, endpointId: number): number {
  let b = 0
  for (const h of throttle.data.keys()) {
    const k = decodeThrottleKey(Buffer.from(h, 'hex'))
    if (k.endpointId === endpointId) b |= BIT[k.direction]
  }
  return b
}

describe('BandwidthManager keeps mb_throttle_on (fake maps)', () => {
  it('bits follow setEndpoint: ingress 1 << 1, egress 1 << 2, each set after its entry is written', async () => {
    const { log, throttle, present } = maps()
    const bw = await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
    expect(present.data.get(0)).toBe(1) // the switch
    log.length = 0
    bw.setEndpoint(7, { egress: 1000 })
    expect(present.data.get(7)).toBe(BIT.egress)
    expect(log).toEqual([
      { map: 'throttle', op: 'update', endpointId: 7, direction: 'egress' },
      // (the absent direction's entry is deleted whether or not it exists)
      { map: 'throttle', op: 'delete', endpointId: 7, direction: 'ingress' },
      { map: 'present', op: 'update', slot: 7, bits: BIT.egress },
    ])
    log.length = 0
    bw.setEndpoint(8, { ingress: 1000 })
    expect(present.data.get(8)).toBe(BIT.ingress)
    log.length = 0
    // Adding a direction: the new entry first, then its bit; the kept bit never drops.
    bw.setEndpoint(7, { egress: 2000, ingress: 500 })
    expect(present.data.get(7)).toBe(BIT.egress | BIT.ingress)
    const ingressWrite = log.findIndex((o) => o.map === 'throttle' && o.direction === 'ingress')
    const bitsWrite = log.findIndex((o) => o.map === 'present' && o.bits === 6)
    expect(ingressWrite).toBeGreaterThanOrEqual(0)
    expect(bitsWrite).toBeGreaterThan(ingressWrite)
    expect(
      log.filter((o) => o.map === 'present' && o.slot === 7 && !(o.bits & BIT.egress)),
    ).toEqual([])
  })

  it('bits of a removed direction are cleared before its entry is deleted', async () => {
    const { log, throttle, present } = maps()
    const bw = await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
    bw.setEndpoint(5, { egress: 1000, ingress: 1000 })
    log.length = 0
    bw.setEndpoint(5, { egress: 1000 })
    const clear = log.findIndex((o) => o.map === 'present' && o.slot === 5 && o.bits === BIT.egress)
    const del = log.findIndex(
      (o) => o.map === 'throttle' && o.op === 'delete' && o.direction === 'ingress',
    )
    expect(clear).toBeGreaterThanOrEqual(0)
    expect(del).toBeGreaterThan(clear)
    expect(present.data.get(5)).toBe(BIT.egress)
    // Swapping directions in one call: clear ingress, delete it; write egress, set it.
    bw.setEndpoint(6, { ingress: 1000 })
    log.length = 0
    bw.setEndpoint(6, { egress: 3000 })
    expect(log).toEqual([
      { map: 'present', op: 'update', slot: 6, bits: 0 },
      { map: 'throttle', op: 'update', endpointId: 6, direction: 'egress' },
      { map: 'throttle', op: 'delete', endpointId: 6, direction: 'ingress' },
      { map: 'present', op: 'update', slot: 6, bits: BIT.egress },
    ])
    log.length = 0
    bw.removeEndpoint(5)
    expect(log).toEqual([
      { map: 'present', op: 'update', slot: 5, bits: 0 },
      { map: 'throttle', op: 'delete', endpointId: 5, direction: 'egress' },
      { map: 'throttle', op: 'delete', endpointId: 5, direction: 'ingress' },
    ])
    expect(present.data.get(5)).toBe(0)
  })

  it('applyAnnotations and reconcile keep the bits; endpoints reconciled away are cleared', async () => {
    const { throttle, present } = maps()
    const bw = await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
    bw.applyAnnotations(11, {
      [EGRESS_BANDWIDTH_ANNOTATION]: '10M',
      [INGRESS_BANDWIDTH_ANNOTATION]: '5M',
    })
    expect(present.data.get(11)).toBe(BIT.egress | BIT.ingress)
    bw.applyAnnotations(11, { [INGRESS_BANDWIDTH_ANNOTATION]: '5M' })
    expect(present.data.get(11)).toBe(BIT.ingress)
    bw.applyAnnotations(11, {})
    expect(present.data.get(11)).toBe(0)
    bw.setEndpoint(12, { egress: 100 })
    bw.setEndpoint(13, { ingress: 100 })
    // An entry another writer left in the map (not known to this manager): reconciled away too.
    throttle.update(
      encodeThrottleKey({ endpointId: 14, direction: 'egress' }),
      encodeThrottleValue(
        throttleEntry({ endpointId: 14, direction: 'egress', bytesPerSecond: 1 }).value,
      ),
    )
    const r = bw.reconcile(
      new Map([
        [13, { egress: 100, ingress: 100 }],
        [15, { ingress: 100 }],
      ]),
    )
    expect(r).toEqual({ set: [13, 15], removed: [12, 14] })
    for (const id of [11, 12, 13, 14, 15])
      expect([id, present.data.get(id) ?? 0]).toEqual([id, expectedBits(throttle, id)])
    expect(present.data.get(13)).toBe(BIT.egress | BIT.ingress)
    expect(present.data.get(15)).toBe(BIT.ingress)
    expect(present.data.get(0)).toBe(1)
  })

  it('create adopts existing entries: their bits are written, then the switch (slot 0 = 1)', async () => {
    const { log, throttle, present } = maps()
    // Entries of an earlier agent that did not keep the bits.
    const old = await BandwidthManager.create({ map: throttle, fq: NO_FQ })
    old.setEndpoint(3, { egress: 1000, ingress: 500 })
    old.setEndpoint(4, { ingress: 700 })
    expect(log.filter((o) => o.map === 'present')).toEqual([])
    log.length = 0
    const bw = await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
    const presentOps = log.filter((o) => o.map === 'present')
    expect(presentOps.at(-1)).toEqual({ map: 'present', op: 'update', slot: 0, bits: 1 })
    expect(presentOps.slice(0, -1)).toEqual(
      expect.arrayContaining([
        { map: 'present', op: 'update', slot: 3, bits: BIT.egress | BIT.ingress },
        { map: 'present', op: 'update', slot: 4, bits: BIT.ingress },
      ]),
    )
    expect(bw.endpoints()).toEqual([3, 4])
    // A restart with the bits already right rewrites only the switch.
    log.length = 0
    await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
    expect(log.filter((o) => o.map === 'present')).toEqual([
      { map: 'present', op: 'update', slot: 0, bits: 1 },
    ])
  })

  it('a throttle map without keys() (nothing can be adopted) leaves the switch off', async () => {
    const { throttle, present } = maps()
    const { keys: _keys, ...noKeys } = throttle
    const bw = await BandwidthManager.create({ map: noKeys, present, fq: NO_FQ })
    expect(present.data.get(0) ?? 0).toBe(0)
    bw.setEndpoint(3, { egress: 1000 })
    expect(present.data.get(3)).toBe(BIT.egress) // bits are still kept
    expect(present.data.get(0) ?? 0).toBe(0)
  })

  it('without `present` the manager writes only the throttle map', async () => {
    const { log, throttle } = maps()
    const bw = await BandwidthManager.create({ map: throttle, fq: NO_FQ })
    bw.setEndpoint(2, { egress: 1000, ingress: 1000 })
    bw.removeEndpoint(2)
    expect(log.every((o) => o.map === 'throttle')).toBe(true)
  })

  it('property: after any sequence the bits equal the entries; in between, a bit is never set without its entry and a kept limit never loses its bit', async () => {
    const limitArb = fc.option(fc.integer({ min: 1, max: 1_000_000 }), { nil: undefined })
    const opArb = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        id: fc.integer({ min: 1, max: 5 }),
        egress: limitArb,
        ingress: limitArb,
      }),
      fc.record({ kind: fc.constant('remove' as const), id: fc.integer({ min: 1, max: 5 }) }),
      fc.record({
        kind: fc.constant('reconcile' as const),
        desired: fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), limitArb, limitArb), {
          maxLength: 4,
        }),
      }),
      fc.record({ kind: fc.constant('restart' as const) }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 25 }), async (ops) => {
        const { log, throttle, present } = maps()
        let bw = await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
        for (const op of ops) {
          const entriesBefore = new Set(
            [...throttle.data.keys()].map((h) => {
              const k = decodeThrottleKey(Buffer.from(h, 'hex'))
              return `${k.endpointId}/${k.direction}`
            }),
          )
          const bitsBefore = new Map(present.data)
          log.length = 0
          const limits = (e?: number, i?: number) => ({
            ...(e !== undefined ? { egress: e } : {}),
            ...(i !== undefined ? { ingress: i } : {}),
          })
          let kept = new Set<string>()
          if (op.kind === 'set') {
            bw.setEndpoint(op.id, limits(op.egress, op.ingress))
            for (const d of ['egress', 'ingress'] as const)
              if (op[d] !== undefined) kept.add(`${op.id}/${d}`)
          } else if (op.kind === 'remove') bw.removeEndpoint(op.id)
          else if (op.kind === 'reconcile') {
            const desired = new Map(op.desired.map(([id, e, i]) => [id, limits(e, i)]))
            bw.reconcile(desired)
            for (const [id, l] of desired)
              for (const d of ['egress', 'ingress'] as const)
                if (l[d] !== undefined) kept.add(`${id}/${d}`)
          } else {
            bw = await BandwidthManager.create({ map: throttle, present, fq: NO_FQ })
            kept = new Set(entriesBefore)
          }
          kept = new Set([...kept].filter((k) => entriesBefore.has(k)))
          for (const { entries, bits } of replay(log, {
            entries: entriesBefore,
            bits: bitsBefore,
          })) {
            for (const [slot, b] of bits) {
              if (slot === 0) continue
              for (const d of ['egress', 'ingress'] as const)
                if (b & BIT[d]) expect(entries.has(`${slot}/${d}`)).toBe(true)
            }
            for (const k of kept) {
              const [id, d] = k.split('/') as [string, ThrottleDirection]
              expect([k, ((bits.get(Number(id)) ?? 0) & BIT[d]) !== 0]).toEqual([k, true])
            }
          }
          for (let id = 1; id <= 5; id++)
            expect([id, present.data.get(id) ?? 0]).toEqual([id, expectedBits(throttle, id)])
          expect(present.data.get(0)).toBe(1)
        }
      }),
      { numRuns: 150 },
    )
  })
})

const root = fileURLToPath(new URL('../../../', import.meta.url))
const DROP_RATE_LIMITED = -198
const EP = 9

describeKernel(
  'mb_throttle_on in the programs (BPF_PROG_TEST_RUN)',
  ['root', 'bpf', 'btf', 'bpffs'],
  () => {
    let pins: { path: string; remove(): void }
    let tbObj: BpfObject // mb_tb_police(EP, ingress)
    let edtObj: BpfObject // mb_edt_sched(EP): egress entry, police mode here

    beforeAll(async () => {
      pins = tempBpffsDir()
      tbObj = BpfObject.open(`${root}bpf-src/build/tests/bw_tb.o`, { pinRoot: pins.path })
      tbObj.setGlobal('cfg_endpoint_id', EP)
      await tbObj.load()
      edtObj = BpfObject.open(`${root}bpf-src/build/tests/bw_edt.o`, { pinRoot: pins.path })
      edtObj.setGlobal('cfg_endpoint_id', EP)
      await edtObj.load()
    })
    afterAll(() => {
      tbObj?.close()
      edtObj?.close()
      pins?.remove()
    })

    const throttle = () => tbObj.map('mb_throttle')
    const present = () => tbObj.map('mb_throttle_on')
    const u32 = (n: number) => {
      const b = Buffer.alloc(4)
      b.writeUInt32LE(n, 0)
      return b
    }
    const setSlot = (slot: number, v: number) => present().update(u32(slot), u32(v))
    /** 1000 B/s with a 1 s bucket: two 400-byte packets fit, the third is over. */
    const put = (direction: ThrottleDirection) => {
      const { key, value } = throttleEntry({
        endpointId: EP,
        direction,
        bytesPerSecond: 1000,
        mode: 'police',
      })
      throttle().update(encodeThrottleKey(key), encodeThrottleValue(value))
    }
    const burst = async (direction: ThrottleDirection, n = 4) => {
      const [obj, prog] = direction === 'ingress' ? [tbObj, 'bw_tb'] : [edtObj, 'bw_edt']
      const out: number[] = []
      for (let i = 0; i < n; i++)
        out.push(
          (await obj.program(prog).testRun({ data: udpFrame(400), ctxIn: skbCtx() })).retval | 0,
        )
      return out
    }
    const ENFORCED = [0, 0, DROP_RATE_LIMITED, DROP_RATE_LIMITED]
    const FREE = [0, 0, 0, 0]

    beforeEach(() => {
      for (const d of ['ingress', 'egress'] as const)
        throttle().delete(encodeThrottleKey({ endpointId: EP, direction: d }))
      setSlot(0, 0)
      setSlot(EP, 0)
    })

    it('the objects share one pinned mb_throttle_on (an array of 65536 u32)', () => {
      expect(present().info).toMatchObject({
        type: 'array',
        keySize: 4,
        valueSize: 4,
        maxEntries: 65536,
      })
      expect(edtObj.map('mb_throttle_on').info.id).toBe(present().info.id)
    })

    for (const direction of ['ingress', 'egress'] as const) {
      it(`${direction}: switch off → enforced without a bit; switch on → only with bit ${BIT[direction]}`, async () => {
        put(direction)
        expect(await burst(direction)).toEqual(ENFORCED) // switch off: every packet looks up
        // Switch on, bit missing: the entry is skipped (not even counted).
        put(direction)
        setSlot(0, 1)
        expect(await burst(direction)).toEqual(FREE)
        const v = throttle().lookup(encodeThrottleKey({ endpointId: EP, direction })) as Buffer
        expect(v.readBigUInt64LE(40)).toBe(0n) // packets
        // The other direction's bit does not enable this one.
        const other = direction === 'ingress' ? 'egress' : 'ingress'
        setSlot(EP, BIT[other])
        expect(await burst(direction)).toEqual(FREE)
        // Its own bit: enforced past the burst.
        setSlot(EP, BIT[direction])
        expect(await burst(direction)).toEqual(ENFORCED)
        // Switch off again: enforced whatever the bits say.
        put(direction)
        setSlot(EP, 0)
        setSlot(0, 0)
        expect(await burst(direction)).toEqual(ENFORCED)
      })
    }

    it('BandwidthManager with `present`: limits are enforced, removed ones are not, and entries of an earlier agent stay enforced once the switch is on', async () => {
      // An earlier agent (no bits) left an ingress entry; the new manager adopts it.
      const old = await BandwidthManager.create({
        map: throttle(),
        fq: NO_FQ,
        burstNs: 1_000_000_000n,
      })
      old.setEndpoint(EP, { ingress: 1000 })
      const bw = await BandwidthManager.create({
        map: throttle(),
        present: present(),
        fq: NO_FQ,
      })
      expect(present().lookup(u32(0))?.readUInt32LE(0)).toBe(1)
      expect(present().lookup(u32(EP))?.readUInt32LE(0)).toBe(BIT.ingress)
      expect(await burst('ingress')).toEqual(ENFORCED)
      expect(await burst('egress')).toEqual(FREE)
      bw.setEndpoint(EP, { egress: 1000 })
      expect(present().lookup(u32(EP))?.readUInt32LE(0)).toBe(BIT.egress)
      expect(await burst('egress')).toEqual(ENFORCED)
      expect(await burst('ingress')).toEqual(FREE)
      bw.removeEndpoint(EP)
      expect(present().lookup(u32(EP))?.readUInt32LE(0)).toBe(0)
      expect(await burst('egress')).toEqual(FREE)
    })
  },
)
