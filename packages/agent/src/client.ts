import { existsSync } from 'node:fs'
import { request } from 'node:http'
import type { Socket } from 'node:net'
import { dirname } from 'node:path'
import { AgentError, type AgentErrorCode } from './errors'

/** Default socket path of the agent's API. */
export const DEFAULT_SOCKET = '/var/run/membrane/membrane.sock'

/**
 * A client of the agent's API over its unix socket (JSON over HTTP).
 *
 * @example
 * const client = new AgentClient('/var/run/membrane/membrane.sock')
 * const endpoints = await client.get('/v1/endpoints')
 */
export class AgentClient {
  readonly socketPath: string

  constructor(socketPath: string = DEFAULT_SOCKET) {
    this.socketPath = socketPath
  }

  /** GET a path and return the parsed JSON. */
  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path)
  }

  /** POST a JSON body. */
  post<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body)
  }

  /** DELETE a path. */
  delete<T = unknown>(path: string): Promise<T> {
    return this.request<T>('DELETE', path)
  }

  /** Send one request; an error answer becomes an {@link AgentError} with the server's code. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let doc: unknown
            try {
              doc = text.trim() === '' ? null : JSON.parse(text)
            } catch {
              reject(
                new AgentError(
                  'INTERNAL',
                  `agent answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`,
                ),
              )
              return
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (
                doc as { error?: { code?: AgentErrorCode; message?: string; field?: string } }
              )?.error
              reject(
                new AgentError(
                  e?.code ?? 'INTERNAL',
                  e?.message ?? `agent answered ${res.statusCode}`,
                  {
                    ...(e?.field ? { field: e.field } : {}),
                  },
                ),
              )
              return
            }
            resolve(doc as T)
          })
          res.on('error', reject)
        },
      )
      req.on('error', (error: NodeJS.ErrnoException) =>
        reject(connectError(this.socketPath, error)),
      )
      // The agent may answer (a 413) and close while the last bytes of a large body are still
      // queued here: the EPIPE that follows on the socket, after req has let go of it, must not
      // crash the caller. Errors before the answer still reach req's handler above.
      req.on('socket', (socket) => {
        if (guarded.has(socket)) return
        guarded.add(socket)
        socket.on('error', () => {})
      })
      req.end(payload)
    })
  }

  /**
   * GET a streaming path (NDJSON) and call `onItem` for each line until the server ends or the
   * returned `close()` is called.
   */
  stream(path: string, onItem: (item: unknown) => void): { done: Promise<void>; close(): void } {
    let close = () => {}
    const done = new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method: 'GET' }, (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            try {
              const e = JSON.parse(Buffer.concat(chunks).toString('utf8')).error
              reject(new AgentError(e.code, e.message, e.field ? { field: e.field } : {}))
            } catch {
              reject(new AgentError('INTERNAL', `agent answered ${res.statusCode}`))
            }
          })
          return
        }
        let buf = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => {
          buf += c
          let nl = buf.indexOf('\n')
          while (nl >= 0) {
            const line = buf.slice(0, nl)
            buf = buf.slice(nl + 1)
            if (line.trim()) onItem(JSON.parse(line))
            nl = buf.indexOf('\n')
          }
        })
        res.on('end', () => resolve())
        res.on('close', () => resolve())
      })
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNRESET') resolve()
        else reject(connectError(this.socketPath, error))
      })
      req.end()
      close = () => {
        req.destroy()
        resolve()
      }
    })
    return { done, close: () => close() }
  }
}

/** Sockets (kept alive and reused by the http agent) that already ignore late errors. */
const guarded = new WeakSet<Socket>()

function connectError(socketPath: string, error: NodeJS.ErrnoException): AgentError {
  if (error.code === 'EACCES' || error.code === 'EPERM') {
    return new AgentError(
      'FORBIDDEN',
      `permission denied on ${socketPath}: the membrane API is for root only (run as root or with sudo)`,
      { cause: error },
    )
  }
  // Checked first: a missing directory is neither a permission problem nor a stopped agent.
  const dir = dirname(socketPath)
  if (!existsSync(dir)) {
    return new AgentError(
      'UNAVAILABLE',
      `no agent socket at ${socketPath}: the directory ${dir} does not exist (start an agent with \`membrane agent\`, or pass --socket)`,
      { cause: error },
    )
  }
  if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
    return new AgentError(
      'UNAVAILABLE',
      `no agent is listening on ${socketPath} (start one with \`membrane agent\`, or pass --socket)`,
      { cause: error },
    )
  }
  return new AgentError('INTERNAL', `cannot talk to the agent on ${socketPath}: ${error.message}`, {
    cause: error,
  })
}
