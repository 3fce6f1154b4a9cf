import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentConfig } from '../src/config'

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
    proxyPort: 0,
    socketLbCgroups: [],
  }
  return { config, cleanupDirs: () => rmSync(dir, { recursive: true, force: true }) }
}

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

/** The `agent` flags that point an agent (or `agent cleanup`) at a test configuration. */
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
export function waitForOutput(child: ChildProcess, pattern: RegExp, ms = 30_000): Promise<string> {
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
