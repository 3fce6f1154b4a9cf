/**
 * The HTTP proxy against real HTTP servers and clients (Node's http, curl).
 *
 * No datapath here: a StaticOriginResolver stands in for the BPF redirect and answers every
 * client with the upstream server's address (the e2e test with the real redirect is
 * redirect.e2e.test.ts). Clients connect to the proxy port directly.
 */
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { Agent, type IncomingMessage, request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { L7Policy } from '@membrane/policy'
import { requireKernel, run } from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  HttpProxy,
  type L7ProxyRecord,
  StaticOriginResolver,
  staticPolicySource,
} from '../src/index'
import { eventually, rawExchange, startUpstream, type Upstream } from './_http'

const POLICY: L7Policy = {
  parser: 'http',
  wildcard: false,
  rules: [
    {
      id: 'CiliumNetworkPolicy/default/web:specs[0].ingress[0]',
      rules: {
        parser: 'http',
        http: [
          { method: 'GET', path: '/public.*' },
          { method: 'POST', path: '/v1/request-landing' },
          { method: 'POST|PUT', path: '/upload' },
          { method: 'GET', path: '(/stream|/close|/big)(\\?.*)?' },
          { path: '/token', headers: ['X-Token: secret'] },
          { path: '/present', headers: ['X-Present'] },
          { path: '/env', headerMatches: [{ name: 'X-Env', value: 'prod' }] },
          { host: 'api\\.example\\.test(:[0-9]+)?', path: '/hosted' },
          {
            path: '/edit',
            headerMatches: [
              { name: 'X-Env', value: 'prod', mismatch: 'REPLACE' },
              { name: 'X-Added', value: 'yes', mismatch: 'ADD' },
              { name: 'X-Secret', value: 'ok', mismatch: 'DELETE' },
              { name: 'X-Log', value: 'v', mismatch: 'LOG' },
            ],
          },
        ],
      },
    },
  ],
}

interface Reply {
  status: number
  headers: IncomingMessage['headers']
  body: Buffer
}

function send(
  port: number,
  opts: {
    method?: string
    path: string
    headers?: Record<string, string>
    body?: Buffer | Readable
    agent?: Agent
  },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (d: Buffer) => chunks.push(d))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    if (opts.body instanceof Readable) opts.body.pipe(req)
    else req.end(opts.body)
  })
}

