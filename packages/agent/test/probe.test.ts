import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openPinnedMap } from '@membrane/bpf-loader-napi'
import { PolicyMap } from '@membrane/datapath'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { EndpointView } from '../src/agent'
import { runCli } from '../src/cli'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { AgentError } from '../src/errors'
import { type ProbeCell, type ProbeResult, renderProbe } from '../src/internal/probe'
import { starWarsEndpoints, suiteDaemon, testConfig } from './helpers'

const policies = join(import.meta.dirname, '..', '..', '..', 'examples', 'star-wars', 'policies')
const l4 = readFileSync(join(policies, 'sw_l3_l4_policy.yaml'), 'utf8')
const l7 = readFileSync(join(policies, 'sw_l3_l4_l7_policy.yaml'), 'utf8')

/** The cell from -> to:port of a probe (every test names cells that must be there). */
function cell(r: ProbeResult, from: string, to: string, port: number): ProbeCell {
  const c = r.cells.find((x) => x.from === from && x.to === to && x.port === port)
  if (!c) throw new Error(`no cell ${from} -> ${to}:${port} in ${JSON.stringify(r.ports)}`)
  return c
}

/** The policy entries of one endpoint, written behind the agent's back (a broken datapath). */
function tamper(bpffsRoot: string, endpointId: number, fn: (pm: PolicyMap) => void): void {
  const trie = openPinnedMap(`${bpffsRoot}/mb_policy`)
  const fast = openPinnedMap(`${bpffsRoot}/mb_policy_fast`)
  try {
    fn(new PolicyMap(trie, endpointId, fast))
  } finally {
    trie.close()
    fast.close()
  }
}

