import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { dirname } from 'node:path'
import type { Agent } from './agent'
import { AgentError, invalid } from './errors'
import { filterFromQuery, flowToJson } from './internal/flows'

/** A route handler: gets the path parameters, the query and the parsed JSON body. */
type Handler = (ctx: {
  params: string[]
  query: URLSearchParams
  body: unknown
  req: IncomingMessage
  res: ServerResponse
}) => Promise<unknown> | unknown

interface Route {
  method: string
  pattern: RegExp
  handler: Handler
}

const SEG = '([a-z0-9][a-z0-9-]*)'
const MAX_BODY = 4 * 1024 * 1024

/** Marker a handler returns when it wrote the response itself (streams). */
export const STREAMED = Symbol('streamed')

/**
 * The API's routes. Every body is JSON; errors are `{ error: { code, message, field? } }` with
 * the HTTP status of the code (400 invalid input, 404 not found, 409 conflict, 503 unavailable).
 */
export function apiRoutes(agent: Agent): Route[] {
  const r = (method: string, path: string, handler: Handler): Route => ({
    method,
    pattern: new RegExp(`^${path}$`),
    handler,
  })
  return [
    r('GET', '/v1/status', () => agent.status()),
    r('GET', '/v1/endpoints', () => agent.listEndpoints()),
    r('POST', '/v1/endpoints', async ({ body, res }) => {
      const out = await agent.createEndpoint(body as never)
      res.statusCode = out.created ? 201 : 200
      return out
    }),
    r('GET', `/v1/endpoints/${SEG}/${SEG}`, ({ params }) =>
      agent.getEndpoint(`${params[0]}/${params[1]}`),
    ),
    r('DELETE', `/v1/endpoints/${SEG}/${SEG}`, ({ params }) =>
      agent.deleteEndpoint(`${params[0]}/${params[1]}`),
    ),
    r('GET', '/v1/policies', () => agent.listPolicies()),
    r('POST', '/v1/policies', ({ body }) => {
      const b = (body ?? {}) as { text?: unknown; source?: unknown }
      return agent.importPolicy(b.text, typeof b.source === 'string' ? b.source : 'policy')
    }),
    r('DELETE', '/v1/policies', ({ query }) => {
      const name = query.get('name')
      if (!name) throw invalid('name', 'give the policy name as ?name=')
      const namespace = query.get('namespace') ?? undefined
      const kind = query.get('kind') ?? undefined
      return agent.deletePolicy({
        name,
        ...(namespace ? { namespace } : {}),
        ...(kind ? { kind } : {}),
      })
    }),
    r('POST', '/v1/policy/trace', ({ body }) => agent.tracePolicy(body)),
    r('POST', '/v1/policy/probe', ({ body }) => agent.probePolicy(body ?? {})),
    r('GET', `/v1/bpf/policy/${SEG}/${SEG}`, ({ params }) =>
      agent.endpointPolicyMap(`${params[0]}/${params[1]}`),
    ),
    r('GET', '/v1/bpf/lb', () => agent.bpfServices()),
    r('GET', '/v1/identities', () => agent.listIdentities()),
    r('GET', '/v1/ipcache', () => agent.ipcacheEntries()),
    r('GET', '/v1/nodes', () => agent.listNodes()),
    r('GET', '/v1/flows', async ({ query, res }) => {
      const filter = filterFromQuery(query)
      const lastText = query.get('last') ?? '20'
      if (!/^[0-9]{1,7}$/.test(lastText))
        throw invalid('last', `expected a count, got ${JSON.stringify(lastText)}`)
      const follow = query.get('follow') === '1'
      const abort = new AbortController()
      res.on('close', () => abort.abort())
      res.setHeader('content-type', 'application/x-ndjson')
      res.flushHeaders()
      const stream = agent.observer.getFlows(
        { number: Number(lastText), follow, whitelist: filter ? [filter] : [] },
        abort.signal,
      )
      for await (const item of stream) {
        if ('entry' in item && item.entry.flow)
          res.write(`${JSON.stringify(flowToJson(item.entry.flow))}\n`)
        else if ('lost' in item) res.write(`${JSON.stringify({ lost: item.lost })}\n`)
      }
      res.end()
      return STREAMED
    }),
    r('GET', '/v1/monitor', ({ req, res }) => {
      res.setHeader('content-type', 'application/x-ndjson')
      res.flushHeaders()
      const onEvent = (e: unknown) => res.write(`${JSON.stringify(e)}\n`)
      agent.monitor.on('event', onEvent)
      return new Promise((resolve) => {
        req.on('close', () => {
          agent.monitor.off('event', onEvent)
          resolve(STREAMED)
        })
      })
    }),
    r('GET', '/v1/services', () => agent.listServices()),
    r('POST', '/v1/services', async ({ body, res }) => {
      res.statusCode = 201
      return agent.createService(body as never)
    }),
    r('DELETE', `/v1/services/${SEG}/${SEG}`, ({ params }) =>
      agent.deleteService(`${params[0]}/${params[1]}`),
    ),
  ]
}

