import { spawn } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { request } from 'node:http'
import { dirname, join } from 'node:path'
import { describeKernel, run } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Agent } from '../src/agent'
import { runCli } from '../src/cli'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import type { AgentError } from '../src/errors'
import { testConfig } from './helpers'

function raw(socketPath: string, method: string, path: string, body?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath, method, path }, (res) => {
      let text = ''
      res.on('data', (c) => {
        text += c
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function cli(socket: string, args: string[]) {
  let out = ''
  let err = ''
  return runCli([...args, '--socket', socket], {
    out: (t) => {
      out += t
    },
    err: (t) => {
      err += t
    },
  }).then((code) => ({ code, out, err }))
}

describeKernel('the API socket and the CLI', ['root', 'netns'], () => {
  const { config, cleanupDirs } = testConfig()
  let daemon: AgentDaemon
  const auth = () => ({ authorization: `Bearer ${daemon.webToken}` })
  beforeAll(async () => {
    daemon = await startDaemon({ config })
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })

  it('is a 0600 socket in a 0700 directory', () => {
    expect(statSync(config.socketPath).mode & 0o777).toBe(0o600)
    expect(statSync(dirname(config.socketPath)).mode & 0o777).toBe(0o700)
    expect(statSync(daemon.observerSocket).mode & 0o777).toBe(0o600)
  })

  it('refuses a non-root user, even when the directory is opened up', async () => {
    const probe = [
      'const s = require("node:net").connect(process.argv[1]);',
      's.on("connect", () => { console.log("CONNECTED"); process.exit(0) });',
      's.on("error", (e) => { console.log(e.code); process.exit(0) });',
    ].join('')
    const asNobody = (path: string) =>
      run('setpriv', [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        '-e',
        probe,
        path,
      ])
    expect((await asNobody(config.socketPath)).stdout.trim()).toBe('EACCES')
    const dirs = [dirname(config.socketPath), dirname(dirname(config.socketPath))]
    const modes = dirs.map((d) => statSync(d).mode & 0o777)
    try {
      for (const d of dirs) chmodSync(d, 0o755)
      expect((await asNobody(config.socketPath)).stdout.trim()).toBe('EACCES')
    } finally {
      for (const [i, d] of dirs.entries()) chmodSync(d, modes[i]!)
    }
    // Root gets through.
    expect((await raw(config.socketPath, 'GET', '/v1/status')).status).toBe(200)
  })

  it('refuses a second agent on the same socket before touching anything', async () => {
    const e = await startDaemon({ config }).catch((x: unknown) => x)
    expect((e as Error).message).toMatch(/another agent is listening/)
    const c = await cli(config.socketPath, ['agent', 'cleanup', '--prefix', config.prefix])
    expect(c.code).toBe(1)
    expect(c.err).toMatch(/stop it first/)
    expect((await raw(config.socketPath, 'GET', '/v1/status')).status).toBe(200)
  })

  it('answers bad requests with a coded JSON error', async () => {
    const notFound = await raw(config.socketPath, 'GET', '/v1/nope')
    expect(notFound.status).toBe(404)
    expect(JSON.parse(notFound.body).error.code).toBe('NOT_FOUND')
    const badMethod = await raw(config.socketPath, 'PUT', '/v1/endpoints')
    expect(badMethod.status).toBe(400)
    const badJson = await raw(config.socketPath, 'POST', '/v1/endpoints', '{"name": ')
    expect(badJson.status).toBe(400)
    expect(JSON.parse(badJson.body).error.message).toMatch(/not JSON/)
    const badField = await raw(config.socketPath, 'POST', '/v1/endpoints', '{"name":"a","nme":1}')
    expect(JSON.parse(badField.body).error).toMatchObject({ code: 'INVALID_INPUT', field: 'nme' })
  })

  it('streams flows with filters', async () => {
    const client = new AgentClient(config.socketPath)
    const mk = (port: number, verdict: 1 | 2) =>
      daemon.agent.observer.addFlow({
        verdict,
        Type: 1,
        IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 1 },
        l4: { TCP: { sourcePort: 40000, destinationPort: port, flags: { SYN: true } } },
      })
    mk(80, 1)
    mk(81, 2)
    mk(80, 2)
    const got: { verdict: string; l4: { TCP: { destinationPort: number } } }[] = []
    await client.stream('/v1/flows?verdict=dropped&port=80', (f) => got.push(f as never)).done
    expect(got).toHaveLength(1)
    expect(got[0]?.verdict).toBe('DROPPED')
    expect(got[0]?.l4.TCP.destinationPort).toBe(80)
    const viaCli = await cli(config.socketPath, [
      'observe',
      '--verdict',
      'DROPPED',
      '--port',
      '80',
      '-o',
      'json',
    ])
    expect(viaCli.err).toBe('')
    expect(viaCli.code).toBe(0)
    const lines = viaCli.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines).toHaveLength(1)
    expect(JSON.stringify(lines[0])).toContain('DROPPED')
    const r = await cli(config.socketPath, ['observe', '--verdict', 'nonsense'])
    expect(r.code).toBe(2)
    const bad = await client.stream('/v1/flows?verdict=nonsense', () => {}).done.catch((e) => e)
    expect((bad as Error).message).toMatch(/verdict: expected one of/)
  })

  it('the metrics/UI listener needs the token from the root-only web.token file', async () => {
    expect(statSync(daemon.webTokenFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(daemon.webTokenFile, 'utf8').trim()).toBe(daemon.webToken)
    for (const path of ['/ui/state.json', '/metrics', '/ui', '/ui/servicemap.svg']) {
      const anon = await fetch(`${daemon.httpUrl}${path}`)
      expect(anon.status).toBe(401)
      expect(anon.headers.get('www-authenticate')).toBe('Bearer realm="membrane"')
      expect(await anon.text()).not.toContain('"endpoints"')
      const wrong = await fetch(`${daemon.httpUrl}${path}`, {
        headers: { authorization: `Bearer ${'x'.repeat(daemon.webToken.length)}` },
      })
      expect(wrong.status).toBe(401)
    }
    expect((await fetch(`${daemon.httpUrl}/ui?token=nope`)).status).toBe(401)
    expect((await fetch(`${daemon.httpUrl}/healthz`)).status).toBe(200)
    // The browser's way in: /ui?token= sets an HttpOnly cookie and redirects to a clean /ui.
    const login = await fetch(daemon.uiLoginUrl, { redirect: 'manual' })
    expect(login.status).toBe(303)
    expect(login.headers.get('location')).toBe('/ui')
    const cookie = login.headers.get('set-cookie') ?? ''
    expect(cookie).toMatch(/HttpOnly; SameSite=Strict/)
    const state = await fetch(`${daemon.httpUrl}/ui/state.json`, {
      headers: { cookie: cookie.split(';')[0]! },
    })
    expect(state.status).toBe(200)
    expect(await state.json()).toHaveProperty('endpoints')
  })

  it('redacts URL queries and credential headers in flows by default, not when turned off', async () => {
    const record = {
      source: { ip: '10.1.2.3', port: 40000 },
      destination: { ip: '10.1.2.4', port: 80 },
      http: {
        method: 'GET',
        url: 'http://deathstar/v1/plans?token=s3cr3t',
        headers: [{ key: 'Authorization', value: 'Bearer s3cr3t' }],
      },
    }
    daemon.agent.observer.ingestL7(structuredClone(record))
    const state = await (await fetch(`${daemon.httpUrl}/ui/state.json`, { headers: auth() })).text()
    expect(state).toContain('http://deathstar/v1/plans')
    expect(state).not.toContain('s3cr3t')
    const open = new Agent({ config: { ...config, redactFlows: false } })
    const kept = open.observer.ingestL7(structuredClone(record))
    expect(kept.l7?.http?.url).toBe(record.http.url)
    expect(kept.l7?.http?.headers).toEqual(record.http.headers)
  })

  it('serves Prometheus metrics that promtool accepts, and the UI read-only', async () => {
    const res = await fetch(`${daemon.httpUrl}/metrics`, { headers: auth() })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toMatch(/^membrane_endpoint/m)
    expect(text).toMatch(/^hubble_flows_processed_total/m)
    const lint = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
      let out = ''
      p.stdout.on('data', (c) => {
        out += c
      })
      p.stderr.on('data', (c) => {
        out += c
      })
      p.on('exit', (code) => resolve({ code, out }))
      p.stdin.end(text)
    })
    expect(lint.out).toBe('')
    expect(lint.code).toBe(0)
    const ui = await fetch(`${daemon.httpUrl}/ui`, { headers: auth() })
    expect(ui.headers.get('content-type')).toContain('text/html')
    const post = await fetch(`${daemon.httpUrl}/ui/state.json`, {
      method: 'POST',
      body: '{}',
      headers: auth(),
    })
    expect(post.status).toBe(400) // nothing on the TCP listener changes state
  })

  it('CLI: tables by default, JSON with -o json, clear errors', async () => {
    const created = await cli(config.socketPath, [
      'endpoint',
      'create',
      '--name',
      'cli-one',
      '--labels',
      'app=cli,tier=x',
    ])
    expect(created.code).toBe(0)
    expect(created.out).toMatch(/^ID\s+ENDPOINT\s+IPV4/)
    expect(created.out).toContain('default/cli-one')
    const listed = await cli(config.socketPath, ['endpoint', 'list', '-o', 'json'])
    const eps = JSON.parse(listed.out) as { name: string; identity: number }[]
    expect(eps.map((e) => e.name)).toContain('cli-one')
    const ids = await cli(config.socketPath, ['identity', 'list', '-o', 'json'])
    const mine = eps.find((e) => e.name === 'cli-one')!.identity
    expect(JSON.parse(ids.out).find((i: { id: number }) => i.id === mine).labels).toContain(
      'k8s:app=cli',
    )
    const bad = await cli(config.socketPath, ['endpoint', 'create', '--name', 'Bad!'])
    expect(bad.code).toBe(2)
    expect(bad.err).toMatch(/name: "Bad!"/)
    const missing = await cli(config.socketPath, ['endpoint', 'get', 'default/ghost'])
    expect(missing.code).toBe(1)
    expect(missing.err).toMatch(/endpoint default\/ghost not found/)
    const unknownFlag = await cli(config.socketPath, ['endpoint', 'list', '--bogus'])
    expect(unknownFlag.code).toBe(2)
    const noAgent = await cli('/nonexistent/sock', ['status'])
    expect(noAgent.code).toBe(1)
    expect(noAgent.err).toMatch(/the directory \/nonexistent does not exist/)
    const deleted = await cli(config.socketPath, ['endpoint', 'delete', 'cli-one'])
    expect(deleted.out).toMatch(/deleted endpoint default\/cli-one/)
  })
})

