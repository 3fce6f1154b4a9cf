// npm run bench -- agent/restart-probe   (root, BPF, network namespaces)
// The restart probe: traffic of every kind runs while the agent is killed with SIGKILL, stays
// dead for DOWN_MS, and is started again on the same state and pins. Figures, over the window from
// the kill to RECOVERED_MS after the restarted agent has reconciled:
//   long-lived connections broken, new allowed connections failed, denied requests leaked (L4 and
//   L7), L7-allowed requests failed (HTTP through the L7 proxy), seconds to recover (restarted
//   agent process to API up, every endpoint ready and enforcing, the L7 proxy adopted).
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { killAndWait, reportFigure } from '@membrane/test-utils'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { startDaemon } from '../src/daemon'
import {
  agentFlags,
  exited,
  followChatter,
  followConnects,
  followL7,
  restartScene,
  spawnMembrane,
  testConfig,
  waitFor,
} from '../test/helpers'

const DOWN_MS = 3_000
const RECOVERED_MS = 3_000
const LONG_LIVED = 2

const fixtures = join(import.meta.dirname, '..', 'test', 'fixtures')

const { config, cleanupDirs } = testConfig()
const children = new Set<ChildProcess>()
const track = (child: ChildProcess) => {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
const inNs = (netns: string, script: string, args: string[]) =>
  track(
    spawn('ip', ['netns', 'exec', netns, process.execPath, script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

try {
  let agent = track(spawnMembrane(['agent', ...agentFlags(config)]))
  await waitFor(agent, /API on/)
  const client = new AgentClient(config.socketPath)
  const { server, tie, xw, ds } = await restartScene(client, inNs)

  const chatters = Array.from({ length: LONG_LIVED }, () =>
    followChatter(inNs(tie.netns!, join(fixtures, 'chatter.mjs'), [server.ipv4, '7000'])),
  )
  for (const c of chatters) await c.more(5)
  const loops = [
    inNs(tie.netns!, join(fixtures, 'connect-loop.mjs'), [server.ipv4, '7000', '1000']),
    inNs(xw.netns!, join(fixtures, 'connect-loop.mjs'), [server.ipv4, '7000', '300']),
    inNs(tie.netns!, join(fixtures, 'l7-loop.mjs'), [`http://${ds.ipv4}`]),
  ]
  const allowed = followConnects(loops[0]!)
  const denied = followConnects(loops[1]!)
  const l7 = followL7(loops[2]!)
  await l7.more(5)

  // The window opens: counts from here on.
  const at = { allowed: { ...allowed }, denied: { ...denied }, l7: { ...l7.tally } }
  agent.kill('SIGKILL')
  await exited(agent)
  await sleep(DOWN_MS)
  const t0 = performance.now()
  agent = track(spawnMembrane(['agent', ...agentFlags(config)]))
  await waitFor(agent, /API on/, 60_000)
  const apiSeconds = (performance.now() - t0) / 1000
  for (;;) {
    const eps = await client.get<EndpointView[]>('/v1/endpoints')
    const status = await client.get<AgentStatus>('/v1/status')
    if (
      eps.every((e) => e.health === 'ready' && e.enforcing) &&
      status.components.l7proxy?.state === 'ok'
    )
      break
    await sleep(50)
  }
  const recoverSeconds = (performance.now() - t0) / 1000
  await sleep(RECOVERED_MS)
  for (const l of loops) l.kill('SIGTERM')
  await Promise.all(loops.map((l) => exited(l)))

  const extra = {
    downMs: DOWN_MS,
    note: 'kill -9 of the agent, restart on the same state and pins; window = kill .. reconciled + 3 s',
  }
  reportFigure({
    name: 'agent.restart_probe.long_lived_broken',
    value: chatters.filter((c) => c.closed !== '').length,
    unit: 'connections',
    of: LONG_LIVED,
    ...extra,
  })
  reportFigure({
    name: 'agent.restart_probe.allowed_failed',
    value: allowed.failed - at.allowed.failed,
    unit: 'connections',
    of: allowed.ok + allowed.failed - at.allowed.ok - at.allowed.failed,
    ...extra,
  })
  reportFigure({
    name: 'agent.restart_probe.denied_leaked',
    value: denied.ok - at.denied.ok + (l7.tally.deniedLeaked - at.l7.deniedLeaked),
    unit: 'requests',
    of:
      denied.ok +
      denied.failed -
      at.denied.ok -
      at.denied.failed +
      (l7.tally.denied403 + l7.tally.deniedLeaked + l7.tally.deniedFailed) -
      (at.l7.denied403 + at.l7.deniedLeaked + at.l7.deniedFailed),
    ...extra,
  })
  reportFigure({
    name: 'agent.restart_probe.l7_allowed_failed',
    value: l7.tally.allowedFailed - at.l7.allowedFailed,
    unit: 'requests',
    of: l7.tally.allowedOk + l7.tally.allowedFailed - at.l7.allowedOk - at.l7.allowedFailed,
    ...extra,
  })
  reportFigure({
    name: 'agent.restart_probe.recover_seconds',
    value: +recoverSeconds.toFixed(2),
    unit: 's',
    apiUpSeconds: +apiSeconds.toFixed(2),
    loadAverage: loadavg()[0],
    note: 'restarted agent process started -> API up, every endpoint ready and enforcing, L7 proxy adopted',
  })
  agent.kill('SIGTERM')
  await exited(agent)
} finally {
  await Promise.all([...children].map((c) => killAndWait(c)))
  // A fresh in-process agent on the same state purges what the agents left (proxy included).
  const d = await startDaemon({ config: { ...config, logLevel: 'silent' } }).catch(() => undefined)
  await d?.stop({ purge: true })
  cleanupDirs()
}
