/**
 * Real traffic: iperf3 between a "pod" namespace and a "host" namespace over a veth, with
 * bpf-src/bandwidth.c on the host-side veth and the limits written by BandwidthManager, in the
 * mode this kernel supports. Each limited run is compared with an unlimited run in the same test.
 */
import { fileURLToPath } from 'node:url'
import { BpfObject } from '@membrane/bpf-loader-napi'
import { describeKernel, TestNetwork, tempBpffsDir } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { attachPinnedTc, clearTc, createLab, iperf, type Lab } from '../bench/_lab'
import { BANDWIDTH_MODE, BandwidthManager } from '../src/host'
import { EGRESS_BANDWIDTH_ANNOTATION, INGRESS_BANDWIDTH_ANNOTATION } from '../src/index'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const EP = 7
const SECONDS = 6
/**
 * Bounds for goodput / limit. Low: TCP over a policer loses some time to recovery, and goodput
 * excludes headers. High: a bucket refilled during a TCP backoff can hold up to its burst (1 s of
 * traffic), so over a T-second window the mean may exceed the limit by burst/T, plus 3% noise.
 */
const LOW = 0.8
const HIGH = (1 + 1 / SECONDS) * 1.03

describeKernel(
  'bandwidth limits on real traffic (iperf3, veth between namespaces)',
  ['root', 'bpf', 'btf', 'netns', 'tc', 'bpffs', 'bin:iperf3', 'bin:nsenter'],
  () => {
    const net = new TestNetwork()
    let pins: { path: string; remove(): void }
    let obj: BpfObject
    let lab: Lab
    let bw: BandwidthManager

    beforeAll(async () => {
      pins = tempBpffsDir()
      lab = await createLab(net)
      obj = BpfObject.open(`${root}bpf-src/build/bandwidth.o`, { pinRoot: pins.path })
      obj.setGlobal('cfg_endpoint_id', EP)
      await obj.load()
      obj.program('mb_bw_egress').pin(`${pins.path}/mb_bw_egress`)
      obj.program('mb_bw_police').pin(`${pins.path}/mb_bw_police`)
      bw = await BandwidthManager.create({ map: obj.map('mb_throttle') })
    })

    afterAll(async () => {
      if (lab) await clearTc(lab.host, lab.hostIf)
      await net.cleanup()
      obj?.close()
      pins?.remove()
    })

    it('egress 10M: achieved rate near the limit, far below the unlimited run', async () => {
      const free = await iperf(lab.pod, lab.host, lab.hostAddr, { seconds: 3, omit: 1 })
      // Pod egress passes the host-side veth's tc ingress (Cilium's from-container hook).
      await attachPinnedTc(lab.host, lab.hostIf, 'ingress', `${pins.path}/mb_bw_egress`)
      bw.applyAnnotations(EP, { [EGRESS_BANDWIDTH_ANNOTATION]: '10M' })
      const limited = await iperf(lab.pod, lab.host, lab.hostAddr, { seconds: SECONDS, omit: 2 })
      const entry = bw.entry(EP, 'egress')

      const status = bw.status()
      if (!status.fq.fq) {
        expect(status.mode).toBe(BANDWIDTH_MODE.tokenBucket)
        expect(entry?.mode).toBe('police')
      }
      expect(limited.bitsPerSecond).toBeGreaterThan(LOW * 10e6)
      expect(limited.bitsPerSecond).toBeLessThan(HIGH * 10e6)
      expect(free.bitsPerSecond).toBeGreaterThan(5 * limited.bitsPerSecond)
      expect(entry?.drops).toBeGreaterThan(0n)
      process.stderr.write(
        `bandwidth egress: unlimited ${(free.bitsPerSecond / 1e6).toFixed(1)} Mbit/s, ` +
          `limit 10M -> ${(limited.bitsPerSecond / 1e6).toFixed(2)} Mbit/s (${status.mode}), ` +
          `drops ${entry?.drops}\n`,
      )
    }, 60_000)

    it('ingress 20M: the token bucket on the host veth egress holds the pod at its limit', async () => {
      const free = await iperf(lab.host, lab.pod, lab.podAddr, { seconds: 3, omit: 1 })
      await attachPinnedTc(lab.host, lab.hostIf, 'egress', `${pins.path}/mb_bw_police`)
      bw.applyAnnotations(EP, { [INGRESS_BANDWIDTH_ANNOTATION]: '20M' })
      const limited = await iperf(lab.host, lab.pod, lab.podAddr, { seconds: SECONDS, omit: 2 })
      const entry = bw.entry(EP, 'ingress')
      expect(entry?.mode).toBe('police')
      expect(limited.bitsPerSecond).toBeGreaterThan(LOW * 20e6)
      expect(limited.bitsPerSecond).toBeLessThan(HIGH * 20e6)
      expect(free.bitsPerSecond).toBeGreaterThan(5 * limited.bitsPerSecond)
      expect(entry?.drops).toBeGreaterThan(0n)
      // the egress limit was removed by the annotation change
      expect(bw.entry(EP, 'egress')).toBeUndefined()
    }, 60_000)
  },
)
