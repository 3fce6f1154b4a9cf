// How long the kernel test harness takes to give a test a namespace pair joined by a veth, and to
// take it away again: the fixed cost every kernel test pays.
import { median, percentile, reportFigure, sample, startEtcd, TestNetwork } from '../src/index'

const setup: number[] = []
const teardown: number[] = []
for (let i = 0; i < 12; i++) {
  const net = new TestNetwork()
  const t0 = process.hrtime.bigint()
  const a = await net.namespace()
  const b = await net.namespace()
  await net.veth({ nsA: a, nsB: b, addrA: '10.250.0.1/30', addrB: '10.250.0.2/30' })
  const t1 = process.hrtime.bigint()
  await net.cleanup()
  const t2 = process.hrtime.bigint()
  if (i >= 2) {
    setup.push(Number(t1 - t0) / 1e6)
    teardown.push(Number(t2 - t1) / 1e6)
  }
}
reportFigure({
  name: 'netns_pair_veth_setup',
  value: median(setup),
  unit: 'ms',
  p95: percentile(setup, 95),
  samples: setup.length,
})
reportFigure({
  name: 'netns_pair_veth_teardown',
  value: median(teardown),
  unit: 'ms',
  p95: percentile(teardown, 95),
  samples: teardown.length,
})

const etcdStart = await sample(
  async () => {
    const etcd = await startEtcd()
    await etcd.stop()
  },
  { samples: 3, warmup: 0 },
)
reportFigure({
  name: 'etcd_start_stop',
  value: median(etcdStart),
  unit: 'ms',
  samples: etcdStart.length,
})