describeKernel('the socket directory', ['root', 'netns'], () => {
  it('refuses a directory others can write to, before touching anything', async () => {
    const { config, cleanupDirs } = testConfig()
    const base = join(config.stateDir, '..')
    const cases: [string, number, number, RegExp][] = [
      ['open', 0o1777, 0, /is writable by every user \(mode 1777\)/],
      ['group', 0o770, 0, /is writable by its group \(mode 0770\)/],
      ['theirs', 0o755, 65534, /is owned by uid 65534, not by the agent's user \(uid 0\)/],
    ]
    try {
      for (const [name, mode, owner, message] of cases) {
        const dir = join(base, name)
        mkdirSync(dir)
        chmodSync(dir, mode)
        chownSync(dir, owner, owner)
        // Another local user (nobody) got there first and took the observer socket's name.
        const planted = join(dir, 'observer.sock')
        writeFileSync(planted, '')
        chownSync(planted, 65534, 65534)
        const e = await startDaemon({ config: { ...config, socketPath: join(dir, 'api.sock') } })
          .then(async (d) => {
            await d.stop({ purge: true })
            return undefined
          })
          .catch((error: unknown) => error as AgentError)
        expect(e?.code).toBe('INVALID_INPUT')
        expect(e?.message).toContain(`socket directory ${dir} `)
        expect(e?.message).toMatch(message)
        // Refused before anything was made: no state directory, no router device.
        expect(existsSync(config.stateDir)).toBe(false)
        expect(existsSync(`/sys/class/net/${config.prefix}_host`)).toBe(false)
      }
    } finally {
      cleanupDirs()
    }
  })
})
