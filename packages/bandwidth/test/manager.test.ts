import { describe, expect, it } from 'vitest'
import {
  BANDWIDTH_MODE,
  BandwidthManager,
  type FqSupport,
  planEgressQdisc,
  type ThrottleMapLike,
} from '../src/host'
import {
  decodeThrottleKey,
  EGRESS_BANDWIDTH_ANNOTATION,
  encodeThrottleKey,
  INGRESS_BANDWIDTH_ANNOTATION,
} from '../src/index'

/** An in-memory stand-in for the BPF hash map (same byte-level interface). */
class FakeMap implements ThrottleMapLike {
  readonly data = new Map<string, Buffer>()
  lookup(key: Buffer) {
    const v = this.data.get(key.toString('hex'))
    return v ? Buffer.from(v) : undefined
  }
  update(key: Buffer, value: Buffer) {
    this.data.set(key.toString('hex'), Buffer.from(value))
  }
  delete(key: Buffer) {
    return this.data.delete(key.toString('hex'))
  }
  keys() {
    return [...this.data.keys()].map((k) => Buffer.from(k, 'hex'))
  }
  decodedKeys() {
    return this.keys().map((k) => decodeThrottleKey(k))
  }
}

const NO_FQ: FqSupport = {
  fq: false,
  horizon: false,
  mq: false,
  detail: 'tc qdisc add ... fq: Error: Specified qdisc kind is unknown.',
}
const WITH_FQ: FqSupport = { fq: true, horizon: true, mq: true, detail: 'fq available' }

describe('BandwidthManager (fake map)', () => {
  it('without sch_fq: token-bucket mode, egress entries police, no shaping claimed', async () => {
    const map = new FakeMap()
    const bw = await BandwidthManager.create({ map, fq: NO_FQ })
    bw.applyAnnotations(42, { [EGRESS_BANDWIDTH_ANNOTATION]: '10M' })
    const s = bw.status()
    expect(s.mode).toBe('token-bucket (kernel lacks sch_fq)')
    expect(s.mode).toBe(BANDWIDTH_MODE.tokenBucket)
    expect(s.egress).toBe('token-bucket-policing')
    expect(s.shaping).toBe(false)
    expect(s.summary).toMatch(/NOT active because the kernel lacks sch_fq/)
    expect(bw.entry(42, 'egress')).toMatchObject({ bytesPerSecond: 1_250_000n, mode: 'police' })
    expect(await bw.prepareEgressDevice('eth0')).toBe(false)
    expect(bw.status().fqDevices).toEqual([])
  })

  it('with sch_fq: edt+fq mode, EDT entries, but no shaping until fq is on a device', async () => {
    const bw = await BandwidthManager.create({ map: new FakeMap(), fq: WITH_FQ })
    bw.setEndpoint(1, { egress: 1000, ingress: 2000 })
    const s = bw.status()
    expect(s.mode).toBe('edt+fq')
    expect(s.shaping).toBe(false)
    expect(s.summary).toMatch(/fq is installed on no device yet/)
    expect(bw.entry(1, 'egress')?.mode).toBe('edt')
    expect(bw.entry(1, 'ingress')?.mode).toBe('police')
  })

  it('writes nothing when an annotation is invalid', async () => {
    const map = new FakeMap()
    const bw = await BandwidthManager.create({ map, fq: NO_FQ })
    expect(() =>
      bw.applyAnnotations(5, {
        [EGRESS_BANDWIDTH_ANNOTATION]: '10M',
        [INGRESS_BANDWIDTH_ANNOTATION]: '10 Mbit',
      }),
    ).toThrow(/kubernetes\.io\/ingress-bandwidth: "10 Mbit"/)
    expect(map.data.size).toBe(0)
    expect(bw.status().endpoints).toBe(0)
  })

  it('keeps counters and state when a limit changes, deletes dropped directions', async () => {
    const map = new FakeMap()
    const bw = await BandwidthManager.create({ map, fq: NO_FQ })
    bw.setEndpoint(9, { egress: 1000, ingress: 1000 })
    const key = [...map.data.keys()][0] as string
    const v = map.data.get(key) as Buffer
    v.writeBigUInt64LE(77n, 56) // drops, as the BPF side would count them
    bw.setEndpoint(9, { egress: 5000 })
    expect(map.decodedKeys()).toEqual([{ endpointId: 9, direction: 'egress' }])
    expect(bw.entry(9, 'egress')).toMatchObject({ bytesPerSecond: 5000n, drops: 77n })
    bw.removeEndpoint(9)
    expect(map.data.size).toBe(0)
    expect(bw.status().endpoints).toBe(0)
  })

  it('validates device names before running anything', async () => {
    const bw = await BandwidthManager.create({ map: new FakeMap(), fq: WITH_FQ })
    await expect(bw.prepareEgressDevice('eth0; rm -rf /')).rejects.toThrow(/not an interface name/)
    await expect(bw.prepareEgressDevice('../x')).rejects.toThrow(/not an interface name/)
  })
})

