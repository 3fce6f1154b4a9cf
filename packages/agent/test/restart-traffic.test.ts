import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describeKernel, killAndWait, run } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { startDaemon } from '../src/daemon'
import { agentFlags, testConfig, waitFor } from './helpers'

const here = import.meta.dirname
const bin = join(here, '..', 'src', 'bin.ts')
const fixture = (name: string) => join(here, 'fixtures', name)

const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: only-empire
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: server
  ingress:
    - fromEndpoints:
        - matchLabels:
            org: empire
      toPorts:
        - ports:
            - port: "7000"
              protocol: TCP
`

/** Follows a chatter.mjs child: the latest echo count, and a wait for `n` more echoes. */
function follow(child: ChildProcess) {
  let count = 0
  let closed = ''
  const waiters = new Set<() => void>()
  child.stdout?.on('data', (c: Buffer) => {
    for (const m of c.toString().matchAll(/echoed (\d+)|(closed|error \S+)/g)) {
      if (m[1]) count = Number(m[1])
      if (m[2]) closed = m[2]
    }
    for (const w of waiters) w()
  })
  return {
    get count() {
      return count
    },
    more(n: number, ms = 10_000): Promise<number> {
      const target = count + n
      return new Promise((resolve, reject) => {
        const check = () => {
          if (count >= target) {
            waiters.delete(check)
            clearTimeout(timer)
            resolve(count)
          } else if (closed) {
            waiters.delete(check)
            clearTimeout(timer)
            reject(new Error(`connection ${closed} at ${count} echoes`))
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`only ${count} of ${target} echoes within ${ms} ms`))
        }, ms)
        waiters.add(check)
        check()
      })
    },
  }
}

describeKernel('restart safety: kill -9 under traffic', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  const children = new Set<ChildProcess>()
  const startAgent = () => {
    const child = spawn(
      process.execPath,
      ['--conditions=@membrane/source', '--import', 'tsx', bin, 'agent', ...agentFlags(config)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }
  const inNs = (netns: string, script: string, args: string[]) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, fixture(script), ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
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

  afterAll(async () => {
    await Promise.all([...children].map((c) => killAndWait(c)))
    // Whatever the agents left: a fresh in-process agent on the same state purges it all.
    const d = await startDaemon({ config: { ...config, logLevel: 'silent' } }).catch(
      () => undefined,
    )
    await d?.stop({ purge: true })
    cleanupDirs()
  })

  it('keeps open connections and policy while the agent is dead, and reconciles on restart', async () => {
    let agent = startAgent()
    await waitFor(agent, /API on/)
    const client = new AgentClient(config.socketPath)
    const status = await client.get<AgentStatus>('/v1/status')
    expect(status.components.datapath?.state, status.components.datapath?.detail).toBe('ok')
    const mk = async (name: string, labels: Record<string, string>) =>
      (await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })).endpoint
    const server = await mk('server', { app: 'server' })
    const tie = await mk('tie', { org: 'empire' })
    const xw = await mk('xw', { org: 'alliance' })
    await client.post('/v1/policies', { text: POLICY })
    const echo = inNs(server.netns!, 'echo-server.mjs', ['7000'])
    await waitFor(echo, /ready/)
    expect(await connectOnce(tie.netns!, server.ipv4)).toBe('ok')
    expect(await connectOnce(xw.netns!, server.ipv4)).toBe('timeout')

    const chatter = follow(inNs(tie.netns!, 'chatter.mjs', [server.ipv4, '7000']))
    await chatter.more(5)

    // kill -9: no shutdown code runs at all.
    agent.kill('SIGKILL')
    await new Promise((r) => agent.once('exit', r))
    expect(existsSync(config.socketPath)).toBe(true) // stale socket left behind, as after a crash
    await chatter.more(20) // the open connection keeps working
    expect(await connectOnce(tie.netns!, server.ipv4)).toBe('ok') // new allowed connections too
    expect(await connectOnce(xw.netns!, server.ipv4)).toBe('timeout') // policy still enforced

    // Restart: reconcile by diff from the state directory and the pins.
    agent = startAgent()
    await waitFor(agent, /API on/)
    const status2 = await client.get<AgentStatus>('/v1/status')
    expect(status2.components.datapath?.state, status2.components.datapath?.detail).toBe('ok')
    const eps = await client.get<EndpointView[]>('/v1/endpoints')
    expect(eps.map((e) => [e.name, e.ipv4, e.identity, e.health, e.enforcing])).toEqual([
      ['server', server.ipv4, server.identity, 'ready', true],
      ['tie', tie.ipv4, tie.identity, 'ready', true],
      ['xw', xw.ipv4, xw.identity, 'ready', true],
    ])
    await chatter.more(20) // never interrupted by the restart
    expect(await connectOnce(xw.netns!, server.ipv4)).toBe('timeout')
    const again = await client.post<{ created: boolean }>('/v1/endpoints', {
      name: 'tie',
      labels: { org: 'empire' },
    })
    expect(again.created).toBe(false)
    agent.kill('SIGTERM')
    await new Promise((r) => agent.once('exit', r))
  }, 90_000)
})
