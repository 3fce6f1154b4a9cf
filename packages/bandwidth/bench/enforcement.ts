/**
 * Bandwidth enforcement side by side, in one run, at the same 100 Mbit/s limit:
 *  - `tbf`: the bandwidth CNI plugin's approach, a tbf qdisc on the host-side veth
 *    (rate 100mbit, latency 25ms, burst = 1 s of traffic like ours);
 *  - `bpf-token-bucket`: this package's mode on this kernel (no sch_fq), bandwidth.c's token
 *    bucket on the same veth;
 *  - `edt+fq` is measured only where sch_fq exists; otherwise a figure says it was not measured.
 * Figures: achieved TCP goodput (iperf3, warm-up omitted) and its ratio to the limit, and the p99
 * latency of a concurrent request/response flow while the bulk flow runs.
 */
import { fileURLToPath } from 'node:url'
import { BpfObject } from '@membrane/bpf-loader-napi'
import {
  median,
  percentile,
  reportFigure,
  run,
  TestNetwork,
  tempBpffsDir,
} from '@membrane/test-utils'
import { BandwidthManager, probeSchFq } from '../src/host'
import { encodeThrottleKey, encodeThrottleValue, throttleEntry } from '../src/index'
import { attachPinnedTc, clearTc, createLab, iperf, type Lab, requestResponse } from './_lab'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const LIMIT = 100_000_000 // bit/s
const SECONDS = Number(process.env.MEMBRANE_BW_SECONDS ?? 12)
const OMIT = 2
const EP = 9

async function loaded(lab: Lab, label: string, direction: 'pod-ingress' | 'pod-egress') {
  // Bulk and request/response flows both cross the limiter in the same direction (host -> pod
  // for pod-ingress, pod -> host for pod-egress); the RR client measures while the bulk flow is
  // measured.
  const [from, to, toAddr] =
    direction === 'pod-ingress'
      ? [lab.host, lab.pod, lab.podAddr]
      : [lab.pod, lab.host, lab.hostAddr]
  const [bulk, rr] = await Promise.all([
    iperf(from, to, toAddr, { seconds: SECONDS + OMIT, omit: OMIT }),
    (async () => {
      await new Promise((r) => setTimeout(r, OMIT * 1000))
      return requestResponse(from, to, toAddr, { seconds: SECONDS - 1 })
    })(),
  ])
  const common = { mode: label, direction, limitBitsPerSecond: LIMIT, seconds: SECONDS }
  reportFigure({
    name: 'tcp_goodput',
    value: Math.round(bulk.bitsPerSecond),
    unit: 'bit/s',
    ...common,
  })
  reportFigure({
    name: 'tcp_goodput_vs_limit',
    value: Number((bulk.bitsPerSecond / LIMIT).toFixed(4)),
    unit: 'ratio',
    note: 'goodput; the limit counts wire bytes (Ethernet+IP+TCP headers), ~0.956 at MTU 1500',
    retransmits: bulk.retransmits,
    ...common,
  })
  reportFigure({
    name: 'rr_latency_p50_under_load',
    value: round(median(rr)),
    unit: 'us',
    samples: rr.length,
    ...common,
  })
  reportFigure({
    name: 'rr_latency_p99_under_load',
    value: round(percentile(rr, 99)),
    unit: 'us',
    samples: rr.length,
    ...common,
  })
}

function round(x: number): number {
  return Math.round(x * 10) / 10
}