describe.each(['fast', 'node'] as const)(
  'HttpProxy, %s engine (stand-in origin resolver, real servers)',
  (engine) => {
    let upstream: Upstream
    let proxy: HttpProxy
    const records: L7ProxyRecord[] = []

    beforeAll(async () => {
      upstream = await startUpstream()
      proxy = new HttpProxy({
        origins: new StaticOriginResolver({
          fallback: {
            address: '127.0.0.1',
            port: upstream.port,
            srcIdentity: 1001,
            dstIdentity: 2002,
            endpointId: 7,
            direction: 'ingress',
          },
        }),
        policy: staticPolicySource(POLICY),
        onRecord: (r) => records.push(r),
        markSockets: false,
        engine,
        maxHeaderSize: 4096,
      })
      await proxy.listen({ host: '127.0.0.1' })
    })

    afterAll(async () => {
      await proxy?.close()
      await upstream?.close()
    })

    it('forwards an allowed request and denies the rest with 403 Access denied', async () => {
      const ok = await send(proxy.port, { path: '/public/index.html?x=1' })
      expect(ok.status).toBe(200)
      expect(ok.headers['x-upstream']).toBe('yes')
      expect(JSON.parse(ok.body.toString())).toMatchObject({
        method: 'GET',
        url: '/public/index.html?x=1',
      })

      const denied = await send(proxy.port, { path: '/private' })
      expect(denied.status).toBe(403)
      expect(denied.body.toString()).toBe('Access denied\r\n')

      // Full match: the method regex GET must not match GETX, the path /public.* must not match
      // /xpublic.
      expect((await send(proxy.port, { path: '/xpublic' })).status).toBe(403)
      expect((await send(proxy.port, { method: 'PUT', path: '/public/a' })).status).toBe(403)
      expect(upstream.seen.some((s) => s.url === '/private' || s.url === '/xpublic')).toBe(false)
    })

    it('Star Wars: POST /v1/request-landing passes, PUT /v1/exhaust-port gets 403', async () => {
      const landing = await send(proxy.port, {
        method: 'POST',
        path: '/v1/request-landing',
        body: Buffer.from(''),
      })
      expect(landing.status).toBe(200)
      const exhaust = await send(proxy.port, { method: 'PUT', path: '/v1/exhaust-port' })
      expect(exhaust.status).toBe(403)
      expect(exhaust.body.toString()).toBe('Access denied\r\n')
    })

    it('checks headers (present, with a value) and headerMatches', async () => {
      expect((await send(proxy.port, { path: '/token' })).status).toBe(403)
      expect(
        (await send(proxy.port, { path: '/token', headers: { 'X-Token': 'nope' } })).status,
      ).toBe(403)
      expect(
        (await send(proxy.port, { path: '/token', headers: { 'x-token': 'secret' } })).status,
      ).toBe(200)
      expect(
        (await send(proxy.port, { path: '/present', headers: { 'X-Present': 'anything' } })).status,
      ).toBe(200)
      expect((await send(proxy.port, { path: '/present' })).status).toBe(403)
      expect((await send(proxy.port, { path: '/env', headers: { 'X-Env': 'prod' } })).status).toBe(
        200,
      )
      expect((await send(proxy.port, { path: '/env', headers: { 'X-Env': 'dev' } })).status).toBe(
        403,
      )
      expect(
        (await send(proxy.port, { path: '/hosted', headers: { host: 'api.example.test' } })).status,
      ).toBe(200)
      expect(
        (await send(proxy.port, { path: '/hosted', headers: { host: 'evil.example.test' } }))
          .status,
      ).toBe(403)
    })

    it('applies headerMatches mismatch actions (REPLACE, ADD, DELETE; LOG only reports)', async () => {
      const r = await send(proxy.port, {
        path: '/edit',
        headers: { 'X-Env': 'dev', 'X-Secret': 'leaked', 'X-Log': 'other' },
      })
      expect(r.status).toBe(200)
      const seen = upstream.seen.at(-1)
      expect(seen?.url).toBe('/edit')
      expect(seen?.headers).toMatchObject({ 'x-env': 'prod', 'x-added': 'yes', 'x-log': 'other' })
      expect(seen?.headers['x-secret']).toBeUndefined()
      // Matching values are left alone.
      await send(proxy.port, {
        path: '/edit',
        headers: { 'X-Env': 'prod', 'X-Added': 'yes', 'X-Secret': 'ok' },
      })
      expect(
        upstream.seen.at(-1)?.rawHeaders.filter((h) => /^x-(env|added|secret)$/i.test(h)),
      ).toEqual(['X-Env', 'X-Added', 'X-Secret'])
    })

    it('keeps one client connection and one upstream connection alive across requests', async () => {
      const before = proxy.stats()
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      try {
        for (let i = 0; i < 10; i++) {
          const r = await send(proxy.port, {
            path: i % 3 === 2 ? '/denied' : `/public/${i}`,
            agent,
          })
          expect(r.status).toBe(i % 3 === 2 ? 403 : 200)
        }
        const after = proxy.stats()
        expect(after.connections - before.connections).toBe(1)
        expect(after.upstreamConnections - before.upstreamConnections).toBe(1)
        // The upstream closing after one response is not the client's business: a new upstream
        // connection is opened for the next request on the same client connection.
        expect((await send(proxy.port, { path: '/close', agent })).status).toBe(200)
        expect((await send(proxy.port, { path: '/public/after-close', agent })).status).toBe(200)
        const end = proxy.stats()
        expect(end.connections - before.connections).toBe(1)
        expect(end.upstreamConnections - before.upstreamConnections).toBe(2)
      } finally {
        agent.destroy()
      }
    })

    it('streams a chunked request body intact (1 MiB in uneven pieces)', async () => {
      const data = randomBytes(1 << 20)
      const pieces: Buffer[] = []
      for (let off = 0; off < data.length; ) {
        const n = 1 + ((off * 7919) % 50_000)
        pieces.push(data.subarray(off, off + n))
        off += n
      }
      const r = await send(proxy.port, {
        method: 'POST',
        path: '/upload',
        body: Readable.from(pieces),
        headers: { 'content-type': 'application/octet-stream' },
      })
      expect(r.status).toBe(200)
      const got = JSON.parse(r.body.toString())
      expect(got.bodyLength).toBe(data.length)
      expect(got.bodySha).toBe(createHash('sha256').update(data).digest('hex'))
      const seen = upstream.seen.at(-1)
      expect(seen?.headers['transfer-encoding']).toBe('chunked')
    })

    it('streams a response: the first chunk arrives before the upstream has finished', async () => {
      const got = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: proxy.port, path: '/stream', agent: false })
        req.on('response', (res) => {
          expect(res.headers['transfer-encoding']).toBe('chunked')
          let text = ''
          res.on('data', (d: Buffer) => {
            text += d.toString()
            // Only now may the upstream send its last chunk: if the proxy buffered the whole
            // response, this would never be reached and the test would time out.
            if (text === 'first-chunk\n') upstream.release('stream')
          })
          res.on('end', () => resolve(text))
        })
        req.on('error', reject)
        req.end()
      })
      expect(got).toBe('first-chunk\nlast-chunk\n')
    })

    it('relays a large response with backpressure', async () => {
      const r = await send(proxy.port, { path: '/big?n=8000000' })
      expect(r.status).toBe(200)
      expect(r.body.length).toBe(8_000_000)
    })

    it('emits request and response records (method, url, status, latency, verdict)', async () => {
      records.length = 0
      await send(proxy.port, { path: '/public/rec' })
      await send(proxy.port, { method: 'DELETE', path: '/nope' })
      const req = records.find((r) => r.type === 'request' && r.http?.url?.endsWith('/public/rec'))
      const res = records.find((r) => r.type === 'response' && r.http?.url?.endsWith('/public/rec'))
      const den = records.find((r) => r.verdict === 'denied')
      expect(req).toMatchObject({
        verdict: 'forwarded',
        trafficDirection: 'ingress',
        source: { ip: '127.0.0.1', identity: 1001 },
        destination: { ip: '127.0.0.1', port: upstream.port, identity: 2002 },
        http: { method: 'GET', protocol: 'HTTP/1.1' },
      })
      expect(req?.http?.url).toBe(`http://127.0.0.1:${proxy.port}/public/rec`)
      expect(res?.http?.code).toBe(200)
      expect(res?.latencyNs).toBeGreaterThan(0)
      expect(den).toMatchObject({ type: 'request', http: { method: 'DELETE', code: 403 } })
    })

    it('rejects malformed requests (400) and oversized heads (431), counted, and keeps serving', async () => {
      const before = proxy.stats()
      const bad = await rawExchange(proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')
      expect(bad).toMatch(/^HTTP\/1\.1 400 /)
      const garbage = await rawExchange(proxy.port, Buffer.from([0, 1, 2, 3, 255, 13, 10, 13, 10]))
      expect(garbage).toMatch(/^HTTP\/1\.1 400 /)
      const smuggle = await rawExchange(
        proxy.port,
        'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      )
      expect(smuggle).toMatch(/^HTTP\/1\.1 400 /)
      const big = await rawExchange(
        proxy.port,
        `GET /public HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`,
      )
      expect(big).toMatch(/^HTTP\/1\.1 431 /)
      const after = proxy.stats()
      expect(after.malformed - before.malformed).toBe(3)
      expect(after.headersTooLarge - before.headersTooLarge).toBe(1)
      expect((await send(proxy.port, { path: '/public/still-alive' })).status).toBe(200)
    })

    it('answers 503 when the original destination refuses, counted', async () => {
      const p = new HttpProxy({
        origins: new StaticOriginResolver({
          fallback: {
            address: '127.0.0.1',
            port: 1, // nothing listens on port 1
            srcIdentity: 1,
            dstIdentity: 2,
            endpointId: 1,
            direction: 'ingress',
          },
        }),
        policy: staticPolicySource(POLICY),
        markSockets: false,
        engine,
      })
      await p.listen({ host: '127.0.0.1' })
      try {
        const r = await send(p.port, { path: '/public/x' })
        expect(r.status).toBe(503)
        expect(p.stats().upstreamErrors).toBe(1)
      } finally {
        await p.close()
      }
    })

    it('drops connections the origin resolver does not know (noOrigin)', async () => {
      const p = new HttpProxy({
        origins: new StaticOriginResolver(),
        policy: staticPolicySource(POLICY),
        markSockets: false,
        engine,
      })
      await p.listen({ host: '127.0.0.1' })
      try {
        await expect(send(p.port, { path: '/public/x' })).rejects.toThrow()
        expect(p.stats().noOrigin).toBe(1)
      } finally {
        await p.close()
      }
    })

    it('denies everything when the policy source has no L7 policy (fails closed)', async () => {
      const p = new HttpProxy({
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
        policy: staticPolicySource(undefined),
        markSockets: false,
        engine,
      })
      await p.listen({ host: '127.0.0.1' })
      try {
        expect((await send(p.port, { path: '/public/x' })).status).toBe(403)
      } finally {
        await p.close()
      }
    })

    it.skipIf(!requireKernel(['bin:curl']).ok)(
      'works for curl: allowed, denied, chunked upload, keep-alive',
      async () => {
        const url = `http://127.0.0.1:${proxy.port}`
        const ok = await run('curl', ['-sS', '-w', '\n%{http_code}', `${url}/public/curl`])
        expect(ok.stdout.trim().split('\n').at(-1)).toBe('200')
        const denied = await run('curl', [
          '-sS',
          '-X',
          'PUT',
          '-w',
          '\n%{http_code}',
          `${url}/v1/exhaust-port`,
        ])
        expect(denied.stdout).toBe('Access denied\r\n\n403')
        const file = join(tmpdir(), `l7proxy-curl-${process.pid}.bin`)
        const data = randomBytes(300_000)
        writeFileSync(file, data)
        const up = await run('curl', [
          '-sS',
          '-H',
          'Transfer-Encoding: chunked',
          '--data-binary',
          `@${file}`,
          `${url}/upload`,
        ])
        expect(JSON.parse(up.stdout).bodySha).toBe(createHash('sha256').update(data).digest('hex'))
        // Two URLs on one curl command line reuse the connection.
        const before = proxy.stats().connections
        const two = await run('curl', [
          '-sS',
          '-o',
          '/dev/null',
          '-o',
          '/dev/null',
          '-w',
          '%{num_connects}\n',
          `${url}/public/1`,
          `${url}/public/2`,
        ])
        expect(two.stdout.trim().split('\n')).toEqual(['1', '0'])
        expect(proxy.stats().connections - before).toBe(1)
      },
    )

    it('answers pipelined requests in order, denied ones in between', async () => {
      const out = await rawExchange(
        proxy.port,
        'GET /public/1 HTTP/1.1\r\nHost: x\r\n\r\n' +
          'GET /secret HTTP/1.1\r\nHost: x\r\n\r\n' +
          'GET /public/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      )
      const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1])
      expect(statuses).toEqual(['200', '403', '200'])
      expect(out.indexOf('/public/1')).toBeLessThan(out.indexOf('Access denied'))
      expect(out.indexOf('Access denied')).toBeLessThan(out.indexOf('/public/3'))
    })

    it('Expect: 100-continue — denied without reading the body, allowed after 100 Continue', async () => {
      const ask = (path: string) =>
        new Promise<{ continued: boolean; status: number }>((resolve, reject) => {
          let continued = false
          const req = request({
            host: '127.0.0.1',
            port: proxy.port,
            method: 'POST',
            path,
            agent: false,
            headers: { expect: '100-continue', 'content-length': 5 },
          })
          req.on('continue', () => {
            continued = true
            req.end('hello')
          })
          req.on('response', (res) => {
            res.resume()
            res.on('end', () => resolve({ continued, status: res.statusCode ?? 0 }))
            if (!continued) req.destroy()
          })
          req.on('error', (e) => (continued ? reject(e) : undefined))
        })
      expect(await ask('/upload')).toEqual({ continued: true, status: 200 })
      expect(await ask('/forbidden')).toEqual({ continued: false, status: 403 })
    })

    it('relays HEAD without a body and HTTP/1.0 requests', async () => {
      const head = await send(proxy.port, { method: 'HEAD', path: '/public/h' })
      // HEAD is not in the rules (GET only): denied, and a 403 to HEAD has no body either.
      expect(head.status).toBe(403)
      expect(head.body.length).toBe(0)
      const old = await rawExchange(proxy.port, 'GET /public/old HTTP/1.0\r\nHost: x\r\n\r\n')
      expect(old).toMatch(/^HTTP\/1\.1 200 /)
      expect(old).toContain('"url":"/public/old"')
    })

    it('tears down the upstream exchange when the client aborts mid-response', async () => {
      const before = proxy.stats().upstreamConnections
      await new Promise<void>((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port: proxy.port,
          path: '/stream?gate=abort',
          agent: false,
        })
        req.on('response', (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        })
        req.on('error', () => {})
        req.on('close', () => resolve())
        req.end()
        setTimeout(() => reject(new Error('no first chunk')), 5000)
      })
      expect(proxy.stats().upstreamConnections - before).toBe(1)
      // The upstream is still holding its response open (gate not released): only the proxy
      // can have closed that connection.
      await eventually(() => proxy.stats().activeUpstreamConnections === 0)
      await eventually(async () => (await upstream.open()) === 0)
      upstream.release('abort')
    })

    it('survives 200 concurrent clients, half of them aborting at random points', async () => {
      const before = proxy.stats()
      const wires = [
        'GET /public/s HTTP/1.1\r\nHost: x\r\n\r\n',
        'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
        'GET /big?n=300000 HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n',
      ]
      await Promise.all(
        Array.from(
          { length: 200 },
          (_, i) =>
            new Promise<void>((resolve) => {
              const s = connect(proxy.port, '127.0.0.1')
              const wire = wires[i % wires.length] as string
              const abortAt = i % 2 === 0 ? (i * 7) % wire.length : -1
              s.on('error', () => {})
              s.on('close', () => resolve())
              s.on('data', () => {
                if (abortAt < 0) s.end()
              })
              if (abortAt >= 0) {
                s.write(wire.slice(0, abortAt))
                setTimeout(() => s.destroy(), i % 5)
              } else s.write(wire)
            }),
        ),
      )
      expect(proxy.stats().connections - before.connections).toBe(200)
      await eventually(() => proxy.stats().activeConnections === 0)
      await eventually(() => proxy.stats().activeUpstreamConnections === 0)
    })

    it('leaks no sockets: every client and upstream connection is closed in the end', async () => {
      await eventually(() => proxy.stats().activeConnections === 0)
      await eventually(() => proxy.stats().activeUpstreamConnections === 0)
      await eventually(async () => (await upstream.open()) === 0)
    })
  },
)
