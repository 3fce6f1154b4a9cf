/**
 * The fast engine's HTTP/1.1 parsers: strict heads, body framing, the chunked framer (fast-check),
 * and a differential check against Node's llhttp: whatever llhttp rejects, we reject too.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChunkedFramer, parseRequestHead, parseResponseHead } from '../src/http/wire'
import { rawExchange } from './_http'

const req = (s: string) => parseRequestHead(Buffer.from(s, 'latin1'))

describe('parseRequestHead', () => {
  it('parses a request and its framing', () => {
    expect(
      req('POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n'),
    ).toMatchObject({
      method: 'POST',
      target: '/a?b',
      minor: 1,
      body: 5,
      keepAlive: true,
      host: 'x',
      rawHeaders: ['Host', 'x', 'Content-Length', '5', 'X-A', '1'],
    })
    expect(req('GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n')).toMatchObject({
      body: 'chunked',
    })
    expect(req('GET / HTTP/1.0\r\n\r\n')).toMatchObject({ minor: 0, keepAlive: false, body: 0 })
    expect(req('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')).toMatchObject({
      keepAlive: true,
    })
    expect(req('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatchObject({
      keepAlive: false,
    })
    expect(
      req('PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n'),
    ).toMatchObject({
      expectContinue: true,
    })
  })

  it.each([
    [
      'CL and TE',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n',
      400,
    ],
    [
      'two CLs',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n',
      400,
    ],
    ['signed CL', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n', 400],
    ['TE gzip', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501],
    [
      'TE twice',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      501,
    ],
    ['TE in 1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n', 400],
    ['bare LF', 'GET / HTTP/1.1\nHost: x\r\n\r\n', 400],
    ['bare CR', 'GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n', 400],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', 400],
    ['control char', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n', 400],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 400],
    ['space in target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ])('rejects %s', (_name, text, status) => {
    expect(req(text)).toMatchObject({ error: true, status })
  })

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const r = parseRequestHead(Buffer.from(b))
        expect(typeof r).toBe('object')
      }),
      { numRuns: 2000 },
    )
  })
})

describe('parseResponseHead', () => {
  const res = (s: string, method = 'GET') => parseResponseHead(Buffer.from(s, 'latin1'), method)
  it('frames responses', () => {
    expect(res('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n')).toMatchObject({
      status: 200,
      body: 3,
      keepAlive: true,
    })
    expect(res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({
      body: 'chunked',
    })
    expect(res('HTTP/1.1 200 OK\r\n\r\n')).toMatchObject({ body: 'close', keepAlive: false })
    expect(res('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'HEAD')).toMatchObject({ body: 0 })
    expect(res('HTTP/1.1 204 No Content\r\n\r\n')).toMatchObject({ body: 0, keepAlive: true })
    expect(res('HTTP/1.1 100 Continue\r\n\r\n')).toMatchObject({ status: 100, body: 0 })
    expect(res('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n')).toMatchObject({ keepAlive: false })
    expect(
      res('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'),
    ).toMatchObject({
      error: true,
      status: 502,
    })
    expect(res('HTTX/1.1 200 OK\r\n\r\n')).toMatchObject({ error: true })
  })
})

function chunked(parts: Buffer[], ext: boolean, trailers: string[]): Buffer {
  const out: Buffer[] = []
  for (const p of parts) {
    if (p.length === 0) continue
    out.push(
      Buffer.from(`${p.length.toString(16)}${ext ? ';x=1' : ''}\r\n`),
      p,
      Buffer.from('\r\n'),
    )
  }
  out.push(Buffer.from(`0\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`))
  return Buffer.concat(out)
}

describe('ChunkedFramer', () => {
  it('finds the exact end of any chunked body, however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.boolean(),
        fc.array(fc.constantFrom('X-Sum: 1', 'Y: z'), { maxLength: 2 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        (parts, ext, trailers, cuts) => {
          const body = chunked(
            parts.map((p) => Buffer.from(p)),
            ext,
            trailers,
          )
          const wire = Buffer.concat([body, Buffer.from('GET /next HTTP/1.1\r\n')])
          const f = new ChunkedFramer()
          let used = 0
          let off = 0
          let k = 0
          while (!f.done && off < wire.length) {
            const n = Math.min(cuts[k++ % cuts.length] as number, wire.length - off)
            const piece = wire.subarray(off, off + n)
            const took = f.feed(piece)
            expect(f.error).toBeUndefined()
            used += took
            off += n
            if (took < piece.length) break
          }
          expect(f.done).toBe(true)
          expect(used).toBe(body.length)
        },
      ),
    )
  })

  it('never throws on arbitrary bytes and never claims more than it was given', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 5 }), (pieces) => {
        const f = new ChunkedFramer()
        for (const p of pieces) {
          const b = Buffer.from(p)
          const n = f.feed(b)
          expect(n).toBeGreaterThanOrEqual(0)
          expect(n).toBeLessThanOrEqual(b.length)
          if (f.error || f.done) break
        }
      }),
      { numRuns: 2000 },
    )
  })

  it.each([
    ['a bad size', 'zz\r\nab\r\n0\r\n\r\n'],
    ['a missing CRLF after data', '2\r\nabX\r\n0\r\n\r\n'],
    ['a size line with bare LF', '2\nab\r\n0\r\n\r\n'],
    ['a negative size', '-2\r\nab\r\n0\r\n\r\n'],
    ['an oversized size', '1000000000000000\r\n'],
  ])('rejects %s', (_n, text) => {
    const f = new ChunkedFramer()
    f.feed(Buffer.from(text, 'latin1'))
    expect(f.error).toBeDefined()
  })
})

describe('differential: whatever llhttp (Node) rejects, the fast engine rejects too', () => {
  let port = 0
  const server = createServer((_req, res) => res.end('ok'))
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    port = (server.address() as AddressInfo).port
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  const heads = [
    'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nX: \x7f\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nX\x00: y\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\n X: folded\r\n\r\n',
    'GET  / HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET / HTTP/1.1 \r\nHost: x\r\n\r\n',
    'G@T / HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n',
    'GET / HTTP/1.1\r\nHo st: x\r\n\r\n',
  ]

  it.each(heads.map((h, i) => [i, h]))('case %i', async (_i, head) => {
    const answer = await rawExchange(port, `${head as string}`, '127.0.0.1', 2000).catch(() => '')
    const nodeRejects = /^HTTP\/1\.1 4\d\d/.test(answer)
    const ours = parseRequestHead(Buffer.from(head as string, 'latin1'))
    if (nodeRejects) expect(ours).toMatchObject({ error: true })
  })
})
