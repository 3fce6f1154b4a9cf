import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describeKernel, killAndWait, run, tempCgroup } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { testConfig } from './helpers'

const fixture = (name: string) => join(import.meta.dirname, 'fixtures', name)
const VIP = `10.96.${(process.pid >> 8) % 256}.${process.pid % 250}`

describeKernel('socket-level load balancing', ['root', 'netns', 'bpf', 'tc', 'cgroup2'], () => {
  const { config, cleanupDirs } = testConfig()
  const cg = tempCgroup()
  let daemon: AgentDaemon
  let server: ChildProcess | undefined

  beforeAll(async () => {
    await run('ip', ['route', 'replace', 'blackhole', `${VIP}/32`])
    daemon = await startDaemon({ config: { ...config, socketLbCgroups: [cg.path] } })
    const client = new AgentClient(config.socketPath)
    const status = await client.get<AgentStatus>('/v1/status')
    expect(status.components.datapath?.detail).toContain(`socket LB on ${cg.path}`)
    const { endpoint } = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'backend',
      labels: { app: 'backend' },
    })
    server = spawn(
      'ip',
      ['netns', 'exec', endpoint.netns!, process.execPath, fixture('echo-server.mjs'), '7000'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    )
    await new Promise((r) => server!.stdout!.once('data', r))
    await client.post('/v1/services', {
      name: 'backend',
      vip: VIP,
      port: 7777,
      targetPort: 7000,
      selector: { app: 'backend' },
    })
  })
  afterAll(async () => {
    if (server) await killAndWait(server)
    await daemon?.stop({ purge: true })
    cg.remove()
    await run('ip', ['route', 'del', 'blackhole', `${VIP}/32`]).catch(() => {})
    cleanupDirs()
  })

  it('translates the service address at connect time for processes in the cgroup, on the host too', async () => {
    // A host process outside the cgroup: nothing translates its packets (no endpoint program
    // on its path), so the VIP is unreachable. (The blackhole route keeps the packets on this
    // host: the machine's network would answer any outside address.)
    const outside = await run(process.execPath, [fixture('connect.mjs'), VIP, '7777', '800'])
    expect(outside.stdout.trim()).not.toBe('ok')
    // The same from inside the cgroup: connect4 picks a backend.
    const inside = await run(process.execPath, [
      fixture('cg-connect.mjs'),
      cg.path,
      VIP,
      '7777',
      '2000',
    ])
    expect(inside.stdout.trim()).toBe('ok')
  })
})
