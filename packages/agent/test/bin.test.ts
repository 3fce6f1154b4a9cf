import { type ChildProcess, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { describeKernel, killAndWait } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'
import { isLive } from '../src/api'
import { startDaemon } from '../src/daemon'
import { agentFlags, MEMBRANE_BIN, testConfig, waitFor } from './helpers'

/** Pids of the processes whose command line has `arg` (this test's private socket path). */
function pidsWithArg(arg: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').includes(arg)) {
        pids.push(Number(name))
      }
    } catch {
      // the process exited while we looked
    }
  }
  return pids
}

const exited = (child: ChildProcess) =>
  new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  )

describeKernel('the membrane bin: its pid is the agent', ['root', 'netns', 'bpf', 'tc'], () => {
  const { config, cleanupDirs } = testConfig()
  const children = new Set<ChildProcess>()
  // The bin as a user or systemd starts it: node runs bin/membrane.mjs, and that pid is watched.
  const startAgent = () => {
    const child = spawn(process.execPath, [MEMBRANE_BIN, 'agent', ...agentFlags(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }

  afterAll(async () => {
    await Promise.all([...children].map((c) => killAndWait(c)))
    // An agent that outlived its bin (what this file tests against) was started by this test:
    // find it by its private socket path and stop it.
    for (const pid of pidsWithArg(config.socketPath)) process.kill(pid, 'SIGKILL')
    const d = await startDaemon({ config: { ...config, logLevel: 'silent' } }).catch(
      () => undefined,
    )
    await d?.stop({ purge: true })
    cleanupDirs()
  })

  it('kill -9 of the pid stops the agent, and a fresh agent starts without CONFLICT', async () => {
    const first = startAgent()
    await waitFor(first, /API on/)
    expect(await isLive(config.socketPath)).toBe(true)
    expect(pidsWithArg(config.socketPath)).toEqual([first.pid])

    first.kill('SIGKILL')
    expect(await exited(first)).toBe('SIGKILL')
    expect(pidsWithArg(config.socketPath)).toEqual([])
    expect(await isLive(config.socketPath)).toBe(false)

    const second = startAgent()
    expect(await waitFor(second, /API on|CONFLICT.*/)).toBe('API on')
    second.kill('SIGTERM')
    expect(await exited(second)).toBe(0)
    expect(await isLive(config.socketPath)).toBe(false)
  }, 60_000)

  it('SIGINT to the pid stops the agent gracefully (exit 0, socket closed)', async () => {
    const agent = startAgent()
    await waitFor(agent, /API on/)
    agent.kill('SIGINT')
    expect(await exited(agent)).toBe(0)
    expect(pidsWithArg(config.socketPath)).toEqual([])
    expect(await isLive(config.socketPath)).toBe(false)
  }, 60_000)
})
