// Hostile but honest input against a running agent: work is bounded and never blocks the API.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describeKernel } from '@membrane/test-utils'
import { expect, it } from 'vitest'
import { bigPolicyText } from '../bench/_fixture'
import { runCli } from '../src/cli'
import { refusal, suiteDaemon, testConfig } from './helpers'

describeKernel('hostile input: bounded parsing off the event loop', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  // Generous: the 4 MB import below must finish; bounded work is what the test is about.
  config.policyParseTimeoutMs = 300_000
  const suite = suiteDaemon(config, cleanupDirs)
  const { client } = suite

  it('10^6 "[" is a 400 naming the document, and the agent stays up', async () => {
    const e = await refusal(
      client.post('/v1/policies', { text: '['.repeat(1_000_000), source: 'brackets.yaml' }),
    )
    expect(e.code).toBe('INVALID_INPUT')
    expect(e.message).toMatch(/^brackets\.yaml: collections nest deeper than 64 levels/)
    expect((await client.get<{ version: string }>('/v1/status')).version).toBeDefined()
  })

  it('a YAML alias bomb is a 400 naming the document', async () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for (let i = 1; i < 9; i++) {
      const [prev, name] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)]
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`)
    }
    const e = await refusal(
      client.post('/v1/policies', { text: `${lines.join('\n')}\n`, source: 'laughs.yaml' }),
    )
    expect(e.code).toBe('INVALID_INPUT')
    expect(e.message).toMatch(/^laughs\.yaml: .*alias/i)
  })

  it('small requests are answered while a 4 MB import is being parsed', async () => {
    const text = bigPolicyText(3_700_000)
    expect(JSON.stringify({ text }).length).toBeGreaterThan(3_900_000)
    // Observe (not replace) the moment the API hands the import to the agent: the whole body has
    // arrived, so small requests answered after it were answered while the text was parsed,
    // not while it was still being uploaded.
    const agent = suite.daemon.agent
    const importPolicy = agent.importPolicy.bind(agent)
    let handedOver!: () => void
    const parsing = new Promise<void>((resolve) => {
      handedOver = resolve
    })
    agent.importPolicy = (t: unknown, source?: string) => {
      handedOver()
      return importPolicy(t, source)
    }
    try {
      let importDone = false
      const imported = client
        .post<{ policies: unknown[] }>('/v1/policies', { text, source: 'big.yaml' })
        .finally(() => {
          importDone = true
        })
      await parsing
      let answeredBefore = 0
      while (!importDone) {
        await client.get('/v1/endpoints')
        if (!importDone) answeredBefore += 1
      }
      expect((await imported).policies.length).toBeGreaterThan(10_000)
      // Parsed on the agent's thread (the old code) a handful slip through around the block; off
      // it, requests keep being answered for the whole parse (thousands).
      expect(answeredBefore).toBeGreaterThanOrEqual(100)
    } finally {
      agent.importPolicy = importPolicy
    }
  }, 360_000)

  it('a body over 4 MiB is a 413 naming the limit, and the CLI exits 2', async () => {
    const text = `# ${'x'.repeat(5 * 1024 * 1024)}\n`
    const e = await refusal(client.post('/v1/policies', { text, source: 'huge.yaml' }))
    expect(e.code).toBe('TOO_LARGE')
    expect(e.message).toMatch(/limit is 4194304 bytes \(4 MiB\)/)
    const file = join(config.stateDir, '..', 'huge.yaml')
    writeFileSync(file, text)
    let err = ''
    const code = await runCli(['policy', 'import', '-f', file, '--socket', config.socketPath], {
      out: () => {},
      err: (t) => {
        err += t
      },
    })
    expect(err).toMatch(/4 MiB.*TOO_LARGE/)
    expect(code).toBe(2)
  })
})

describeKernel(
  'hostile input: checks before anything reaches the kernel',
  ['root', 'netns'],
  () => {
    const { config, cleanupDirs } = testConfig()
    const { client } = suiteDaemon(config, cleanupDirs)

    it("refuses the agent's own devices as an endpoint's interface", async () => {
      for (const dev of [`${config.prefix}_host`, `${config.prefix}_net`]) {
        const e = await refusal(client.post('/v1/endpoints', { name: 'sneaky', interface: dev }))
        expect(e.code).toBe('INVALID_INPUT')
        expect(e.message).toBe(
          `interface: ${dev} is the agent's own router device; give the workload's interface`,
        )
      }
      expect(await client.get('/v1/endpoints')).toEqual([])
    })

    it('refuses special-purpose addresses for an endpoint', async () => {
      for (const [ip, what] of [
        ['127.0.0.5', 'loopback'],
        ['224.0.0.9', 'multicast'],
        ['169.254.1.1', 'link-local'],
        ['0.0.0.1', 'this network'],
      ]) {
        const e = await refusal(
          client.post('/v1/endpoints', { name: 'odd', interface: 'lo', ip: ip! }),
        )
        expect(e.code).toBe('INVALID_INPUT')
        expect(e.message).toMatch(new RegExp(`^ip: ${ip!.replace(/\./g, '\\.')} is in .*${what}`))
      }
    })

    it('refuses a numeric label value in a policy (Kubernetes label values are strings)', async () => {
      const text = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: numeric, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: 1 } }
`
      const e = await refusal(client.post('/v1/policies', { text, source: 'numeric.yaml' }))
      expect(e.code).toBe('INVALID_INPUT')
      expect(e.field).toBe('spec.endpointSelector.matchLabels.app')
      expect(e.message).toMatch(/^numeric\.yaml: .*label app has a number value/)
      expect(await client.get('/v1/policies')).toEqual([])
    })
  },
)
