import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { L7FlowType } from '@membrane/flows'
import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import {
  agentFlags,
  exited,
  followChatter,
  followL7,
  purgeAfterChildren,
  restartScene,
  spawnMembrane,
  testConfig,
  waitFor,
} from './helpers'

const here = import.meta.dirname
const fixture = (name: string) => join(here, 'fixtures', name)

describeKernel('restart safety: kill -9 under traffic', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  const children = new Set<ChildProcess>()
  const startAgent = () => {
    const child = spawnMembrane(['agent', ...agentFlags(config)])
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }
  const inNs = (netns: string, script: string, args: string[]) => {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }
  const connectOnce = async (netns: string, ip: string) =>
    (
      await run('ip', [
        'netns',
        'exec',
        netns,
        process.execPath,
        fixture('connect.mjs'),
        ip,
        '7000',
        '1000',
      ])
    ).stdout.trim()

  afterAll(() => purgeAfterChildren(children, config, cleanupDirs))

  it('keeps open connections, policy and L7 enforcement while the agent is dead, and reconciles on restart', async () => {
    let agent = startAgent()
    await waitFor(agent, /API on/)
    const client = new AgentClient(config.socketPath)
    const status = await client.get<AgentStatus>('/v1/status')
    expect(status.components.datapath?.state, status.components.datapath?.detail).toBe('ok')
    expect(status.components.l7proxy?.state, status.components.l7proxy?.detail).toBe('ok')
    const { server, tie, xw, ds } = await restartScene(client, inNs)
    expect(await connectOnce(tie.netns!, server.ipv4)).toBe('ok')
    expect(await connectOnce(xw.netns!, server.ipv4)).toBe('timeout')

    const chatter = followChatter(inNs(tie.netns!, fixture('chatter.mjs'), [server.ipv4, '7000']))
    await chatter.more(5)
    // Continuous L7 traffic through the proxy: allowed POSTs and denied PUTs, a connection each.
    const loop = inNs(tie.netns!, fixture('l7-loop.mjs'), [`http://${ds.ipv4}`])
    const l7 = followL7(loop)
    await l7.more(5)

    // kill -9: no shutdown code runs at all.
    agent.kill('SIGKILL')
    await exited(agent)
    expect(existsSync(config.socketPath)).toBe(true) // stale socket left behind, as after a crash
    const atKill = l7.tally.allowedOk
    await chatter.more(20) // the open connection keeps working
    expect(await connectOnce(tie.netns!, server.ipv4)).toBe('ok') // new allowed connections too
    expect(await connectOnce(xw.netns!, server.ipv4)).toBe('timeout') // policy still enforced
    await l7.more(20) // L7-allowed requests keep being served by the proxy
    const whileDown = l7.tally.allowedOk - atKill

    // Restart: reconcile by diff from the state directory and the pins; adopt the proxy.
    agent = startAgent()
    await waitFor(agent, /API on/)
    const status2 = await client.get<AgentStatus>('/v1/status')
    expect(status2.components.datapath?.state, status2.components.datapath?.detail).toBe('ok')
    expect(status2.components.l7proxy?.detail).toMatch(/adopted/)
    const eps = await client.get<EndpointView[]>('/v1/endpoints')
    expect(eps.map((e) => [e.name, e.ipv4, e.identity, e.health, e.enforcing])).toEqual([
      ['server', server.ipv4, server.identity, 'ready', true],
      ['tie', tie.ipv4, tie.identity, 'ready', true],
      ['xw', xw.ipv4, xw.identity, 'ready', true],
      ['deathstar', ds.ipv4, ds.identity, 'ready', true],
    ])
    await chatter.more(20) // never interrupted by the restart
    await l7.more(20)
    expect(await connectOnce(xw.netns!, server.ipv4)).toBe('timeout')
    loop.kill('SIGTERM')
    await exited(loop)
    const t = l7.tally
    expect(t.denied403).toBeGreaterThan(0)
    expect({ allowedFailed: t.allowedFailed, deniedLeaked: t.deniedLeaked }).toEqual({
      allowedFailed: 0,
      deniedLeaked: 0,
    })
    // The proxy's records of requests served while the agent was dead reached the new agent.
    const landings = await l7Landings(client)
    expect(landings).toBeGreaterThanOrEqual(whileDown)

    const again = await client.post<{ created: boolean }>('/v1/endpoints', {
      name: 'tie',
      labels: { org: 'empire' },
    })
    expect(again.created).toBe(false)
    agent.kill('SIGTERM')
    await exited(agent)
  }, 120_000)
})

/** How many L7 flows of `POST /v1/request-landing` requests the agent's flow ring holds. */
async function l7Landings(client: AgentClient): Promise<number> {
  let n = 0
  const s = client.stream('/v1/flows?last=100000', (item) => {
    const l7 = (item as { l7?: { type?: number; http?: { url?: string } } }).l7
    if (l7?.type === L7FlowType.REQUEST && l7.http?.url?.includes('/v1/request-landing')) n += 1
  })
  await s.done
  return n
}