/** Answer one request from the route table. */
export async function handle(
  routes: Route[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://membrane')
    const matching = routes.filter((r) => r.pattern.test(url.pathname))
    if (matching.length === 0) {
      throw new AgentError('NOT_FOUND', `no such API path: ${url.pathname}`, { field: 'path' })
    }
    const route = matching.find((r) => r.method === req.method)
    if (!route) {
      res.setHeader('allow', matching.map((r) => r.method).join(', '))
      throw new AgentError('INVALID_INPUT', `${req.method} is not allowed on ${url.pathname}`, {
        field: 'method',
      })
    }
    const params = (route.pattern.exec(url.pathname) ?? []).slice(1).map(decodeURIComponent)
    const body = req.method === 'POST' || req.method === 'PUT' ? await readJson(req) : undefined
    const out = await route.handler({ params, query: url.searchParams, body, req, res })
    if (out === STREAMED) return
    res.setHeader('content-type', 'application/json')
    res.end(`${JSON.stringify(out ?? null)}\n`)
  } catch (error) {
    const e =
      error instanceof AgentError
        ? error
        : new AgentError('INTERNAL', (error as Error).message ?? String(error), { cause: error })
    if (!res.headersSent) {
      res.statusCode = e.status
      res.setHeader('content-type', 'application/json')
    }
    res.end(`${JSON.stringify(e.toJSON())}\n`)
  }
}

function tooLarge(size: string): AgentError {
  return new AgentError(
    'TOO_LARGE',
    `request body is ${size}; the limit is ${MAX_BODY} bytes (4 MiB): split the input`,
    { field: 'body' },
  )
}

/** Over the limit, a body is still read (and dropped) up to this size so the client gets the 413. */
const MAX_DRAIN = 16 * MAX_BODY

/**
 * Read a JSON body of at most {@link MAX_BODY} bytes. Over the limit the answer is a 413 naming
 * it, sent once the client has finished sending (the excess is read and dropped, up to
 * {@link MAX_DRAIN}): a client still writing would otherwise see a reset, not the answer.
 */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? Number.NaN)
    if (declared > MAX_DRAIN) {
      reject(tooLarge(`${declared} bytes`))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size <= MAX_BODY) chunks.push(c)
      else if (chunks.length > 0) chunks.length = 0
      if (size > MAX_DRAIN) {
        req.destroy()
        reject(tooLarge(`more than ${MAX_DRAIN} bytes`))
      }
    })
    req.on('end', () => {
      if (size > MAX_BODY) return reject(tooLarge(`${size} bytes`))
      const text = Buffer.concat(chunks).toString('utf8')
      if (text.trim() === '') return resolve(undefined)
      try {
        resolve(JSON.parse(text))
      } catch (error) {
        reject(
          new AgentError('INVALID_INPUT', `request body is not JSON: ${(error as Error).message}`, {
            field: 'body',
          }),
        )
      }
    })
    req.on('error', reject)
  })
}

/**
 * Make (0700) or check the directory of the agent's sockets. A directory someone else may write
 * to is refused: they could put a file or their own socket where the agent's sockets go (the
 * agent would not start, or clients would talk to theirs). Only its owner may write to it, and
 * the owner must be the agent's user (root).
 */
export function ensureSocketDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
  const st = statSync(dir)
  const uid = process.getuid?.() ?? 0
  const problem = !st.isDirectory()
    ? 'is not a directory'
    : st.uid !== uid
      ? `is owned by uid ${st.uid}, not by the agent's user (uid ${uid})`
      : (st.mode & 0o022) !== 0
        ? `is writable by ${st.mode & 0o002 ? 'every user' : 'its group'} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`
        : undefined
  if (problem) {
    throw new AgentError(
      'INVALID_INPUT',
      `socket directory ${dir} ${problem}: anyone who can write there can take the agent's socket names; use a directory only root can write to (the default /var/run/membrane is made 0700)`,
      { field: 'socketPath' },
    )
  }
}

/**
 * Serve the API on a unix socket only root can use: the socket's directory is made 0700 and the
 * socket 0600, owned by the agent's user (root), so the kernel refuses connect() from anyone
 * else. A stale socket from a dead agent is replaced; a live one is an error.
 */
export async function listenUnix(routes: Route[], socketPath: string): Promise<Server> {
  const dir = dirname(socketPath)
  ensureSocketDir(dir)
  if (existsSync(socketPath)) {
    if (await isLive(socketPath)) {
      throw new AgentError('CONFLICT', `another agent is listening on ${socketPath}`, {
        field: 'socketPath',
      })
    }
    if (!statSync(socketPath).isSocket()) {
      throw new AgentError('CONFLICT', `${socketPath} exists and is not a socket`, {
        field: 'socketPath',
      })
    }
    unlinkSync(socketPath)
  }
  const server = createServer((req, res) => void handle(routes, req, res))
  const oldMask = process.umask(0o177)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(socketPath, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } finally {
    process.umask(oldMask)
  }
  chmodSync(socketPath, 0o600)
  return server
}

/** True when something accepts connections on the unix socket (a running agent). */
export function isLive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socketPath)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
