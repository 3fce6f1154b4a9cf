import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseEndpointArg, runCli } from '../src/cli-main'

const fixtures = new URL('./fixtures/', import.meta.url)
function run(argv: string[], files: Record<string, string> = {}) {
  let out = ''
  let err = ''
  const code = runCli(argv, {
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
    expect(denied.code).toBe(1)
    expect(JSON.parse(denied.out).ingress.reason).toBe('denied-at-l7')
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

  it('usage errors exit 2', () => {
    expect(run([]).code).toBe(2)
    expect(run(['frobnicate']).code).toBe(2)
    expect(run(['trace', '-f', 'sw_l3_l4_policy.yaml', '--from', 'nope']).code).toBe(2)
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
