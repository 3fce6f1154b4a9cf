/**
 * Cost per packet of the BPF enforcement, from BPF_PROG_TEST_RUN with `repeat` (the kernel's
 * own average), for each path: no entry, EDT send-now, EDT delay (tstamp written), EDT horizon
 * drop, token bucket pass, token bucket drop.
 */
import { fileURLToPath } from 'node:url'
import { BpfObject } from '@membrane/bpf-loader-napi'
import { median, reportFigure, tempBpffsDir } from '@membrane/test-utils'
import {
  encodeThrottleKey,
  encodeThrottleValue,
  type ThrottleDirection,
  type ThrottleMode,
  throttleEntry,
} from '../src/index'
import { skbCtx, udpFrame } from '../test/_packet'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const REPEAT = 200_000
const EP = 3
const pins = tempBpffsDir()
const objs: BpfObject[] = []
try {
  const open = async (file: string) => {
    const o = BpfObject.open(`${root}bpf-src/build/tests/${file}`, { pinRoot: pins.path })
    o.setGlobal('cfg_endpoint_id', EP)
    await o.load()
    objs.push(o)
    return o
  }
  const edt = await open('bw_edt.o')
  const tb = await open('bw_tb.o')
  const map = edt.map('mb_throttle')
  const set = (
    direction: ThrottleDirection,
    bytesPerSecond: number | bigint | undefined,
    extra: { mode?: ThrottleMode; horizonNs?: bigint } = {},
  ) => {
    const key = { endpointId: EP, direction }
    if (bytesPerSecond === undefined) {
      map.delete(encodeThrottleKey(key))
      return
    }
    const { value } = throttleEntry({ ...key, bytesPerSecond, ...extra })
    map.update(encodeThrottleKey(key), encodeThrottleValue(value))
  }
  const frame = udpFrame(1500)
  const measure = async (obj: BpfObject, prog: string, path: string, expectRet: number) => {
    const runs: number[] = []
    let retval = 0
    for (let i = 0; i < 5; i++) {
      const r = await obj.program(prog).testRun({ data: frame, ctxIn: skbCtx(), repeat: REPEAT })
      runs.push(r.durationNs)
      retval = r.retval | 0
    }
    if (retval !== expectRet)
      throw new Error(`${path}: expected retval ${expectRet}, got ${retval}`)
    reportFigure({
      name: 'bpf_ns_per_packet',
      value: median(runs),
      unit: 'ns',
      program: prog,
      path,
      repeat: REPEAT,
    })
  }

  set('egress', undefined)
  await measure(edt, 'bw_edt', 'no-entry', 0)
  set('egress', 10n ** 13n) // 10 TB/s: every packet is under the rate
  await measure(edt, 'bw_edt', 'edt-send-now', 0)
  set('egress', 1_500_000_000, { horizonNs: 10n ** 15n }) // 1 µs per packet: always behind t_last
  await measure(edt, 'bw_edt', 'edt-delay-tstamp', 0)
  set('egress', 1000, { horizonNs: 1_000_000n }) // 1.5 s per packet, horizon 1 ms
  await measure(edt, 'bw_edt', 'edt-horizon-drop', -162)
  set('ingress', 10n ** 13n)
  await measure(tb, 'bw_tb', 'tb-pass', 0)
  set('ingress', 1000)
  await measure(tb, 'bw_tb', 'tb-drop', -198)
} finally {
  for (const o of objs) o.close()
  pins.remove()
}
