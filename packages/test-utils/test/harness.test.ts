import { existsSync } from 'node:fs'
import { afterAll, expect, it } from 'vitest'
import {
  describeKernel,
  ownerPid,
  run,
  startEtcd,
  sweepLeftovers,
  TestNetwork,
  uniqueName,
} from '../src/index'

describeKernel('network namespaces and veth', ['netns'], () => {
  const net = new TestNetwork()
  afterAll(() => net.cleanup())

  it('a namespace pair joined by a veth passes a ping, and is gone after cleanup', async () => {
    const scope = new TestNetwork()
    const a = await scope.namespace()
    const b = await scope.namespace()
    const pair = await scope.veth({
      nsA: a,
      nsB: b,
      addrA: '10.231.0.1/24',
      addrB: '10.231.0.2/24',
    })
    const { stdout } = await a.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', pair.addrB!])
    expect(stdout).toMatch(/2 received/)

    await scope.cleanup()
    expect(existsSync(`/run/netns/${a.name}`)).toBe(false)
    expect(existsSync(`/run/netns/${b.name}`)).toBe(false)
    const links = await run('ip', ['-o', 'link', 'show'])
    expect(links.stdout).not.toContain(pair.a)
  })

  it('a host-side veth end is deleted on cleanup', async () => {
    const scope = new TestNetwork()
    const ns = await scope.namespace()
    const pair = await scope.veth({ nsB: ns, addrA: '10.232.0.1/24', addrB: '10.232.0.2/24' })
    const { stdout } = await run('ping', ['-c', '1', '-W', '2', pair.addrB!])
    expect(stdout).toMatch(/1 received/)
    await scope.cleanup()
    await expect(run('ip', ['link', 'show', pair.a])).rejects.toThrow(/does not exist/)
  })

  it('veth indexA gives end A that ifindex (a bad one is refused before anything is made)', async () => {
    const scope = new TestNetwork()
    try {
      const index = 90000 + Math.floor(Math.random() * 400000)
      const pair = await scope.veth({ indexA: index })
      const { stdout } = await run('cat', [`/sys/class/net/${pair.a}/ifindex`])
      expect(Number(stdout.trim())).toBe(index)
      await expect(scope.veth({ indexA: 0 })).rejects.toThrow(/indexA/)
      await expect(scope.veth({ indexA: 1.5 })).rejects.toThrow(/indexA/)
    } finally {
      await scope.cleanup()
    }
  })

  it('processes spawned in a namespace are killed on cleanup', async () => {
    const scope = new TestNetwork()
    const ns = await scope.namespace()
    const child = ns.spawn('sleep', ['30'])
    await new Promise((r) => child.once('spawn', r))
    await scope.cleanup()
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true)
  })

  it('the sweep removes leftovers whose owner process is gone, and keeps live ones', async () => {
    const live = await net.namespace()
    // A name owned by a pid that cannot exist (above pid_max) stands in for a crashed run.
    const dead = `mbt${(4_194_305).toString(36)}x1`
    expect(ownerPid(dead)).toBe(4_194_305)
    await run('ip', ['netns', 'add', dead])
    const report = sweepLeftovers()
    expect(report.namespaces).toContain(dead)
    expect(existsSync(`/run/netns/${dead}`)).toBe(false)
    expect(existsSync(`/run/netns/${live.name}`)).toBe(true)
  })
})

describeKernel('etcd-server', ['etcd'], () => {
  it('starts on a free loopback port, answers a put/get, and stops', async () => {
    const etcd = await startEtcd()
    try {
      const key = Buffer.from(`membrane-test/${uniqueName()}`).toString('base64')
      const value = Buffer.from('hello').toString('base64')
      const put = await fetch(`${etcd.endpoint}/v3/kv/put`, {
        method: 'POST',
        body: JSON.stringify({ key, value }),
      })
      expect(put.status).toBe(200)
      const get = await fetch(`${etcd.endpoint}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key }),
      })
      const body = (await get.json()) as { kvs?: { value: string }[] }
      expect(Buffer.from(body.kvs?.[0]?.value ?? '', 'base64').toString()).toBe('hello')
    } finally {
      await etcd.stop()
    }
    expect(etcd.running).toBe(false)
    expect(existsSync(etcd.dataDir)).toBe(false)
    await expect(fetch(`${etcd.endpoint}/health`)).rejects.toThrow()
  })

  it('survives kill and restart with its data', async () => {
    const etcd = await startEtcd()
    try {
      const key = Buffer.from('k').toString('base64')
      await fetch(`${etcd.endpoint}/v3/kv/put`, {
        method: 'POST',
        body: JSON.stringify({ key, value: Buffer.from('v').toString('base64') }),
      })
      await etcd.kill()
      expect(etcd.running).toBe(false)
      await etcd.restart()
      const get = await fetch(`${etcd.endpoint}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key }),
      })
      const body = (await get.json()) as { kvs?: { value: string }[] }
      expect(Buffer.from(body.kvs?.[0]?.value ?? '', 'base64').toString()).toBe('v')
    } finally {
      await etcd.stop()
    }
  })
})