describeKernel('policy probe: the Star Wars truth table', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  const { client } = suiteDaemon(config, cleanupDirs)
  let ep: Record<string, EndpointView> = {}
  const probe = (body: Record<string, unknown> = {}) =>
    client.post<ProbeResult>('/v1/policy/probe', { timeoutMs: 600, ...body })
  /** `membrane ARGS` against this suite's agent: exit code and everything it printed. */
  const cli = async (...args: string[]) => {
    let out = ''
    const write = (t: string) => {
      out += t
    }
    const code = await runCli([...args, '--socket', config.socketPath], { out: write, err: write })
    return { code, out }
  }

  beforeAll(async () => {
    ep = await starWarsEndpoints(client)
  }, 60_000)

  it('L3/L4: measured = predicted, only the empire lands', async () => {
    await client.post('/v1/policies', { text: l4 })
    const r = await probe()
    expect(r.complete).toBe(true)
    expect(r.ports['default/deathstar']).toEqual([80])
    // 3 endpoints: 6 ordered pairs, one port each.
    expect(r.cells).toHaveLength(6)
    const tie = cell(r, 'default/tiefighter', 'default/deathstar', 80)
    expect([tie.predicted, tie.measured, tie.connect]).toEqual(['allowed', 'allowed', 'connected'])
    const xw = cell(r, 'default/xwing', 'default/deathstar', 80)
    expect([xw.predicted, xw.measured, xw.connect]).toEqual(['denied', 'denied', 'timeout'])
    // Nothing selects the ships: they are reachable.
    expect(cell(r, 'default/deathstar', 'default/xwing', 80).measured).toBe('allowed')
    expect(r.differences).toBe(0)
    expect(r.cells.every((c) => c.match === true)).toBe(true)
  }, 60_000)

  it('L7: an allowed request reaches the listener, a denied one gets the 403', async () => {
    await client.post('/v1/policies', { text: l7 })
    const r = await probe()
    // The table the agent's README shows.
    expect(renderProbe(r).split('\n').slice(0, 4)).toEqual([
      'from \\ to   deathstar:80  tiefighter:80  xwing:80',
      'deathstar   .             ✓              ✓',
      'tiefighter  L7            .              ✓',
      'xwing       ✗             ✓              .',
    ])
    const tie = cell(r, 'default/tiefighter', 'default/deathstar', 80)
    expect(tie.predicted).toBe('l7')
    expect(tie.measured).toBe('l7')
    expect(tie.requests).toEqual([
      expect.objectContaining({
        method: 'POST',
        path: '/v1/request-landing',
        predicted: 'allowed',
        measured: 'allowed',
        status: 200,
      }),
      expect.objectContaining({ predicted: 'denied', measured: 'denied', status: 403 }),
    ])
    expect(cell(r, 'default/xwing', 'default/deathstar', 80).measured).toBe('denied')
    expect(r.differences).toBe(0)
  }, 60_000)

  it('a datapath entry the policy does not explain is reported as a difference', async () => {
    await client.post('/v1/policies', { text: l4 })
    const deathstar = ep.deathstar!
    // The kernel was told something the policy does not say: xwing may land.
    tamper(config.bpffsRoot, deathstar.id, (pm) =>
      pm.apply({
        upserts: [
          {
            key: { identity: ep.xwing!.identity!, direction: 'ingress', protocol: 'TCP', port: 80 },
            value: { deny: false },
          },
        ],
      }),
    )
    // ... and lost an entry it was told about: the tiefighter's.
    tamper(config.bpffsRoot, deathstar.id, (pm) =>
      pm.apply({
        deletes: [
          { identity: ep.tiefighter!.identity!, direction: 'ingress', protocol: 'TCP', port: 80 },
        ],
      }),
    )
    const r = await probe({ to: ['default/deathstar'] })
    const xw = cell(r, 'default/xwing', 'default/deathstar', 80)
    expect([xw.predicted, xw.measured, xw.match]).toEqual(['denied', 'allowed', false])
    const tie = cell(r, 'default/tiefighter', 'default/deathstar', 80)
    expect([tie.predicted, tie.measured, tie.match]).toEqual(['allowed', 'denied', false])
    expect(r.differences).toBe(2)
  }, 60_000)

  it('membrane policy probe prints the table, the differences, and exits 3', async () => {
    // The kernel still holds the entries written behind the agent's back (test above).
    const { code, out } = await cli('policy', 'probe', '--to', 'deathstar', '--timeout', '600')
    expect(code).toBe(3)
    const lines = out.split('\n')
    expect(lines[0]).toMatch(/^from \\ to\s+deathstar:80\s*$/)
    expect(lines.find((l) => l.startsWith('xwing '))).toMatch(/^xwing\s+✓!✗\s*$/)
    expect(lines.find((l) => l.startsWith('tiefighter '))).toMatch(/^tiefighter\s+✗!✓\s*$/)
    expect(out).toMatch(/2 cells, 2 differ/)
    expect(out).toContain(
      'DIFF default/xwing -> default/deathstar:80: predicted denied, measured allowed (connect connected)',
    )
    const { code: code2, out: explained } = await cli(
      'policy',
      'probe',
      '--explain',
      'xwing',
      'deathstar:80',
    )
    expect(code2).toBe(3)
    expect(explained).toMatch(
      /^default\/xwing -> default\/deathstar:80\/TCP: predicted denied, measured allowed \(connect connected\) {2}DIFFERENT$/m,
    )
    expect(explained).toMatch(/ingress: denied \(default-deny\)/)
    expect(explained).toMatch(/selected by CiliumNetworkPolicy\/default\/rule1/)
    expect(explained).toMatch(/not matched: CiliumNetworkPolicy\/default\/rule1.*\(peer: /)
  }, 60_000)

  it('--explain: one cell with the rules that produced it', async () => {
    const r = await probe({
      from: ['default/xwing'],
      to: ['default/deathstar'],
      ports: [80],
      explain: true,
      measure: false,
    })
    expect(r.cells).toHaveLength(1)
    const c = r.cells[0]!
    expect(c.measured).toBeUndefined()
    expect(c.trace?.ingress.reason).toBe('default-deny')
    expect(c.trace?.ingress.selectedBy).toEqual(['CiliumNetworkPolicy/default/rule1'])
    expect(c.trace?.ingress.notMatched.map((m) => m.reason)).toEqual(['peer'])
  })

  it('refuses bad input naming the field', async () => {
    const e = await probe({ ports: [0] }).catch((x: unknown) => x)
    expect((e as AgentError).code).toBe('INVALID_INPUT')
    expect((e as AgentError).message).toMatch(/ports\[0\]/)
    const nf = await probe({ from: ['default/ghost'] }).catch((x: unknown) => x)
    expect((nf as AgentError).code).toBe('NOT_FOUND')
    expect((nf as AgentError).message).toMatch(/ghost/)
  })
})

