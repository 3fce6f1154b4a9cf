/**
 * The agent's side of the L7 proxy process: find a running proxy (pid file + control socket
 * handshake) and adopt it, or spawn one detached; keep its policy in step; take its records and
 * DNS events; restart it when it dies; stop it on purge.
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { DnsLearnEvent, FqdnExpiry, L7ProxyRecord } from '@membrane/l7proxy'
import type { Logger } from '../log'
import {
  type AgentMessage,
  lineChannel,
  type PolicySnapshot,
  type ProxyMessage,
  proxyPaths,
} from './proxy-protocol'

/** What the supervisor needs from the agent. */
export interface ProxySupervisorOptions {
  stateDir: string
  pinRoot: string
  /** The router address the proxy listens on. */
  host: string
  /** The configured port (0: any; a running proxy's port is then kept). */
  port: number
  log: Logger
  /** The policy state the proxy must enforce, read whenever a sync is due. */
  snapshot: () => PolicySnapshot
  onRecord: (record: L7ProxyRecord) => void
  onLost: (count: number) => void
  /** Awaited; the proxy holds the DNS answer until it returns. */
  onLearn: (event: DnsLearnEvent) => Promise<void>
  onExpire: (expired: FqdnExpiry[]) => void
}

/** How long a spawned proxy may take to answer on its control socket. */
const START_TIMEOUT_MS = 30_000
/** How long a sync may wait for the proxy's acknowledgement before the agent goes on. */
const SYNC_TIMEOUT_MS = 2_000

interface Link {
  socket: Socket
  send(m: AgentMessage): boolean
  hello: Extract<ProxyMessage, { t: 'hello' }>
  /** Resolves when the proxy replayed its DNS cache and the agent learned all of it. */
  replayed: Promise<void>
}

/**
 * Runs the L7 proxy as its own process (see proxy-main.ts) so that it survives the agent.
 *
 * @example
 * const sup = new ProxySupervisor({ stateDir, pinRoot, host: router, port: 15001, log, ... })
 * const { port } = await sup.start()
 */
export class ProxySupervisor {
  readonly #o: ProxySupervisorOptions
  readonly #paths: ReturnType<typeof proxyPaths>
  #link: Link | undefined
  #seq = 0
  readonly #acks = new Map<number, () => void>()
  /** The parts last sent on the current link (JSON), so a sync sends only what changed. */
  #sent = new Map<keyof PolicySnapshot, string>()
  #port = 0
  #detached = false
  #restarting: Promise<void> | undefined
  /** How this agent got its proxy: `adopted` (it was running) or `started`. */
  origin: 'adopted' | 'started' | undefined

  constructor(options: ProxySupervisorOptions) {
    this.#o = options
    this.#paths = proxyPaths(options.stateDir)
  }

  /** The proxy's port (0 before start). */
  get port(): number {
    return this.#port
  }

  /** The proxy's pid while connected. */
  get pid(): number | undefined {
    return this.#link?.hello.pid
  }

  /** True while the agent is connected to a running proxy. */
  get connected(): boolean {
    return this.#link !== undefined
  }

