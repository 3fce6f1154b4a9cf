import { describeKernel, isAlive, TestNetwork } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'
import { BANDWIDTH_MODE, BandwidthManager, probeSchFq, type ThrottleMapLike } from '../src/host'
import { tryExec } from '../src/internal/exec'

const nullMap: ThrottleMapLike = {
  lookup: () => undefined,
  update: () => {},
  delete: () => false,
}

describeKernel('sch_fq detection and status honesty', ['root', 'netns', 'tc'], () => {
  it('sweeps probe namespaces whose process died mid-probe', async () => {
    let dead = 4_000_000
    while (isAlive(dead)) dead++
    const stale = `mbbwprobe-${dead}-1`
    await tryExec('ip', ['netns', 'add', stale])
    try {
      await probeSchFq()
      expect((await tryExec('ip', ['netns', 'list'])).stdout).not.toContain(stale)
    } finally {
      await tryExec('ip', ['netns', 'del', stale])
    }
  })

  const net = new TestNetwork()
  afterAll(() => net.cleanup())

  it('the probe agrees with a direct attempt on a test veth, and leaves no namespace', async () => {
    const support = await probeSchFq()
    const after = (await tryExec('ip', ['netns', 'list'])).stdout
    expect(after).not.toContain(`mbbwprobe-${process.pid}-`)

    // Independent check, on a throwaway veth in a test namespace (never a host device).
    const ns = await net.namespace()
    const pair = await net.veth({ nsA: ns, nsB: ns })
    const direct = await tryExec('tc', ['-n', ns.name, 'qdisc', 'add', 'dev', pair.a, 'root', 'fq'])
    expect(support.fq).toBe(direct.ok)
    if (!support.fq) expect(support.detail).toMatch(/fq/)

    // The status says what is true: edt+fq only when fq really works.
    const bw = await BandwidthManager.create({ map: nullMap, fq: support })
    expect(bw.status().mode).toBe(direct.ok ? BANDWIDTH_MODE.edt : BANDWIDTH_MODE.tokenBucket)
    expect(bw.status().shaping).toBe(false)
    if (direct.ok) {
      expect(await bw.prepareEgressDevice(pair.b, { netns: ns.name, txQueues: 1 })).toBe(true)
      const shown = await tryExec('tc', ['-n', ns.name, 'qdisc', 'show', 'dev', pair.b])
      expect(shown.stdout).toMatch(/qdisc fq/)
      expect(bw.status().shaping).toBe(true)
    } else {
      expect(bw.status().mode).toBe('token-bucket (kernel lacks sch_fq)')
      expect(await bw.prepareEgressDevice(pair.b, { netns: ns.name })).toBe(false)
      const shown = await tryExec('tc', ['-n', ns.name, 'qdisc', 'show', 'dev', pair.b])
      expect(shown.stdout).not.toMatch(/qdisc fq /)
    }
  })
})
