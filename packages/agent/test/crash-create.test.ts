import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openPinnedMap } from '@membrane/bpf-loader-napi'
import { EndpointMap, policyKeyCodec } from '@membrane/datapath'
import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'
import type { EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { CRASH_ENV, CREATE_STEPS } from '../src/internal/crash'
import { isEndpointObjectName } from '../src/internal/names'
import {
  agentFlags,
  exited,
  purgeAfterChildren,
  spawnMembrane,
  testConfig,
  waitFor,
} from './helpers'

/** True while `pid` runs (a zombie waiting for init to reap it has stopped running). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

describeKernel('crash-consistent endpoint creates', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  const children = new Set<ChildProcess>()
  const client = new AgentClient(config.socketPath)
  const startAgent = async (env: Record<string, string> = {}) => {
    const child = spawnMembrane(['agent', ...agentFlags(config)], env)
    children.add(child)
    child.once('exit', () => children.delete(child))
    await waitFor(child, /API on/)
    return child
  }
  const stopAgent = async (child: ChildProcess) => {
    child.kill('SIGTERM')
    await exited(child)
  }

  /** The kernel objects of this agent instance, and the endpoint ids the datapath knows. */
  const kernelObjects = () => {
    const netns = readdirSync('/run/netns').filter((n) =>
      isEndpointObjectName(config.prefix, 'netns', n),
    )
    const links = readdirSync('/sys/class/net').filter((l) =>
      isEndpointObjectName(config.prefix, 'link', l),
    )
    const policyIds = new Set<number>()
    const datapathIds: number[] = []
    if (existsSync(`${config.bpffsRoot}/mb_policy`)) {
      const policy = openPinnedMap(`${config.bpffsRoot}/mb_policy`)
      const byIfindex = openPinnedMap(`${config.bpffsRoot}/mb_endpoints`)
      const byIp = openPinnedMap(`${config.bpffsRoot}/mb_lxc4`)
      try {
        for (const k of policy.keys()) policyIds.add(policyKeyCodec.decode(k).endpointId)
        for (const e of new EndpointMap(byIfindex, byIp).list()) datapathIds.push(e.id)
      } finally {
        policy.close()
        byIfindex.close()
        byIp.close()
      }
    }
    return {
      netns: netns.sort(),
      links: links.sort(),
      policyIds: [...policyIds].sort((a, b) => a - b),
      datapathIds: datapathIds.sort((a, b) => a - b),
    }
  }

  afterAll(() => purgeAfterChildren(children, config, cleanupDirs))

  it('after a kill at any step of a create, a restart leaves the endpoint whole or gone, and no debris', async () => {
    // A committed endpoint whose objects must survive every rollback untouched.
    let agent = await startAgent()
    const keep = (
      await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name: 'keep',
        labels: { app: 'keep' },
      })
    ).endpoint
    await stopAgent(agent)

    for (const step of CREATE_STEPS) {
      agent = await startAgent({ [CRASH_ENV]: step })
      const name = `ep-${step}`
      const answer = await client
        .post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels: { app: 'crash' } })
        .then(
          () => 'answered',
          () => 'no answer',
        )
      await exited(agent)
      expect([answer, agent.signalCode], step).toEqual(['no answer', 'SIGKILL'])

      agent = await startAgent()
      const eps = await client.get<EndpointView[]>('/v1/endpoints')
      const mine = eps.find((e) => e.name === name)
      // Either complete (ready and enforcing) or absent: never half.
      if (mine) expect([mine.health, mine.enforcing], step).toEqual(['ready', true])
      expect(
        eps.map((e) => [e.name, e.health]),
        step,
      ).toContainEqual(['keep', 'ready'])
      // Every namespace, interface and policy entry of the instance belongs to an endpoint.
      const k = kernelObjects()
      expect(k.netns, step).toEqual(eps.map((e) => e.netns!).sort())
      expect(k.links, step).toEqual(eps.map((e) => e.hostIfname).sort())
      const ids = eps.map((e) => e.id).sort((a, b) => a - b)
      expect(k.datapathIds, step).toEqual(ids)
      expect(
        k.policyIds.filter((id) => !ids.includes(id)),
        step,
      ).toEqual([])
      // The name is free again (or the endpoint already whole): the same create succeeds.
      const again = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
        name,
        labels: { app: 'crash' },
      })
      expect([again.endpoint.health, again.endpoint.enforcing], step).toEqual(['ready', true])
      await client.delete(`/v1/endpoints/default/${name}`)
      await stopAgent(agent)
    }
    expect(kernelObjects().netns).toEqual([keep.netns])
  }, 240_000)

  it('`membrane agent cleanup` removes namespaces and interfaces no endpoint owns', async () => {
    const ghost = `${config.prefix}-default-ghost`
    const room = 15 - config.prefix.length - 1
    const host = `${config.prefix}l${'e'.repeat(room)}`
    const peer = `${config.prefix}t${'e'.repeat(room)}`
    await run('ip', ['netns', 'add', ghost])
    await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer])
    expect(kernelObjects().netns).toContain(ghost)
    // The L7 proxy the earlier agents left serving is stopped by cleanup too.
    const proxyPid = Number(
      readFileSync(join(config.stateDir, 'l7proxy.pid'), 'utf8').split(' ')[0],
    )
    expect(running(proxyPid)).toBe(true)
    const cleanup = spawnMembrane(['agent', 'cleanup', ...agentFlags(config)])
    children.add(cleanup)
    await waitFor(cleanup, /removed \d+ endpoint/, 60_000)
    await exited(cleanup)
    expect(cleanup.exitCode).toBe(0)
    const left = kernelObjects()
    expect([left.netns, left.links]).toEqual([[], []])
    expect(running(proxyPid)).toBe(false)
  }, 90_000)
})
