import { chmodSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { type ObserverServer, startObserverServer } from '@membrane/flows'
import { Agent, type AgentOptions } from './agent'
import { apiRoutes, ensureSocketDir, handle, isLive, listenUnix } from './api'
import { AgentError } from './errors'
import { authorizeWeb, loadOrCreateWebToken, webRoutes } from './web'

/** A running agent with its API socket and its metrics/UI listener. */
export interface AgentDaemon {
  agent: Agent
  /** The API's unix socket path. */
  socketPath: string
  /** The Hubble-compatible Observer gRPC socket (`membrane observe` talks to it). */
  observerSocket: string
  /** `http://address:port` of the metrics and web UI listener. */
  httpUrl: string
  /** The file (0600, next to the API socket) with the token that listener requires. */
  webTokenFile: string
  /** The token itself (`Authorization: Bearer <token>`). */
  webToken: string
  /** The address that logs a browser in: `/ui?token=...` (it sets a cookie and redirects). */
  uiLoginUrl: string
  /** Stop serving; the datapath keeps running unless `purge`. */
  stop(options?: { purge?: boolean }): Promise<void>
}

/**
 * Start an agent and serve its API on the unix socket and its metrics + web UI (`/metrics`,
 * `/ui`) on `metricsAddress:metricsPort`.
 *
 * @example
 * const d = await startDaemon({ config: { stateDir: '/tmp/mb' } })
 * process.on('SIGTERM', () => d.stop())
 */
export async function startDaemon(options: AgentOptions = {}): Promise<AgentDaemon> {
  const agent = new Agent(options)
  // Refuse before touching anything: a socket directory others may write to, or another agent
  // already serving this socket.
  ensureSocketDir(dirname(agent.config.socketPath))
  if (await isLive(agent.config.socketPath)) {
    throw new AgentError('CONFLICT', `another agent is listening on ${agent.config.socketPath}`, {
      field: 'socketPath',
    })
  }
  await agent.start()
  let api: Server | undefined
  let web: Server | undefined
  let observer: ObserverServer | undefined
  const observerSocket = observerSocketFor(agent.config.socketPath)
  const webTokenFile = join(dirname(agent.config.socketPath), 'web.token')
  let webToken = ''
  try {
    webToken = loadOrCreateWebToken(webTokenFile)
    api = await listenUnix(apiRoutes(agent), agent.config.socketPath)
    observer = await startObserverServer(agent.observer, { address: `unix://${observerSocket}` })
    chmodSync(observerSocket, 0o600)
    const routes = webRoutes(agent, { metrics: () => agent.metrics.metrics() })
    web = createServer((req, res) => {
      if (authorizeWeb(req, res, webToken)) void handle(routes, req, res)
    })
    await new Promise<void>((resolve, reject) => {
      web!.once('error', reject)
      web!.listen(agent.config.metricsPort, agent.config.metricsAddress, () => resolve())
    })
  } catch (error) {
    api?.close()
    await observer?.close()
    await agent.stop()
    throw error
  }
  const addr = web.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  agent.log.info({ socket: agent.config.socketPath, http: `${host}:${addr.port}` }, 'serving')
  let stopped = false
  return {
    agent,
    socketPath: agent.config.socketPath,
    observerSocket,
    httpUrl: `http://${host}:${addr.port}`,
    webTokenFile,
    webToken,
    uiLoginUrl: `http://${host}:${addr.port}/ui?token=${webToken}`,
    async stop(opts = {}) {
      if (stopped) return
      stopped = true
      const close = (s: Server) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve())
          s.closeAllConnections()
        })
      await Promise.all([close(api!), close(web!), observer!.close()])
      await agent.stop(opts)
    },
  }
}

/** Where the Observer gRPC socket lives: next to the API socket, `observer.sock`. */
export function observerSocketFor(socketPath: string): string {
  return join(dirname(socketPath), 'observer.sock')
}
