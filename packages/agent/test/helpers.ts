import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killAndWait } from '@membrane/test-utils'
import { afterAll, beforeAll, expect } from 'vitest'
import type { EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import type { AgentConfig } from '../src/config'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { AgentError } from '../src/errors'

let counter = 0

/**
 * A configuration private to this test process: its own instance prefix (so interface and
 * namespace names never collide with another agent), state dir, socket, bpffs root and pool.
 */
export function testConfig(): { config: AgentConfig; cleanupDirs(): void } {
  counter += 1
  const tag = `${(process.pid % 36 ** 3).toString(36)}${counter.toString(36)}`
  const prefix = `t${tag}`.slice(0, 6)
  const dir = mkdtempSync(join(tmpdir(), `mbagent-${prefix}-`))
  // A /24 of 10.160.0.0/11 derived from pid and counter: test processes never share a pool,
  // and the demo (10.212.x), the bench (10.200-207) and the default pool (10.200) are elsewhere.
  const idx = (process.pid * 16 + counter) % 8192
  const config: AgentConfig = {
    bpffsRoot: `/sys/fs/bpf/mbagent-${prefix}`,
    stateDir: join(dir, 'state'),
    socketPath: join(dir, 'run', 'api.sock'),
    ipamPool: `10.${160 + (idx >> 8)}.${idx & 255}.0/24`,
    metricsPort: 0,
    metricsAddress: '127.0.0.1',
    kvstore: { type: 'memory' },
    logLevel: 'silent',
    prefix,
    cgroupRoot: '/sys/fs/cgroup',
    nodeName: 'test-node',
    nodeLabels: ['zone=test'],
    clusterName: 'test-cluster',
    nodeIP: '',
    clusterPoolCidr: '',
    clusterPoolMaskSize: 24,
    routingMode: 'tunnel',
    proxyPort: 0,
    socketLbCgroups: [],
    policyParseTimeoutMs: 60_000,
    policyMapMaxEntries: 16_384,
    redactFlows: true,
    redactHttpHeaders: ['authorization', 'cookie'],
    policyAuditNamespaces: [],
  }
  return { config, cleanupDirs: () => rmSync(dir, { recursive: true, force: true }) }
}

/** The `membrane` executable users run (package.json "bin"). */
export const MEMBRANE_BIN = join(import.meta.dirname, '..', 'bin', 'membrane.mjs')

const bin = join(import.meta.dirname, '..', 'src', 'bin.ts')

/**
 * Run `membrane <args>` from the source as a child process (the real CLI, not a wrapper: a
 * signal sent to the child reaches the agent). `env` adds variables (test hooks).
 */
export function spawnMembrane(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(
    process.execPath,
    ['--conditions=@membrane/source', '--import', 'tsx', bin, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    },
  )
}

/** The flags that make `membrane agent` (or `agent cleanup`) use `config`'s private paths. */
export function agentFlags(config: AgentConfig): string[] {
  return [
    '--state-dir',
    config.stateDir,
    '--socket',
    config.socketPath,
    '--bpffs-root',
    config.bpffsRoot,
    '--ipam-pool',
    config.ipamPool,
    '--prefix',
    config.prefix,
    '--metrics-port',
    '0',
    '--proxy-port',
    '0',
    '--log-level',
    'warn',
  ]
}

/** Resolve with the first match of `pattern` in a child's stdout or stderr (reject after `ms`). */
export function waitFor(child: ChildProcess, pattern: RegExp, ms = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${ms} ms: ${out}`)), ms)
    const onData = (c: Buffer) => {
      out += c.toString()
      const m = pattern.exec(out)
      if (m) {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        child.stderr?.off('data', onData)
        resolve(m[0])
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
  })
}

/** Resolve when a child has exited (at once when it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** Follows a chatter.mjs child: the latest echo count, and a wait for `n` more echoes. */
export function followChatter(child: ChildProcess) {
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
    /** `closed` or `error <code>` once the connection ended, else ''. */
    get closed() {
      return closed
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

/** What an l7-loop.mjs child has seen so far. */
export interface L7Tally {
  /** Allowed requests answered 200. */
  allowedOk: number
  /** Allowed requests that got anything else (an error, a 403, a timeout). */
  allowedFailed: number
  /** Denied requests answered 403 by the proxy. */
  denied403: number
  /** Denied requests that reached the server (answered 200). */
  deniedLeaked: number
  /** Denied requests that failed otherwise (no proxy to answer: not a leak). */
  deniedFailed: number
  /** The first failures, for the assertion message. */
  failures: string[]
}

/** Follows an l7-loop.mjs child: a running tally, and a wait for `n` more allowed successes. */
export function followL7(child: ChildProcess) {
  const tally: L7Tally = {
    allowedOk: 0,
    allowedFailed: 0,
    denied403: 0,
    deniedLeaked: 0,
    deniedFailed: 0,
    failures: [],
  }
  const waiters = new Set<() => void>()
  onLines(child, (lines) => {
    for (const line of lines) {
      const [kind, result] = line.split(' ')
      if (kind === 'allowed') {
        if (result === '200') tally.allowedOk += 1
        else tally.allowedFailed += 1
      } else if (kind === 'denied') {
        if (result === '403') tally.denied403 += 1
        else if (result === '200') tally.deniedLeaked += 1
        else tally.deniedFailed += 1
      } else continue
      if (result !== '200' && result !== '403' && tally.failures.length < 5)
        tally.failures.push(line)
    }
    for (const w of waiters) w()
  })
  return {
    tally,
    more(n: number, ms = 20_000): Promise<void> {
      const target = tally.allowedOk + n
      return new Promise((resolve, reject) => {
        const check = () => {
          if (tally.allowedOk < target) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve()
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(
            new Error(
              `only ${tally.allowedOk} of ${target} allowed requests: ${JSON.stringify(tally)}`,
            ),
          )
        }, ms)
        waiters.add(check)
        check()
      })
    },
  }
}

/** Follows a connect-loop.mjs child: attempts answered (`ok`) and not (timeouts, errors). */
export function followConnects(child: ChildProcess): { ok: number; failed: number } {
  const tally = { ok: 0, failed: 0 }
  onLines(child, (lines) => {
    for (const line of lines) {
      if (line === 'ok') tally.ok += 1
      else if (line !== '' && line !== 'done') tally.failed += 1
    }
  })
  return tally
}

/** Call `fn` with each batch of complete lines a child prints on stdout. */
function onLines(child: ChildProcess, fn: (lines: string[]) => void): void {
  let rest = ''
  child.stdout?.on('data', (c: Buffer) => {
    rest += c.toString()
    const lines = rest.split('\n')
    rest = lines.pop() ?? ''
    fn(lines)
  })
}

const fixtures = join(import.meta.dirname, 'fixtures')
const demo = join(import.meta.dirname, '..', '..', '..', 'examples', 'star-wars')

/**
 * The scene of the restart test and probe: `server` (app=server, a TCP echo on 7000 that only
 * org=empire may reach), `tie` (org=empire), `xw` (org=alliance) and `deathstar` (the demo's HTTP
 * server on 80, where org=empire may only POST /v1/request-landing). `inNs` runs a script in an
 * endpoint's namespace (the caller owns and stops the processes).
 */
export async function restartScene(
  client: AgentClient,
  inNs: (netns: string, script: string, args: string[]) => ChildProcess,
): Promise<Record<'server' | 'tie' | 'xw' | 'ds', EndpointView>> {
  const mk = async (name: string, labels: Record<string, string>) =>
    (await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })).endpoint
  const server = await mk('server', { app: 'server' })
  const tie = await mk('tie', { org: 'empire' })
  const xw = await mk('xw', { org: 'alliance' })
  const ds = await mk('deathstar', { org: 'empire', class: 'deathstar' })
  await client.post('/v1/policies', {
    text: readFileSync(join(fixtures, 'only-empire.yaml'), 'utf8'),
  })
  await client.post('/v1/policies', {
    text: readFileSync(join(demo, 'policies', 'sw_l3_l4_l7_policy.yaml'), 'utf8'),
  })
  await waitFor(inNs(server.netns!, join(fixtures, 'echo-server.mjs'), ['7000']), /ready/)
  await waitFor(inNs(ds.netns!, join(demo, 'src', 'deathstar.mjs'), ['80', 'ds']), /ready/)
  return { server, tie, xw, ds }
}

/** The Star Wars endpoints (no servers, no policy): deathstar, tiefighter, xwing in `default`. */
export async function starWarsEndpoints(
  client: AgentClient,
): Promise<Record<'deathstar' | 'tiefighter' | 'xwing', EndpointView>> {
  const mk = async (name: string, labels: Record<string, string>) =>
    (await client.post<{ endpoint: EndpointView }>('/v1/endpoints', { name, labels })).endpoint
  return {
    deathstar: await mk('deathstar', { org: 'empire', class: 'deathstar' }),
    tiefighter: await mk('tiefighter', { org: 'empire', class: 'tiefighter' }),
    xwing: await mk('xwing', { org: 'alliance', class: 'xwing' }),
  }
}

/** An agent for a whole suite: started in beforeAll, purged (and its dirs removed) in afterAll. */
export function suiteDaemon(
  config: AgentConfig,
  cleanupDirs: () => void,
): { readonly daemon: AgentDaemon; readonly client: AgentClient } {
  let daemon: AgentDaemon | undefined
  const client = new AgentClient(config.socketPath)
  beforeAll(async () => {
    daemon = await startDaemon({ config })
  })
  afterAll(async () => {
    await daemon?.stop({ purge: true })
    cleanupDirs()
  })
  return {
    get daemon() {
      if (!daemon) throw new Error('the suite daemon is not running')
      return daemon
    },
    client,
  }
}

/** The AgentError a promise rejects with (fails the test when it resolves or rejects otherwise). */
export async function refusal(p: Promise<unknown>): Promise<AgentError> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  )
  expect(e).toBeInstanceOf(AgentError)
  return e as AgentError
}

/**
 * After a test that ran agents as child processes: kill them, then let a fresh in-process agent
 * on the same state purge whatever they left (endpoints, pins, the proxy), and remove the dirs.
 */
export async function purgeAfterChildren(
  children: Iterable<ChildProcess>,
  config: AgentConfig,
  cleanupDirs: () => void,
): Promise<void> {
  await Promise.all([...children].map((c) => killAndWait(c)))
  const d = await startDaemon({ config: { ...config, logLevel: 'silent' } }).catch(() => undefined)
  await d?.stop({ purge: true })
  cleanupDirs()
}