  /** Adopt the running proxy, or start one; then sync the full policy. */
  async start(): Promise<{ port: number; pid: number; adopted: boolean }> {
    this.#detached = false
    let link = await this.#connect().catch(() => undefined)
    if (link && !this.#fits(link.hello)) {
      this.#o.log.warn(
        { pid: link.hello.pid, at: `${link.hello.host}:${link.hello.port}` },
        'running L7 proxy has another address or port; replacing it',
      )
      await this.#terminate(link)
      link = undefined
    }
    this.origin = link ? 'adopted' : 'started'
    if (!link) {
      await this.#killStale()
      link = await this.#spawn(this.#o.port)
    }
    this.#use(link)
    // Names the proxy learned before this agent started are learned again before the agent
    // reconciles the policy maps, so that no toFQDNs destination closes across a restart.
    await bounded(link.replayed, START_TIMEOUT_MS)
    await this.sync()
    return { port: link.hello.port, pid: link.hello.pid, adopted: this.origin === 'adopted' }
  }

  /**
   * Send the parts of the policy state that changed since the last sync and wait (bounded) for
   * the proxy to apply them, so a redirect the datapath is about to install finds its rules.
   * Without a proxy connected it returns at once (a new connection gets everything).
   */
  async sync(): Promise<void> {
    const link = this.#link
    if (!link) return
    const snap = this.#o.snapshot()
    const parts: Partial<PolicySnapshot> = {}
    let changed = false
    for (const key of Object.keys(snap) as (keyof PolicySnapshot)[]) {
      const text = JSON.stringify(snap[key])
      if (this.#sent.get(key) === text) continue
      this.#sent.set(key, text)
      ;(parts as Record<string, unknown>)[key] = snap[key]
      changed = true
    }
    if (!changed) return
    const seq = ++this.#seq
    const acked = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#acks.delete(seq)
        this.#o.log.warn({ seq }, 'L7 proxy did not acknowledge a policy sync in time')
        resolve()
      }, SYNC_TIMEOUT_MS)
      this.#acks.set(seq, () => {
        clearTimeout(timer)
        resolve()
      })
    })
    link.send({ t: 'sync', seq, ...parts })
    await acked
  }

  /** Let go of the proxy (agent stop): it keeps running and serving until an agent adopts it. */
  detach(): void {
    this.#detached = true
    this.#link?.socket.destroy()
    this.#link = undefined
  }

  /** Stop the proxy process (purge). */
  async stop(): Promise<void> {
    this.#detached = true
    const link = this.#link ?? (await this.#connect().catch(() => undefined))
    this.#link = undefined
    if (link) await this.#terminate(link)
    await this.#killStale()
  }

  #fits(hello: Link['hello']): boolean {
    return hello.host === this.#o.host && (this.#o.port === 0 || hello.port === this.#o.port)
  }

  /** Connect to the control socket and wait for the hello. */
  #connect(timeoutMs = 2_000): Promise<Link> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.#paths.socket)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error('no hello from the L7 proxy'))
      }, timeoutMs)
      socket.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      let link: Link | undefined
      const learning: Promise<void>[] = []
      let replayed: () => void = () => {}
      const channel = lineChannel<ProxyMessage, AgentMessage>(socket, (m) => {
        if (m.t === 'hello' && !link) {
          clearTimeout(timer)
          const done = new Promise<void>((r) => {
            replayed = r
            socket.once('close', () => r())
          })
          link = { socket, send: channel.send, hello: m, replayed: done }
          resolve(link)
          return
        }
        if (!link) return
        if (m.t === 'replayed') {
          void Promise.all(learning).then(() => replayed())
          return
        }
        const learned = this.#onMessage(link, m)
        if (learned) learning.push(learned)
      })
    })
  }

  #use(link: Link): void {
    this.#link = link
    this.#port = link.hello.port
    this.#sent = new Map()
    link.socket.on('error', () => {})
    link.socket.once('close', () => {
      if (this.#link !== link) return
      this.#link = undefined
      for (const ack of this.#acks.values()) ack()
      this.#acks.clear()
      if (!this.#detached) void this.#restart()
    })
  }

  /** The proxy went away while the agent runs: start another on the same port and resync. */
  #restart(): Promise<void> {
    this.#restarting ??= (async () => {
      for (let attempt = 1; !this.#detached; attempt++) {
        try {
          this.#o.log.warn({ port: this.#port, attempt }, 'L7 proxy gone; restarting it')
          await this.#killStale()
          const link = await this.#connect().catch(() => this.#spawn(this.#port))
          if (this.#detached) {
            link.socket.destroy()
            return
          }
          this.#use(link)
          await this.sync()
          return
        } catch (error) {
          this.#o.log.error({ err: error }, 'L7 proxy restart failed')
          await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * attempt)))
        }
      }
    })().finally(() => {
      this.#restarting = undefined
    })
    return this.#restarting
  }

  /** Handle a message; a learn returns its promise (settled when the agent learned it). */
  #onMessage(link: Link, m: ProxyMessage): Promise<void> | undefined {
    switch (m.t) {
      case 'synced':
        this.#acks.get(m.seq)?.()
        this.#acks.delete(m.seq)
        return
      case 'records':
        for (const r of m.records) this.#o.onRecord({ ...r, time: new Date(r.time) })
        return
      case 'record':
        this.#o.onRecord({ ...m.record, time: new Date(m.record.time) })
        return
      case 'lost':
        this.#o.onLost(m.count)
        return
      case 'learn':
        return this.#o
          .onLearn(m.event)
          .catch((error: unknown) => this.#o.log.warn({ err: error }, 'fqdn learn failed'))
          .finally(() => link.send({ t: 'learned', id: m.id }))
      case 'expire':
        this.#o.onExpire(m.expired)
        return
      default:
        return
    }
  }

  /** Start a proxy process, detached (its own session: it outlives the agent), and adopt it. */
  async #spawn(port: number): Promise<Link> {
    const { command, args } = proxyCommand()
    const logFd = openSync(this.#paths.log, 'a', 0o600)
    let exited: string | undefined
    try {
      const child = spawn(
        command,
        [
          ...args,
          '--control',
          this.#paths.socket,
          '--pid-file',
          this.#paths.pidFile,
          '--pin-root',
          this.#o.pinRoot,
          '--host',
          this.#o.host,
          '--port',
          String(port),
        ],
        { detached: true, stdio: ['ignore', logFd, logFd] },
      )
      child.once('exit', (code, signal) => {
        exited = `exited with ${signal ?? code}`
      })
      child.unref()
    } finally {
      closeSync(logFd)
    }
    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      try {
        return await this.#connect()
      } catch (error) {
        if (exited || Date.now() > deadline) {
          throw new Error(
            `the L7 proxy did not start (${exited ?? 'timed out'}): ${lastLines(this.#paths.log)}`,
            { cause: error },
          )
        }
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }

  /** Ask the proxy to exit and wait until its process is gone. */
  async #terminate(link: Link): Promise<void> {
    const pid = link.hello.pid
    link.send({ t: 'exit' })
    await new Promise<void>((resolve) => {
      if (link.socket.destroyed) resolve()
      link.socket.once('close', () => resolve())
      setTimeout(resolve, 3_000).unref()
    })
    link.socket.destroy()
    await waitGone(pid, 3_000)
  }

  /** A proxy process named in the pid file that does not answer is killed. */
  async #killStale(): Promise<void> {
    const pid = pidFromFile(this.#paths.pidFile)
    if (pid === undefined || !isProxyProcess(pid)) return
    this.#o.log.warn({ pid }, 'killing an L7 proxy that does not answer')
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      return
    }
    await waitGone(pid, 3_000)
  }
}

/** How to run proxy-main: from the source through tsx in the workspace, else the built file. */
function proxyCommand(): { command: string; args: string[] } {
  const here = dirname(fileURLToPath(import.meta.url))
  const source = join(here, 'proxy-main.ts')
  if (existsSync(source)) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
    return {
      command: process.execPath,
      args: ['--conditions=@membrane/source', '--import', tsx, source],
    }
  }
  return { command: process.execPath, args: [join(here, 'l7proxy-main.js')] }
}

/** Wait for `p`, at most `ms`. */
function bounded(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p,
    new Promise<void>((r) => {
      timer = setTimeout(r, ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

function pidFromFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').split(' ')[0])
    return Number.isInteger(pid) && pid > 1 ? pid : undefined
  } catch {
    return undefined
  }
}

/** True when `pid` runs proxy-main (not a recycled pid of something else). */
function isProxyProcess(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return /proxy-main\.(ts|js)\0/.test(cmd)
  } catch {
    return false
  }
}

async function waitGone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (isProxyProcess(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        return
      }
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

function lastLines(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ')
  } catch {
    return 'no log'
  }
}