describe('BandwidthManager restart and reconcile', () => {
  it('adopts entries of a pinned map after a restart and switches egress to this kernel’s mode', async () => {
    const map = new FakeMap()
    const withFq = await BandwidthManager.create({ map, fq: WITH_FQ })
    withFq.setEndpoint(3, { egress: 1000, ingress: 500 })
    withFq.setEndpoint(4, { ingress: 700 })
    const restarted = await BandwidthManager.create({ map, fq: NO_FQ })
    expect(restarted.endpoints()).toEqual([3, 4])
    expect(restarted.status().endpoints).toBe(2)
    expect(restarted.entry(3, 'egress')).toMatchObject({ bytesPerSecond: 1000n, mode: 'police' })
    expect(restarted.entry(3, 'ingress')?.mode).toBe('police')
  })

  it('reconciles by difference: removes endpoints not desired, keeps counters of the rest', async () => {
    const map = new FakeMap()
    const bw = await BandwidthManager.create({ map, fq: NO_FQ })
    bw.setEndpoint(1, { egress: 1000 })
    bw.setEndpoint(2, { egress: 1000 })
    const key = encodeThrottleKey({ endpointId: 1, direction: 'egress' })
    const raw = map.lookup(key) as Buffer
    raw.writeBigUInt64LE(5n, 56)
    map.update(key, raw)
    const r = bw.reconcile(
      new Map([
        [1, { egress: 2000 }],
        [3, { ingress: 100 }],
      ]),
    )
    expect(r).toEqual({ set: [1, 3], removed: [2] })
    expect(bw.endpoints()).toEqual([1, 3])
    expect(bw.entry(1, 'egress')).toMatchObject({ bytesPerSecond: 2000n, drops: 5n })
    expect(bw.entry(2, 'egress')).toBeUndefined()
  })

  it('reconcile validates everything before the first write', async () => {
    const map = new FakeMap()
    const bw = await BandwidthManager.create({ map, fq: NO_FQ })
    bw.setEndpoint(1, { egress: 1000 })
    expect(() =>
      bw.reconcile(
        new Map([
          [2, { egress: 1000 }],
          [70000, { egress: 1 }],
        ]),
      ),
    ).toThrow(/endpointId: expected an integer 0\.\.65535, got 70000/)
    expect(bw.endpoints()).toEqual([1])
    expect(map.data.size).toBe(1)
  })
})

describe('planEgressQdisc', () => {
  it('root fq with horizon on a single-queue device', () => {
    expect(planEgressQdisc('eth0', { txQueues: 1, support: WITH_FQ })).toEqual([
      ['qdisc', 'replace', 'dev', 'eth0', 'root', 'fq', 'horizon', '2000000us', 'horizon_drop'],
    ])
  })

  it('mq with one fq leaf per tx queue (hex class ids)', () => {
    const plan = planEgressQdisc('eth1', {
      txQueues: 12,
      support: WITH_FQ,
      horizonNs: 500_000_000n,
    })
    expect(plan[0]).toEqual(['qdisc', 'replace', 'dev', 'eth1', 'root', 'handle', '1:', 'mq'])
    expect(plan).toHaveLength(13)
    expect(plan[12]).toEqual([
      'qdisc',
      'replace',
      'dev',
      'eth1',
      'parent',
      '1:c',
      'fq',
      'horizon',
      '500000us',
      'horizon_drop',
    ])
  })

  it('no horizon arguments where fq lacks them; root fq where mq is missing', () => {
    const old = { fq: true, horizon: false, mq: false, detail: '' }
    expect(planEgressQdisc('eth0', { txQueues: 4, support: old })).toEqual([
      ['qdisc', 'replace', 'dev', 'eth0', 'root', 'fq'],
    ])
  })

  it('refuses without sch_fq (NOT_SUPPORTED), naming the device', () => {
    expect(() => planEgressQdisc('eth0', { txQueues: 1, support: NO_FQ })).toThrow(
      /sch_fq is not available.*eth0/,
    )
  })
})
