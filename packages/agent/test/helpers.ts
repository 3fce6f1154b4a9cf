import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { AgentClient } from '../src/client'
import type { AgentConfig } from '../src/config'
import { type AgentDaemon, startDaemon } from '../src/daemon'

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
    policyParseTimeoutMs: 60_000,
    redactFlows: true,
    redactHttpHeaders: ['authorization', 'cookie'],
  }
  return { config, cleanupDirs: () => rmSync(dir, { recursive: true, force: true }) }
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
