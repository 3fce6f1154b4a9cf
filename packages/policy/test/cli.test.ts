import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI_COMMANDS, CLI_USAGE, parseEndpointArg, runCli } from '../src/cli-main'

const fixtures = new URL('./fixtures/', import.meta.url)
function run(argv: string[], files: Record<string, string> = {}) {
  let out = ''
  let err = ''
  const code = runCli(argv, {
    version: '9.8.7',
    readFile: (p) => files[p] ?? readFileSync(new URL(p, fixtures), 'utf8'),
    stdout: (t) => {
      out += t
    },
    stderr: (t) => {
      err += t
    },
  })
  return { code, out, err }
}

describe('membrane-policy CLI', () => {
  it('validate: ok documents exit 0, bad ones exit 1 with code and path', () => {
    expect(run(['validate', 'sw_l3_l4_policy.yaml']).code).toBe(0)
    const bad = run(['validate', 'bad.yaml', '-o', 'json'], {
      'bad.yaml':
        'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: "70000"}]}]\n',
    })
    expect(bad.code).toBe(1)
    const report = JSON.parse(bad.out)
    expect(report.ok).toBe(false)
    expect(report.documents[0]).toMatchObject({
      ok: false,
      code: 'INVALID_PORT',
      path: 'spec.ingress[0].toPorts[0].ports[0].port',
    })
  })

  it('trace: Star Wars L7 verdicts and exit codes', () => {
    const base = [
      'trace',
      '-f',
      'sw_l3_l4_l7_policy.yaml',
      '--from',
      'default:org=empire,class=tiefighter',
      '--to',
      'default:org=empire,class=deathstar',
      '--port',
      '80',
    ]
    const ok = run([...base, '--http-method', 'POST', '--http-path', '/v1/request-landing'])
    expect(ok.code).toBe(0)
    expect(ok.out).toContain('verdict: ALLOWED')
    const denied = run([
      ...base,
      '--http-method',
      'PUT',
      '--http-path',
      '/v1/exhaust-port',
      '-o',
      'json',
    ])
    expect(denied.code).toBe(3) // denied, in every output format
    expect(JSON.parse(denied.out).ingress.reason).toBe('denied-at-l7')
    const deniedText = run([...base, '--http-method', 'PUT', '--http-path', '/v1/exhaust-port'])
    expect([deniedText.code, deniedText.out]).toEqual([
      3,
      expect.stringMatching(/^verdict: DENIED/),
    ])
  })

  it('trace: HTTP headers and Kafka requests', () => {
    const policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: l7, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress:
    - fromEndpoints: [{ matchLabels: { app: client } }]
      toPorts:
        - ports: [{ port: "80", protocol: TCP }]
          rules: { http: [{ path: /v1/.*, headers: ["X-Token s3cr3t"] }] }
        - ports: [{ port: "9092", protocol: TCP }]
          rules: { kafka: [{ role: produce, topic: t1 }] }
`
    const base = [
      'trace',
      '-f',
      'p.yaml',
      '--from',
      'default:app=client',
      '--to',
      'default:app=server',
    ]
    const trace = (...more: string[]) => run([...base, ...more], { 'p.yaml': policy }).code
    // The request header as a client sends it; the rule spells it `Name value` (Cilium).
    expect(trace('--port', '80', '--http-path', '/v1/x', '--http-header', 'X-Token: s3cr3t')).toBe(
      0,
    )
    expect(trace('--port', '80', '--http-path', '/v1/x', '--http-header', 'x-token:s3cr3t')).toBe(0)
    expect(trace('--port', '80', '--http-path', '/v1/x', '--http-header', 'X-Token: no')).toBe(3)
    expect(trace('--port', '80', '--http-path', '/v1/x')).toBe(3)
    expect(trace('--port', '80', '--http-header', 'no colon')).toBe(2)
    const kafka = ['--port', '9092', '--kafka-api-key', 'produce', '--kafka-api-version', '2']
    expect(trace(...kafka, '--kafka-topic', 't1')).toBe(0)
    expect(trace(...kafka, '--kafka-topic', 't1', '--kafka-topic', 't2')).toBe(3)
    expect(trace('--port', '9092', '--kafka-api-key', '3')).toBe(0) // metadata, no topics
    expect(trace('--port', '9092', '--kafka-api-key', 'fetch', '--kafka-topic', 't1')).toBe(3)
  })

  it('compile: prints the map state of one endpoint', () => {
    const ids = JSON.stringify([
      {
        id: 1002,
        labels: [
          'k8s:org=empire',
          'k8s:class=tiefighter',
          'k8s:io.kubernetes.pod.namespace=default',
        ],
      },
      {
        id: 1003,
        labels: ['k8s:org=alliance', 'k8s:class=xwing', 'k8s:io.kubernetes.pod.namespace=default'],
      },
    ])
    const r = run(
      [
        'compile',
        '-f',
        'sw_l3_l4_policy.yaml',
        '--endpoint',
        'default:org=empire,class=deathstar',
        '--identities',
        'ids.json',
        '-o',
        'json',
      ],
      { 'ids.json': ids },
    )
    expect(r.code).toBe(0)
    const ms = JSON.parse(r.out)
    expect(
      ms.entries
        .filter((e: { key: { direction: string } }) => e.key.direction === 'ingress')
        .map((e: { key: { identity: number; port: number } }) => [e.key.identity, e.key.port]),
    ).toEqual([[1002, 80]])
    const text = run(
      [
        'compile',
        '-f',
        'sw_l3_l4_policy.yaml',
        '--endpoint',
        'default:org=empire,class=deathstar',
        '--identities',
        'ids.json',
      ],
      { 'ids.json': ids },
    )
    expect(text.out).toMatch(/ingress\s+1002\s+TCP\s+80\/16\s+allow/)
  })

  it('usage errors and bad input exit 2: one line, or one JSON object on stderr under -o json', () => {
    const none = run([])
    expect([none.code, none.out, none.err]).toEqual([2, '', CLI_USAGE])
    const trace = ['trace', '-f', 'sw_l3_l4_policy.yaml', '--from', 'default:a=b', '--to']
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"; expected validate, trace, compile/],
      [['trace', '-f', 'sw_l3_l4_policy.yaml', '--from', 'nope'], /invalid endpoint "nope"/],
      [[...trace, 'default:c=d'], /missing --port/],
      [[...trace, 'default:c=d', '--port', 'http'], /--port expects a number, got "http"/],
      [[...trace, '{"namespace":'], /invalid endpoint/],
      [['validate', 'missing.yaml'], /cannot read missing\.yaml: ENOENT/],
      [
        ['trace', '-f', 'missing.yaml', '--from', 'x:a=b', '--to', 'x:c=d', '--port', '80'],
        /cannot read missing\.yaml/,
      ],
      [
        ['trace', '-f', 'bad.yaml', '--from', 'x:a=b', '--to', 'x:c=d', '--port', '80'],
        /bad\.yaml: /,
      ],
      [
        [
          'compile',
          '-f',
          'sw_l3_l4_policy.yaml',
          '--endpoint',
          'x:a=b',
          '--identities',
          'ids.json',
        ],
        /--identities ids\.json: /,
      ],
      [['trace', '-f'], /option -f needs a value/],
    ]
    const files = { 'bad.yaml': 'kind: [', 'ids.json': '[{' }
    for (const [argv, message] of cases) {
      const text = run(argv, files)
      expect(text.code, argv.join(' ')).toBe(2)
      expect(text.out, argv.join(' ')).toBe('')
      expect(text.err, argv.join(' ')).toMatch(/^error \[[A-Z_]+\]: [^\n]*\n$/)
      expect(text.err, argv.join(' ')).toMatch(message)
      const json = run([...argv, '-o', 'json'], files)
      expect(json.code, `${argv.join(' ')} -o json`).toBe(2)
      expect(json.out, `${argv.join(' ')} -o json`).toBe('')
      const e = JSON.parse(json.err) as { error: { code: string; message: string } }
      expect(e.error.code, argv.join(' ')).toMatch(/^[A-Z_]+$/)
      expect(e.error.message, argv.join(' ')).toMatch(message)
    }
  })

  it('--help and -h exit 0 with the usage on stdout, for every command; -V / --version', () => {
    for (const argv of [
      ['--help'],
      ['-h'],
      ...CLI_COMMANDS.flatMap((c) => [
        [c, '--help'],
        [c, '-h'],
      ]),
    ]) {
      const r = run(argv)
      expect([r.code, r.err], argv.join(' ')).toEqual([0, ''])
      expect(r.out).toBe(CLI_USAGE)
      if (argv.length === 2) expect(r.out).toContain(`membrane-policy ${argv[0]}`)
    }
    for (const flag of ['--version', '-V']) {
      expect(run([flag])).toEqual({ code: 0, out: 'membrane-policy 9.8.7\n', err: '' })
    }
  })

  it('parses endpoint arguments', () => {
    expect(parseEndpointArg('default:app=web,tier=fe')).toEqual({
      namespace: 'default',
      labels: { app: 'web', tier: 'fe' },
    })
    expect(parseEndpointArg('world:1.2.3.4')).toEqual({ ips: ['1.2.3.4'] })
    expect(parseEndpointArg('reserved:host')).toEqual({ reserved: 'host' })
  })
})

describe('the membrane-policy executable', () => {
  const pkg = join(import.meta.dirname, '..')
  // package.json "bin" runs dist/cli.js; inside the workspace its source is src/cli.ts.
  const bin = (...args: string[]) =>
    spawnSync(
      process.execPath,
      ['--conditions=@membrane/source', '--import', 'tsx', join(pkg, 'src', 'cli.ts'), ...args],
      { encoding: 'utf8', timeout: 60_000 },
    )

  it('prints its package version, and a missing file as one line, not a stack trace', () => {
    const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as {
      version: string
    }
    const v = bin('--version')
    expect([v.status, v.stdout, v.stderr]).toEqual([0, `membrane-policy ${version}\n`, ''])
    const missing = bin('validate', '/nonexistent/policy.yaml')
    expect(missing.status).toBe(2)
    expect(missing.stderr).toMatch(
      /^error \[INVALID_INPUT\]: cannot read \/nonexistent\/policy\.yaml: ENOENT[^\n]*\n$/,
    )
  }, 60_000)
})
