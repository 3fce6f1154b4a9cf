/**
 * Test helpers: a real upstream HTTP server and a small raw-socket client.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { type AddressInfo, connect, type Socket } from 'node:net'

export interface Upstream {
  server: Server
  port: number
  /** Requests seen (method + url + headers + body sha256). */
  seen: Array<{
    method: string
    url: string
    headers: Record<string, string | string[] | undefined>
    rawHeaders: string[]
    bodySha: string
    bodyLength: number
  }>
  /** Connections open at the upstream now. */
  open(): Promise<number>
  /** Resolve a pending gate by name (for streaming tests). */
  release(name: string): void
  close(): Promise<void>
}

/**
 * An upstream server:
 * - any path: echoes JSON {method, url, bodySha, bodyLength, host}
 * - /stream[?gate=name]: a chunked response; the second chunk waits until release(name)
 *   (default name 'stream')
 * - /close: answers with `Connection: close`
 */
export async function startUpstream(host = '127.0.0.1'): Promise<Upstream> {
  const seen: Upstream['seen'] = []
  const gates = new Map<string, () => void>()
  const waiters = new Map<string, Promise<void>>()
  const gate = (name: string) => {
    let p = waiters.get(name)
    if (!p) {
      p = new Promise<void>((r) => gates.set(name, r))
      waiters.set(name, p)
    }
    return p
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const hash = createHash('sha256')
    let length = 0
    req.on('data', (d: Buffer) => {
      hash.update(d)
      length += d.length
    })
    req.on('end', async () => {
      const bodySha = hash.digest('hex')
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodySha,
        bodyLength: length,
      })
      if (req.url?.startsWith('/stream')) {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('first-chunk\n')
        await gate(new URL(req.url, 'http://x').searchParams.get('gate') ?? 'stream')
        res.end('last-chunk\n')
        return
      }
      if (req.url?.startsWith('/big')) {
        const n = Number(new URL(req.url, 'http://x').searchParams.get('n') ?? '1000000')
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const block = Buffer.alloc(65536, 0x61)
        let left = n
        const pump = () => {
          while (left > 0) {
            const c = block.subarray(0, Math.min(left, block.length))
            left -= c.length
            if (!res.write(c)) return void res.once('drain', pump)
          }
          res.end()
        }
        pump()
        return
      }
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        host: req.headers.host,
        bodySha,
        bodyLength: length,
      })
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-upstream': 'yes',
      }
      if (req.url === '/close') headers.connection = 'close'
      res.writeHead(200, headers)
      res.end(body)
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((r) => server.listen(0, host, () => r()))
  return {
    server,
    port: (server.address() as AddressInfo).port,
    seen,
    open: () =>
      new Promise((resolve, reject) =>
        server.getConnections((e, n) => (e ? reject(e) : resolve(n))),
      ),
    release: (name) => {
      gate(name)
      gates.get(name)?.()
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

/** Send raw bytes on a fresh connection and collect everything until the server closes. */
export function rawExchange(
  port: number,
  data: string | Buffer,
  host = '127.0.0.1',
  timeoutMs = 10_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, host)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks)}`))
    }, timeoutMs)
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks).toString('latin1'))
    })
    s.write(data)
  })
}

/** Poll until `fn` returns true (or fail after `ms`). */
export async function eventually(fn: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms: ${fn.toString()}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