describeKernel('policy probe: Kubernetes NetworkPolicy', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  const { client } = suiteDaemon(config, cleanupDirs)
  const netpol = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: default-deny, namespace: prod }
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-from-dev, namespace: prod }
spec:
  podSelector: { matchLabels: { app: api } }
  ingress:
    - from:
        - namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: dev } }
      ports:
        - { port: 8080, protocol: TCP }
`
  beforeAll(async () => {
    for (const [namespace, name, app] of [
      ['prod', 'api', 'api'],
      ['prod', 'db', 'db'],
      ['dev', 'client', 'client'],
      ['other', 'client', 'client'],
    ] as const) {
      await client.post('/v1/endpoints', { name, namespace, labels: { app } })
    }
    await client.post('/v1/policies', { text: netpol })
  }, 60_000)

  it('default deny + allow from a namespace: measured = predicted', async () => {
    const r = await client.post<ProbeResult>('/v1/policy/probe', { timeoutMs: 600 })
    expect(r.ports['prod/api']).toEqual([8080])
    expect(cell(r, 'dev/client', 'prod/api', 8080).measured).toBe('allowed')
    expect(cell(r, 'other/client', 'prod/api', 8080).measured).toBe('denied')
    // Default deny inside prod too.
    expect(cell(r, 'prod/db', 'prod/api', 8080).measured).toBe('denied')
    expect(cell(r, 'dev/client', 'prod/db', 80).measured).toBe('denied')
    expect(cell(r, 'prod/api', 'other/client', 80).measured).toBe('allowed')
    expect(r.cells).toHaveLength(12)
    expect(r.differences).toBe(0)
    expect(r.cells.every((c) => c.predicted === c.measured)).toBe(true)
  }, 60_000)
})

describeKernel('policy map pressure', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon
  let client: AgentClient
  const ep: Record<string, EndpointView> = {}
  const LIMIT = 8
  /** Ingress to `app` on `ports` from org=empire. */
  const manyPorts = (name: string, app: string, ports: number[]) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: ${name}, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: ${app} } }
  ingress:
    - fromEndpoints: [{ matchLabels: { org: empire } }]
      toPorts:
        - ports: [${ports.map((p) => `{ port: "${p}", protocol: TCP }`).join(', ')}]
`
  const mapOf = (name: string) =>
    client.get<{ source: string; entries: unknown[] }>(`/v1/bpf/policy/default/${name}`)
  /** Probe from tie to `to` (default: the ports the policies name). */
  const probeTie = (to: string[], ports?: number[]) =>
    client.post<ProbeResult>('/v1/policy/probe', {
      from: ['default/tie'],
      to,
      ...(ports ? { ports } : {}),
      timeoutMs: 600,
    })

  beforeAll(async () => {
    daemon = await startDaemon({ config: { ...config, policyMapMaxEntries: LIMIT } })
    client = new AgentClient(config.socketPath)
    for (const [name, labels] of [
      ['big', { app: 'big' }],
      ['small', { app: 'small' }],
      ['tie', { org: 'empire' }],
    ] as const) {
      ep[name] = (
        await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })
      ).endpoint
    }
    await client.post('/v1/policies', {
      text: `${manyPorts('big-policy', 'big', [80])}---\n${manyPorts('small-policy', 'small', [80])}`,
    })
  }, 60_000)
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('an import that overflows one endpoint changes no endpoint, and says why', async () => {
    const bigBefore = await mapOf('big')
    const smallBefore = await mapOf('small')
    expect(bigBefore.source).toBe('bpf')
    expect(bigBefore.entries.length).toBeGreaterThan(0)
    const policiesBefore = await client.get<unknown[]>('/v1/policies')
    // One import: 12 ports more for big (over the limit of 8), one port more for small (fits).
    const ports = Array.from({ length: 12 }, (_, i) => 9000 + i)
    const e = await client
      .post('/v1/policies', {
        text: `${manyPorts('big-policy', 'big', ports)}---\n${manyPorts('small-policy', 'small', [80, 81])}`,
      })
      .catch((x: unknown) => x)
    expect(e).toBeInstanceOf(AgentError)
    expect((e as AgentError).code).toBe('TOO_LARGE')
    expect((e as AgentError).message).toMatch(
      /endpoint default\/big would need \d+ policy map entries, over the limit of 8/,
    )
    expect((e as AgentError).message).not.toMatch(/default\/small/)
    // Read back from the kernel: both maps are as before (nothing half-applied).
    expect(await mapOf('big')).toEqual(bigBefore)
    expect(await mapOf('small')).toEqual(smallBefore)
    expect(await client.get<unknown[]>('/v1/policies')).toEqual(policiesBefore)
    // The repository was rolled back too: trace and traffic still follow the old policy.
    const r = await probeTie(['default/big', 'default/small'], [80, 81, 9000])
    expect(r.differences).toBe(0)
    expect(cell(r, 'default/tie', 'default/big', 80).measured).toBe('allowed')
    expect(cell(r, 'default/tie', 'default/big', 9000).measured).toBe('denied')
    expect(cell(r, 'default/tie', 'default/small', 81).measured).toBe('denied')
    const metrics = await daemon.agent.metrics.metrics()
    expect(metrics).toMatch(/membrane_policy_map_overflow_total\{endpoint="default\/big"\} 1/)
    expect(metrics).toMatch(/membrane_bpf_map_pressure\{map_name="mb_policy"\} [0-9.e-]+/)
  }, 60_000)

  it('an import that fits is applied to every endpoint', async () => {
    await client.post('/v1/policies', {
      text: `${manyPorts('big-policy', 'big', [80, 81])}---\n${manyPorts('small-policy', 'small', [80, 81])}`,
    })
    const r = await probeTie(['default/big', 'default/small'])
    expect(r.ports['default/big']).toEqual([80, 81])
    expect(r.cells.map((c) => c.measured)).toEqual(['allowed', 'allowed', 'allowed', 'allowed'])
    expect(r.differences).toBe(0)
  }, 60_000)

  it('an endpoint whose policy does not fit keeps its map until it does', async () => {
    const ports = Array.from({ length: 12 }, (_, i) => 9100 + i)
    // No endpoint is selected yet: the import fits.
    await client.post('/v1/policies', { text: manyPorts('wide-policy', 'wide', ports) })
    const created = await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
      name: 'wide',
      labels: { app: 'wide' },
    })
    expect(created.endpoint.enforcing).toBe(true)
    // Its policy was not written: an empty map (everything denied), and the metric says why.
    expect((await mapOf('wide')).entries).toEqual([])
    const metrics = await daemon.agent.metrics.metrics()
    expect(metrics).toMatch(/membrane_policy_map_overflow_total\{endpoint="default\/wide"\} [1-9]/)
    const before = await probeTie(['default/wide'], [9100])
    expect(cell(before, 'default/tie', 'default/wide', 9100).measured).toBe('denied')
    expect(before.differences).toBe(1)
    // Without the policy its map state fits again: the map is reconciled in full.
    await client.delete('/v1/policies?name=wide-policy')
    expect((await mapOf('wide')).entries.length).toBeGreaterThan(0)
    const after = await probeTie(['default/wide'], [9100])
    expect(cell(after, 'default/tie', 'default/wide', 9100).measured).toBe('allowed')
    expect(after.differences).toBe(0)
  }, 60_000)
})
