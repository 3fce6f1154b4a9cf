import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, killAndWait, run } from '@membrane/test-utils'

export const root = fileURLToPath(new URL('../..', import.meta.url))

/** A local Verdaccio on 127.0.0.1 with its own storage, a user, and an npm config for it. */
export interface LocalRegistry {
  url: string
  /** Environment for npm commands against this registry (own userconfig and cache). */
  env: NodeJS.ProcessEnv
  dir: string
  stop(): Promise<void>
}

/**
 * Start Verdaccio (the npm package, a devDependency) on a free port: @membrane/* are served
 * only from its own storage (never proxied), everything else through an uplink to the registry
 * npm is configured with here. A user is created through the registry's own adduser API and its
 * token written to an .npmrc that only this registry's npm commands read.
 */
export async function startRegistry(): Promise<LocalRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'membrane-registry-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const upstream = (await run('npm', ['config', 'get', 'registry'])).stdout.trim()
  const config = join(dir, 'config.yaml')
  mkdirSync(join(dir, 'storage'))
  writeFileSync(
    config,
    [
      `storage: ${join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(dir, 'htpasswd')}`,
      '    max_users: 10',
      'uplinks:',
      '  upstream:',
      `    url: ${upstream}`,
      '    timeout: 60s',
      'packages:',
      "  '@membrane/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      '    proxy: upstream',
      'log: { type: stdout, format: json, level: warn }',
      '',
    ].join('\n'),
  )
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(root, 'node_modules/verdaccio/bin/verdaccio'),
      '--config',
      config,
      '--listen',
      `127.0.0.1:${port}`,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VERDACCIO_HANDLE_KILL_SIGNALS: 'true' },
    },
  )
  let log = ''
  child.stdout?.on('data', (c: Buffer) => {
    log += c.toString()
  })
  child.stderr?.on('data', (c: Buffer) => {
    log += c.toString()
  })
  const stop = async () => {
    await killAndWait(child)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const deadline = Date.now() + 60_000
    for (;;) {
      if (child.exitCode !== null) throw new Error(`verdaccio exited ${child.exitCode}: ${log}`)
      try {
        if ((await fetch(`${url}-/ping`)).ok) break
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${url}: ${log}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    const res = await fetch(`${url}-/user/org.couchdb.user:membrane`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'membrane', password: 'membrane-test' }),
    })
    const body = (await res.json()) as { token?: string }
    if (!res.ok || !body.token)
      throw new Error(`adduser failed: ${res.status} ${JSON.stringify(body)}`)
    const npmrc = join(dir, 'npmrc')
    writeFileSync(
      npmrc,
      `registry=${url}\n//127.0.0.1:${port}/:_authToken=${body.token}\nfund=false\naudit=false\nupdate-notifier=false\n`,
    )
    // Only this registry's settings: drop the npm_config_* an outer `npm test` exported.
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) {
      if (!/^npm_/i.test(k)) env[k] = v
    }
    env.npm_config_userconfig = npmrc
    env.npm_config_cache = join(dir, 'cache')
    env.npm_config_registry = url
    return { url, env, dir, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
