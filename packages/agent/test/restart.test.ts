import { existsSync } from 'node:fs'
import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'
import type { EndpointView } from '../src/agent'
import { runCli } from '../src/cli'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { agentFlags, testConfig } from './helpers'

describeKernel('agent restart (graceful)', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon | undefined
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('keeps namespaces across a stop and gets the same identities and addresses back', async () => {
    daemon = await startDaemon({ config })
    let client = new AgentClient(config.socketPath)
    const mk = (name: string, labels: Record<string, string>) =>
      client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })
    await mk('a', { app: 'one' })
    await mk('b', { app: 'two' })
    await mk('c', { app: 'three' })
    await mk('d', { app: 'one' })
    await client.delete('/v1/endpoints/default/b') // leaves a gap in the identity numbers
    const before = await client.get<EndpointView[]>('/v1/endpoints')
    expect(before.find((e) => e.name === 'a')?.identity).toBe(
      before.find((e) => e.name === 'd')?.identity,
    )
    await daemon.stop()
    daemon = undefined
    for (const ep of before) expect(existsSync(`/run/netns/${ep.netns}`)).toBe(true)
    // A graceful stop leaves the programs attached (they keep enforcing while the agent is away).
    if (before[0]?.enforcing) {
      const tc = await run('tc', ['filter', 'show', 'dev', before[0].hostIfname, 'ingress'])
      expect(tc.stdout).toMatch(/bpf/)
    }

    daemon = await startDaemon({ config })
    client = new AgentClient(config.socketPath)
    const after = await client.get<EndpointView[]>('/v1/endpoints')
    expect(after.map((e) => [e.name, e.ipv4, e.identity, e.health])).toEqual(
      before.map((e) => [e.name, e.ipv4, e.identity, 'ready']),
    )
    const ids = await client.get<{ id: number; endpoints: string[] }[]>('/v1/identities')
    expect(ids.find((i) => i.id === before[0]?.identity)?.endpoints).toEqual([
      'default/a',
      'default/d',
    ])
  })

  it('`membrane agent cleanup` removes everything a stopped agent left running', async () => {
    const eps = daemon!.agent.listEndpoints()
    await daemon!.stop()
    daemon = undefined
    let out = ''
    const code = await runCli(['agent', 'cleanup', ...agentFlags(config)], {
      out: (t) => {
        out += t
      },
      err: () => {},
    })
    expect(code).toBe(0)
    expect(out).toMatch(/removed 3 endpoint/)
    for (const ep of eps) expect(existsSync(`/run/netns/${ep.netns}`)).toBe(false)
    expect(existsSync(config.bpffsRoot)).toBe(false)
  })
})
