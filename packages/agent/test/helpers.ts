import type { ChildProcess } from 'node:child_process'
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

/** The `membrane` executable users run (package.json "bin"). */
export const MEMBRANE_BIN = join(import.meta.dirname, '..', 'bin', 'membrane.mjs')

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
    '--log-level',
    'warn',
  ]
}

/** Resolve with the first match of `pattern` in a child's stdout or stderr. */
export function waitFor(child: ChildProcess, pattern: RegExp, ms = 15_000): Promise<string> {
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
