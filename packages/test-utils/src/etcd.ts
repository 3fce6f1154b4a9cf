import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findCommand } from './exec'
import { uniqueName } from './names'
import { killAndWait } from './netns'
import { freePort } from './ports'

/** A real etcd-server on loopback, in a temp data dir, for one test file. */
export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:23791`. */
  readonly endpoint: string
  readonly clientPort: number
  readonly dataDir: string
  /** True while the server process runs. */
  readonly running: boolean
  /** SIGKILL the server (data kept), to test faults. */
  kill(): Promise<void>
  /** Start it again on the same ports and data dir. */
  restart(): Promise<void>
  /** Stop the server and delete its data dir. */
  stop(): Promise<void>
}

export interface EtcdOptions {
  /** How long to wait for the server to answer /health. Default 15 s. */
  startTimeoutMs?: number
}

/**
 * Start etcd (Debian's etcd-server) on free loopback ports in a temp dir and wait until it is
 * healthy. The process is killed at exit if the test forgets `stop()`; a crashed test's server is
 * found and killed by the next run's sweep.
 *
 * @example
 * const etcd = await startEtcd()
 * afterAll(() => etcd.stop())
 */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const bin = findCommand('etcd')
  if (!bin)
    throw new Error('etcd is not installed: run tools/setup.sh (Debian package etcd-server)')
  const name = uniqueName()
  const dataDir = join(tmpdir(), `${name}-etcd`)
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const clientPort = await freePort()
  const peerPort = await freePort()
  const endpoint = `http://127.0.0.1:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  const args = [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    '--initial-cluster-state=new',
    '--log-level=error',
    '--logger=zap',
  ]
  let child: ChildProcess | undefined
  let log = ''
  const onExit = () => child?.kill('SIGKILL')
  process.once('exit', onExit)

  const launch = async () => {
    log = ''
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-8000)
    })
    child.stderr?.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-8000)
    })
    await waitHealthy(endpoint, child, options.startTimeoutMs ?? 15_000, () => log)
  }
  await launch()

  return {
    endpoint,
    clientPort,
    dataDir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null
    },
    async kill() {
      if (!child) return
      const c = child
      const exited = new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) resolve()
        else c.once('exit', () => resolve())
      })
      c.kill('SIGKILL')
      await exited
    },
    async restart() {
      if (child && child.exitCode === null && child.signalCode === null) await killAndWait(child)
      await launch()
    },
    async stop() {
      process.removeListener('exit', onExit)
      if (child) await killAndWait(child)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

async function waitHealthy(
  endpoint: string,
  child: ChildProcess,
  timeoutMs: number,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited during start (${child.exitCode ?? child.signalCode}):\n${log()}`)
    }
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) })
      const body = (await res.json()) as { health?: string }
      if (body.health === 'true') return
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  child.kill('SIGKILL')
  throw new Error(`etcd did not become healthy at ${endpoint} within ${timeoutMs} ms:\n${log()}`)
}
