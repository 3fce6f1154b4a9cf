import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runCli } from '../src/cli'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { testConfig } from './helpers'

const policies = join(import.meta.dirname, '..', '..', '..', 'examples', 'star-wars', 'policies')

describeKernel('membrane CLI against a running agent', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  const files = mkdtempSync(join(tmpdir(), 'mbcli-'))
  let daemon: AgentDaemon
  const cli = async (...args: string[]) => {
    let out = ''
    let err = ''
    const code = await runCli([...args, '--socket', config.socketPath], {
      out: (t) => {
        out += t
      },
      err: (t) => {
        err += t
      },
    })
    return { code, out, err }
  }
  const state = () => readFileSync(join(config.stateDir, 'state.json'), 'utf8')

  beforeAll(async () => {
    daemon = await startDaemon({ config })
    for (const [name, labels] of [
      ['deathstar', 'org=empire,class=deathstar'],
      ['tiefighter', 'org=empire,class=tiefighter'],
      ['xwing', 'org=alliance,class=xwing'],
    ]) {
      expect((await cli('endpoint', 'create', '--name', name!, '--labels', labels!)).code).toBe(0)
    }
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('policy import / get / trace / delete', async () => {
    const imp = await cli('policy', 'import', '-f', join(policies, 'sw_l3_l4_policy.yaml'))
    expect(imp.code).toBe(0)
    expect(imp.out).toMatch(/CiliumNetworkPolicy\s+default\s+rule1/)
    const get = await cli('policy', 'get', 'rule1', '-o', 'json')
    expect(JSON.parse(get.out)[0].document.spec.endpointSelector.matchLabels.class).toBe(
      'deathstar',
    )
    const denied = await cli(
      'policy',
      'trace',
      '--from',
      'xwing',
      '--to',
      'deathstar',
      '--port',
      '80',
    )
    expect(denied.code).toBe(3)
    expect(denied.out).toMatch(/^verdict: denied/)
    const allowed = await cli(
      'policy',
      'trace',
      '--from',
      'tiefighter',
      '--to',
      'deathstar',
      '--port',
      '80',
    )
    expect(allowed.code).toBe(0)
    // -o json: the verdict on stdout, the same exit codes (3 denied, 0 allowed).
    const trace = (from: string) =>
      cli('policy', 'trace', '--from', from, '--to', 'deathstar', '--port', '80', '-o', 'json')
    const deniedJson = await trace('xwing')
    expect([deniedJson.code, JSON.parse(deniedJson.out).verdict]).toEqual([3, 'denied'])
    const allowedJson = await trace('tiefighter')
    expect([allowedJson.code, JSON.parse(allowedJson.out).verdict]).toEqual([0, 'allowed'])
    const map = await cli('bpf', 'policy', 'get', 'deathstar')
    expect(map.code).toBe(0)
    expect(map.out).toMatch(/DIRECTION\s+IDENTITY/)
    const del = await cli('policy', 'delete', 'rule1')
    expect(del.out).toMatch(/deleted CiliumNetworkPolicy\/default\/rule1/)
  })

  it('policy trace takes HTTP headers, Kafka requests and DNS names', async () => {
    const file = join(files, 'l7-trace.yaml')
    writeFileSync(
      file,
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: l7-trace }
spec:
  endpointSelector: { matchLabels: { class: deathstar } }
  ingress:
    - fromEndpoints: [{ matchLabels: { org: empire } }]
      toPorts:
        - ports: [{ port: "80", protocol: TCP }]
          rules:
            http: [{ method: GET, path: "/v1/.*", headers: ["X-Has-Force true"] }]
        - ports: [{ port: "9092", protocol: TCP }]
          rules:
            kafka: [{ role: produce, topic: deathstar-plans }]
`,
    )
    expect((await cli('policy', 'import', '-f', file)).code).toBe(0)
    const http = (...extra: string[]) =>
      cli('policy', 'trace', '--from', 'tiefighter', '--to', 'deathstar', '--port', '80', ...extra)
    const get = ['--http-method', 'GET', '--http-path', '/v1/plans']
    expect((await http(...get, '--http-header', 'X-Has-Force: true')).code).toBe(0)
    expect((await http(...get, '--http-header', 'X-Has-Force: false')).code).toBe(3)
    expect((await http(...get)).code).toBe(3)
    const bad = await http(...get, '--http-header', 'no colon here')
    expect([bad.code, bad.err]).toEqual([2, expect.stringMatching(/http-header/)])
    const kafka = (topic: string) =>
      cli(
        'policy',
        'trace',
        '--from',
        'tiefighter',
        '--to',
        'deathstar',
        '--port',
        '9092',
        '--kafka-api-key',
        'produce',
        '--kafka-api-version',
        '3',
        '--kafka-topic',
        topic,
      )
    expect((await kafka('deathstar-plans')).code).toBe(0)
    expect((await kafka('rebel-bases')).code).toBe(3)
    expect((await cli('policy', 'delete', 'l7-trace')).code).toBe(0)
  })

  it('service create / list / delete, and bpf lb list', async () => {
    const c = await cli(
      'service',
      'create',
      '--name',
      'deathstar',
      '--vip',
      '10.96.0.10',
      '--port',
      '80',
      '--selector',
      'class=deathstar',
      '--algorithm',
      'maglev',
    )
    expect(c.code).toBe(0)
    expect(c.out).toMatch(/10\.96\.0\.10:80\/TCP\s+maglev/)
    const list = await cli('service', 'list', '-o', 'json')
    expect(JSON.parse(list.out)[0].backends).toHaveLength(1)
    const lb = await cli('bpf', 'lb', 'list')
    expect(lb.out).toContain('10.96.0.10:80/TCP')
    const d = await cli('service', 'delete', 'default/deathstar')
    expect(d.out).toMatch(/deleted service default\/deathstar/)
  })

  it('status prints components and counts', async () => {
    const s = await cli('status')
    expect(s.code).toBe(0)
    expect(s.out).toMatch(/^COMPONENT\s+STATE\s+DETAIL/)
    expect(s.out).toMatch(/endpoints 3/)
    const j = JSON.parse((await cli('status', '-o', 'json')).out)
    expect(j.counts.endpoints).toBe(3)
  })

  it('bad input to every command: a clear error, exit code, and nothing changes', async () => {
    const before = state()
    const bad = join(files, 'bad.yaml')
    writeFileSync(
      bad,
      'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: x\nspec:\n  endpointSelector: {}\n  ingress:\n    - fromEndpoints: "nope"\n',
    )
    const cases: [string[], number, RegExp][] = [
      [['endpoint', 'create'], 2, /--name is required/],
      [
        ['endpoint', 'create', '--name', 'tiefighter', '--labels', 'org=alliance'],
        1,
        /already exists with a different spec/,
      ],
      [['endpoint', 'create', '--name', 'x', '--labels', 'a=1,a=2'], 2, /given twice/],
      [['endpoint', 'get', 'default/ghost'], 1, /not found/],
      [['endpoint', 'delete', 'Bad/Name'], 2, /NAMESPACE\/NAME/],
      [['endpoint', 'frobnicate'], 2, /endpoint has: create, list, get, delete/],
      [['policy', 'import', '-f', bad], 2, /document 0 \(CiliumNetworkPolicy\/default\/x\)/],
      [['policy', 'import', '-f', join(files, 'missing.yaml')], 2, /cannot read/],
      [['policy', 'delete', 'ghost'], 1, /policy ghost not found/],
      [
        ['policy', 'trace', '--from', 'ghost', '--to', 'deathstar', '--port', '80'],
        1,
        /endpoint default\/ghost not found/,
      ],
      [
        ['policy', 'trace', '--from', 'xwing', '--to', 'deathstar', '--port', 'http'],
        2,
        /--port expects a number/,
      ],
      [
        [
          'service',
          'create',
          '--name',
          's',
          '--vip',
          '10.96.0.300',
          '--port',
          '80',
          '--backends',
          '10.0.0.1',
        ],
        2,
        /vip: expected an IPv4 address/,
      ],
      [
        [
          'service',
          'create',
          '--name',
          's',
          '--vip',
          '10.96.0.3',
          '--port',
          '80',
          '--algorithm',
          'roundrobin',
          '--backends',
          '10.0.0.1',
        ],
        2,
        /algorithm: expected random or maglev/,
      ],
      [
        ['service', 'create', '--name', 's', '--vip', '10.96.0.3', '--port', '80'],
        2,
        /needs a selector or at least one backend/,
      ],
      [['service', 'delete', 'ghost'], 1, /service default\/ghost not found/],
      [['bpf', 'policy', 'get', 'ghost'], 1, /not found/],
      [['identity', 'show'], 2, /identity has: list/],
      [['nope'], 2, /unknown command/],
      [['status', '-o', 'yaml'], 2, /-o must be json, table or compact/],
    ]
    for (const [args, code, message] of cases) {
      const r = await cli(...args)
      expect(r.code, args.join(' ')).toBe(code)
      expect(r.err, args.join(' ')).toMatch(message)
    }
    expect(state()).toBe(before)
  })

  it('monitor streams agent actions', async () => {
    const client = new AgentClient(config.socketPath)
    const events: { kind: string; msg?: string }[] = []
    const s = client.stream('/v1/monitor', (e) => events.push(e as never))
    await new Promise((r) => setTimeout(r, 100))
    await cli('endpoint', 'create', '--name', 'probe')
    await cli('endpoint', 'delete', 'probe')
    for (let i = 0; i < 50 && events.filter((e) => e.kind === 'agent').length < 2; i++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    s.close()
    await s.done
    expect(events.filter((e) => e.kind === 'agent').map((e) => e.msg)).toEqual([
      'endpoint created',
      'endpoint deleted',
    ])
  })
})
