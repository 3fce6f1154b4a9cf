/**
 * The L7 proxy as its own process, so that L7-allowed traffic keeps flowing while the agent is
 * down or restarting (the agent spawns it detached and re-adopts it; see proxy-supervisor.ts).
 * It owns its listening sockets; it reads original destinations from the pinned `mb_proxy4` /
 * `mb_proxy6` maps; it enforces the policy the agent last synced; L7 records and DNS learn events
 * go to the connected agent, and are buffered (bounded) while none is connected.
 *
 * node proxy-main --control SOCK --pid-file FILE --pin-root DIR --host IP --port N
 */
import { chmodSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { parseArgs } from 'node:util'
import { openPinnedMap } from '@membrane/bpf-loader-napi'
import { ProxyMap } from '@membrane/datapath'
import { batchRecords, L7Proxy } from '@membrane/l7proxy'
import { ReplicatedPolicy } from './proxy-policy'
import { type AgentMessage, lineChannel, type ProxyMessage } from './proxy-protocol'

/** Records and messages kept while no agent is connected; the oldest are dropped and counted. */
const BUFFER_LIMIT = 10_000

const { values } = parseArgs({
  options: {
    control: { type: 'string' },
    'pid-file': { type: 'string' },
    'pin-root': { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
  },
})
const control = values.control
const pidFile = values['pid-file']
const pinRoot = values['pin-root']
if (!control || !pidFile || !pinRoot || !values.host || values.port === undefined) {
  process.stderr.write('l7proxy: needs --control, --pid-file, --pin-root, --host and --port\n')
  process.exit(2)
}
const port = Number(values.port)

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} l7proxy[${process.pid}]: ${msg}\n`)
}

/** The pinned origin maps, reopened for every agent (a new agent may have re-created them). */
function openOrigins(): ProxyMap {
  const six = `${pinRoot}/mb_proxy6`
  return new ProxyMap(
    openPinnedMap(`${pinRoot}/mb_proxy4`),
    existsSync(six) ? openPinnedMap(six) : undefined,
  )
}

let origins = openOrigins()
const policy = new ReplicatedPolicy()

// ---------------------------------------------------------------- the agent link
let agent: { socket: Socket; send(m: ProxyMessage): boolean } | undefined
const pending: ProxyMessage[] = []
/** Records and other messages in `pending`. */
let pendingSize = 0
let lost = 0
const learnWaits = new Map<number, () => void>()
let learnId = 0

const sizeOf = (m: ProxyMessage) => (m.t === 'records' ? m.records.length : 1)

function toAgent(message: ProxyMessage): void {
  if (agent && !agent.socket.destroyed) {
    agent.send(message)
    return
  }
  pending.push(message)
  pendingSize += sizeOf(message)
  while (pendingSize > BUFFER_LIMIT && pending.length > 1) {
    const n = sizeOf(pending.shift() as ProxyMessage)
    pendingSize -= n
    lost += n
  }
}

// Records leave in batches (one message, one write, one parse by the agent per batch), after the
// responses they describe: one write per record would cost more than the request.
const records = batchRecords((batch) => toAgent({ t: 'records', records: batch }))

const proxy = new L7Proxy({
  origins: {
    resolve: (peer) => origins.lookup(peer.address, peer.port, peer.protocol),
  },
  policy,
  onRecord: records,
  dns: {
    // Awaited before the answer goes out, so the agent can open the datapath for the addresses.
    // Without an agent the event is queued and the answer goes out at once: the datapath then
    // keeps the new addresses closed until the agent is back and has learned them.
    onLearn: (event) => {
      const id = ++learnId
      if (!agent || agent.socket.destroyed) {
        toAgent({ t: 'learn', id, event })
        return
      }
      return new Promise<void>((resolve) => {
        learnWaits.set(id, resolve)
        toAgent({ t: 'learn', id, event })
      })
    },
    onExpire: (expired) => toAgent({ t: 'expire', expired }),
  },
})

function onAgentMessage(m: AgentMessage, send: (m: ProxyMessage) => boolean): void {
  switch (m.t) {
    case 'sync': {
      const { t: _t, seq, ...parts } = m
      try {
        policy.apply(parts)
      } catch (error) {
        log(`policy sync ${seq} refused, previous policy kept: ${(error as Error).message}`)
      }
      send({ t: 'synced', seq })
      return
    }
    case 'learned':
      learnWaits.get(m.id)?.()
      learnWaits.delete(m.id)
      return
    case 'exit':
      void shutdown(0)
  }
}

function adopt(socket: Socket): void {
  if (agent) agent.socket.destroy()
  origins = openOrigins()
  const channel = lineChannel<AgentMessage, ProxyMessage>(socket, (m) =>
    onAgentMessage(m, channel.send),
  )
  const link = { socket, send: channel.send }
  agent = link
  socket.on('error', () => {})
  socket.on('close', () => {
    if (agent === link) agent = undefined
    // Nobody will answer these any more; the DNS answers go out.
    for (const resolve of learnWaits.values()) resolve()
    learnWaits.clear()
  })
  channel.send({ t: 'hello', pid: process.pid, port: proxy.port, host: values.host! })
  if (lost > 0) channel.send({ t: 'lost', count: lost })
  lost = 0
  for (const m of pending.splice(0)) channel.send(m)
  pendingSize = 0
  // A new agent knows none of the names this proxy learned: replay them with their remaining TTL,
  // so that toFQDNs destinations stay open across an agent restart.
  const now = Date.now()
  for (const entry of proxy.dns.cache.entries()) {
    const live = entry.ips.filter((i) => i.expiresAt > now)
    if (live.length === 0) continue
    const ttl = Math.max(1, Math.ceil((Math.min(...live.map((i) => i.expiresAt)) - now) / 1000))
    const event = {
      name: entry.name,
      ips: live.map((i) => i.ip),
      cnames: [],
      ttl,
      answerTtl: ttl,
      endpointId: 0,
      srcIdentity: 0,
    }
    channel.send({ t: 'learn', id: 0, event })
  }
  channel.send({ t: 'replayed' })
}

// ---------------------------------------------------------------- lifetime
let stopping = false
async function shutdown(code: number): Promise<void> {
  if (stopping) return
  stopping = true
  records.flush()
  server.close()
  rmSync(pidFile!, { force: true })
  rmSync(control!, { force: true })
  await proxy.close().catch(() => {})
  process.exit(code)
}

/** True when a live proxy already answers on the control socket (then this one must not start). */
function controlIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

const server = createServer(adopt)

async function main(): Promise<void> {
  if (await controlIsLive(control!)) {
    log(`another proxy answers on ${control}; exiting`)
    process.exit(3)
  }
  await proxy.listen({ port, host: values.host! })
  rmSync(control!, { force: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(control, () => resolve())
  })
  chmodSync(control!, 0o600)
  const tmp = `${pidFile}.${process.pid}.tmp`
  writeFileSync(tmp, `${process.pid} ${proxy.port}\n`, { mode: 0o600 })
  renameSync(tmp, pidFile!)
  log(`listening on ${values.host}:${proxy.port}, control ${control}`)
}

process.on('SIGTERM', () => void shutdown(0))
process.on('SIGINT', () => void shutdown(0))
// The agent's terminal going away must not stop the proxy.
process.on('SIGHUP', () => {})
main().catch((error: unknown) => {
  log(`cannot start: ${(error as Error).message}`)
  process.exit(1)
})
