/**
 * The two HTTP engines agree: random requests (methods, paths, headers, Content-Length and
 * chunked bodies) through the fast and the Node engine give the same status and reach the same
 * upstream with the same method, target and body bytes. Plus slow-client timeouts.
 *
 * No datapath: a StaticOriginResolver stands in for the BPF redirect.
 */
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import type { L7Policy } from '@membrane/policy'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HttpProxy, StaticOriginResolver, staticPolicySource } from '../src/index'
import { rawExchange, startUpstream, type Upstream } from './_http'

const POLICY: L7Policy = {
  parser: 'http',
  wildcard: false,
  rules: [
    {
      id: 'r',
      rules: {
        parser: 'http',
        http: [
          { method: 'GET|HEAD', path: '/public(/.*)?' },
          { method: 'POST|PUT', path: '/upload.*' },
          { path: '/token', headers: ['X-Token: secret'] },
        ],
      },
    },
  ],
}

function encodeChunked(body: Buffer, sizes: number[]): string {
  let out = ''
  let off = 0
  let k = 0
  while (off < body.length) {
    const n = Math.min(sizes[k++ % sizes.length] as number, body.length - off)
    out += `${n.toString(16)}\r\n${body.subarray(off, off + n).toString('latin1')}\r\n`
    off += n
  }
  return `${out}0\r\n\r\n`
}

describe('fast and Node engines agree', () => {
  let upstream: Upstream
  const proxies: Record<'fast' | 'node', HttpProxy> = {} as never

  beforeAll(async () => {
    upstream = await startUpstream()
    for (const engine of ['fast', 'node'] as const) {
      proxies[engine] = new HttpProxy({
        engine,
        origins: new StaticOriginResolver({
          fallback: {
            address: '127.0.0.1',
            port: upstream.port,
            srcIdentity: 1,
            dstIdentity: 2,
            endpointId: 1,
            direction: 'ingress',
          },
        }),
        policy: staticPolicySource(POLICY),
        markSockets: false,
        headersTimeoutMs: 300,
      })
      await proxies[engine].listen({ host: '127.0.0.1' })
    }
  })

  afterAll(async () => {
    await proxies.fast?.close()
    await proxies.node?.close()
    await upstream?.close()
  })

  it('on random requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD'),
        fc.constantFrom('/public', '/public/a?b=c', '/upload', '/upload/x', '/token', '/other'),
        fc.option(fc.constantFrom('secret', 'wrong'), { nil: undefined }),
        fc.uint8Array({ maxLength: 2000 }),
        fc.constantFrom('none', 'length', 'chunked'),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        async (method, path, token, bytes, framing, sizes) => {
          const body = Buffer.from(bytes)
          let head = `${method} ${path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n`
          if (token) head += `X-Token: ${token}\r\n`
          let payload = ''
          if (framing === 'length') {
            head += `Content-Length: ${body.length}\r\n`
            payload = body.toString('latin1')
          } else if (framing === 'chunked') {
            head += 'Transfer-Encoding: chunked\r\n'
            payload = encodeChunked(body, sizes)
          }
          const wire = Buffer.from(`${head}\r\n${payload}`, 'latin1')
          const results: Array<{ status: string; seen?: (typeof upstream.seen)[number] }> = []
          for (const engine of ['fast', 'node'] as const) {
            const before = upstream.seen.length
            const out = await rawExchange(proxies[engine].port, wire)
            results.push({
              status: out.slice(0, 12),
              seen: upstream.seen.length > before ? upstream.seen.at(-1) : undefined,
            })
          }
          const [f, n] = results as [(typeof results)[0], (typeof results)[0]]
          expect(f.status).toBe(n.status)
          expect(Boolean(f.seen)).toBe(Boolean(n.seen))
          if (f.seen && n.seen) {
            expect(f.seen.method).toBe(n.seen.method)
            expect(f.seen.url).toBe(n.seen.url)
            expect(f.seen.bodySha).toBe(n.seen.bodySha)
            const want = framing === 'none' ? Buffer.alloc(0) : body
            expect(f.seen.bodySha).toBe(createHash('sha256').update(want).digest('hex'))
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  it.each(['fast', 'node'] as const)(
    '%s: a client too slow to send its head gets 408',
    async (engine) => {
      const got = await new Promise<string>((resolve) => {
        const s = connect(proxies[engine].port, '127.0.0.1')
        let out = ''
        s.on('data', (d) => {
          out += d
        })
        s.on('close', () => resolve(out))
        s.on('error', () => {})
        s.write('GET /public HTTP/1.1\r\nHost: x\r\n') // never finished
      })
      expect(got).toMatch(/^HTTP\/1\.1 408 /)
      expect(proxies[engine].stats().timeouts).toBeGreaterThanOrEqual(1)
    },
  )
})
