/**
 * The control channel between the agent and its L7 proxy process: newline-delimited JSON over
 * a root-only unix socket in the state directory. The proxy listens; an agent connects, gets a
 * `hello`, and sends the policy the proxy enforces (`sync`); the proxy streams L7 records and
 * DNS learn/expire events back. One agent at a time: a new connection replaces the old one.
 */
import type { Socket } from 'node:net'
import { join } from 'node:path'
import type { DnsLearnEvent, FqdnExpiry, L7ProxyRecord } from '@membrane/l7proxy'
import type { IdentityData, ServiceInfo } from '@membrane/policy'

/** The parts of the agent's policy state the proxy needs to answer `l7Rules` like the agent. */
export interface PolicySnapshot {
  /** The imported policy documents, as stored in the state file. */
  docs: unknown[]
  /** Every identity the agent's selector cache knows. */
  identities: IdentityData[]
  /** Local endpoints: id -> identity labels. */
  endpoints: { id: number; labels: string[] }[]
  services: ServiceInfo[]
  /** Names the DNS proxy learned, with their addresses. */
  fqdns: { name: string; ips: string[] }[]
}

/** Agent -> proxy. A `sync` carries only the parts that changed since the last one. */
export type AgentMessage =
  | ({ t: 'sync'; seq: number } & Partial<PolicySnapshot>)
  | { t: 'learned'; id: number }
  /** Stop listening, remove the pid file and the socket, exit (purge). */
  | { t: 'exit' }

/** Proxy -> agent. */
export type ProxyMessage =
  | { t: 'hello'; pid: number; port: number; host: string }
  | { t: 'synced'; seq: number }
  /** L7 records, in order (the proxy batches them: two records a request). */
  | { t: 'records'; records: L7ProxyRecord[] }
  /** One L7 record (what proxy processes started before batching send). */
  | { t: 'record'; record: L7ProxyRecord }
  /** Records (and other messages) dropped while no agent was connected (the buffer was full). */
  | { t: 'lost'; count: number }
  | { t: 'learn'; id: number; event: DnsLearnEvent }
  /** Sent after the hello, once every name still in the proxy's DNS cache was sent as a learn. */
  | { t: 'replayed' }
  | { t: 'expire'; expired: FqdnExpiry[] }

/** Where the proxy's control socket, pid file and log live in the state directory. */
export function proxyPaths(stateDir: string): { socket: string; pidFile: string; log: string } {
  return {
    socket: join(stateDir, 'l7proxy.sock'),
    pidFile: join(stateDir, 'l7proxy.pid'),
    log: join(stateDir, 'l7proxy.log'),
  }
}

/** Longest line accepted on the channel (a policy sync of large documents fits). */
const MAX_LINE = 64 * 1024 * 1024

/**
 * Frame JSON messages over a stream socket, one per line. A line over {@link MAX_LINE} or one
 * that is not JSON closes the connection (the peer is broken, not hostile: the socket is root-only).
 */
export function lineChannel<In, Out>(
  socket: Socket,
  onMessage: (message: In) => void,
): { send(message: Out): boolean } {
  let buffered = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buffered += chunk
    let nl = buffered.indexOf('\n')
    while (nl >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      let message: In
      try {
        message = JSON.parse(line) as In
      } catch {
        socket.destroy()
        return
      }
      onMessage(message)
      nl = buffered.indexOf('\n')
    }
    if (buffered.length > MAX_LINE) socket.destroy()
  })
  return {
    send: (message) => !socket.destroyed && socket.write(`${JSON.stringify(message)}\n`),
  }
}