const net = new TestNetwork()
const pins = tempBpffsDir()
let obj: BpfObject | undefined
try {
  const fq = await probeSchFq()
  const lab = await createLab(net)

  // Baselines: no limit at all.
  const free = await iperf(lab.host, lab.pod, lab.podAddr, { seconds: 3, omit: 1 })
  reportFigure({
    name: 'tcp_goodput',
    value: Math.round(free.bitsPerSecond),
    unit: 'bit/s',
    mode: 'unlimited',
  })
  const idle = await requestResponse(lab.host, lab.pod, lab.podAddr, { seconds: 3 })
  reportFigure({
    name: 'rr_latency_p99_idle',
    value: round(percentile(idle, 99)),
    unit: 'us',
    mode: 'unlimited',
  })

  // 1. The bandwidth CNI plugin's approach: tbf on the host-side veth.
  const burstBytes = String(LIMIT / 8)
  await run('tc', [
    '-n',
    lab.host.name,
    'qdisc',
    'add',
    'dev',
    lab.hostIf,
    'root',
    'tbf',
    'rate',
    `${LIMIT}bit`,
    'burst',
    burstBytes,
    'latency',
    '25ms',
  ])
  await loaded(lab, 'tbf', 'pod-ingress')
  await clearTc(lab.host, lab.hostIf)

  // 2. This package on this kernel.
  obj = BpfObject.open(`${root}bpf-src/build/bandwidth.o`, { pinRoot: pins.path })
  obj.setGlobal('cfg_endpoint_id', EP)
  await obj.load()
  obj.program('mb_bw_police').pin(`${pins.path}/police`)
  const bw = await BandwidthManager.create({ map: obj.map('mb_throttle'), fq })
  const status = bw.status()
  bw.setEndpoint(EP, { ingress: LIMIT / 8 })
  await attachPinnedTc(lab.host, lab.hostIf, 'egress', `${pins.path}/police`)
  await loaded(lab, 'bpf-token-bucket', 'pod-ingress')
  const entry = bw.entry(EP, 'ingress')
  reportFigure({
    name: 'bpf_token_bucket_drops',
    value: Number(entry?.drops ?? 0n),
    unit: 'packets',
    mode: 'bpf-token-bucket',
  })
  await clearTc(lab.host, lab.hostIf)

  // 2b. Pod egress. The CNI plugin redirects the host veth's ingress to an ifb device and puts
  // tbf there; this package polices at the same hook (or stamps EDT where fq exists).
  const ifb = `${lab.hostIf.slice(0, 11)}ifb`
  await run('ip', ['-n', lab.host.name, 'link', 'add', ifb, 'type', 'ifb'])
  await run('ip', ['-n', lab.host.name, 'link', 'set', ifb, 'up'])
  await run('tc', [
    '-n',
    lab.host.name,
    'qdisc',
    'add',
    'dev',
    lab.hostIf,
    'handle',
    'ffff:',
    'ingress',
  ])
  await run('tc', [
    '-n',
    lab.host.name,
    'filter',
    'add',
    'dev',
    lab.hostIf,
    'parent',
    'ffff:',
    'protocol',
    'all',
    'u32',
    'match',
    'u32',
    '0',
    '0',
    'action',
    'mirred',
    'egress',
    'redirect',
    'dev',
    ifb,
  ])
  await run('tc', [
    '-n',
    lab.host.name,
    'qdisc',
    'add',
    'dev',
    ifb,
    'root',
    'tbf',
    'rate',
    `${LIMIT}bit`,
    'burst',
    burstBytes,
    'latency',
    '25ms',
  ])
  await loaded(lab, 'tbf', 'pod-egress')
  await run('tc', ['-n', lab.host.name, 'qdisc', 'del', 'dev', lab.hostIf, 'ingress']).catch(
    () => {},
  )
  await run('ip', ['-n', lab.host.name, 'link', 'del', ifb]).catch(() => {})

  obj.program('mb_bw_egress').pin(`${pins.path}/egress`)
  bw.setEndpoint(EP, { egress: LIMIT / 8 })
  await attachPinnedTc(lab.host, lab.hostIf, 'ingress', `${pins.path}/egress`)
  await loaded(lab, status.fq.fq ? 'edt (no fq on this device)' : 'bpf-token-bucket', 'pod-egress')
  await clearTc(lab.host, lab.hostIf)

  // 3. EDT + fq, only where the kernel can pace: the program stamps departure times at the host
  // veth's tc egress (before the qdisc) and fq, installed as that veth's root qdisc, releases
  // packets at those times (pod-ingress direction, so the same path as the tbf run above).
  // NOTE: this branch has not run on the development kernel, which lacks sch_fq.
  if (status.fq.fq) {
    const edt = await BandwidthManager.create({ map: obj.map('mb_throttle'), fq })
    await edt.prepareEgressDevice(lab.hostIf, { netns: lab.host.name, txQueues: 1 })
    const { key, value } = throttleEntry({
      endpointId: EP,
      direction: 'egress',
      bytesPerSecond: LIMIT / 8,
      mode: 'edt',
    })
    obj.map('mb_throttle').update(encodeThrottleKey(key), encodeThrottleValue(value))
    await attachPinnedTc(lab.host, lab.hostIf, 'egress', `${pins.path}/egress`)
    await loaded(lab, 'edt+fq', 'pod-ingress')
    await clearTc(lab.host, lab.hostIf)
  }
  reportFigure({
    name: 'edt_fq_measured',
    value: status.fq.fq ? 1 : 0,
    unit: 'bool',
    mode: status.mode,
    reason: status.fq.fq
      ? 'EDT+fq measured (figures with mode "edt+fq")'
      : `EDT could not be measured: the kernel lacks sch_fq (${status.fq.detail})`,
  })
} finally {
  obj?.close()
  await net.cleanup()
  pins.remove()
}
