/**
 * The fast engine's byte parser and byte forwarding:
 * - the byte parser accepts and refuses exactly what the string parser it replaced did (the
 *   oracle in _wire-reference.ts), on generated heads with random damage (bare CR/LF, obs-fold,
 *   control characters, duplicate or conflicting framing fields);
 * - a forwarded head is the received one minus its hop-by-hop field lines;
 * - through a real proxy and a raw upstream: however a request (or several pipelined ones) is
 *   cut into TCP writes, the upstream receives exactly the client's bytes and the client exactly
 *   the upstream's response bytes;
 * - the per-connection decision cache (a repeated head reuses its verdict) still lets a policy
 *   update reach an open connection.
 *
 * No datapath: a StaticOriginResolver stands in for the BPF redirect.
 */
import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Server } from 'node:net'
import type { L7Policy } from '@membrane/policy'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  endToEnd,
  forwardHead,
  headEnd,
  parseRequestHead,
  parseResponseHead,
} from '../src/http/wire'
import {
  HttpProxy,
  type L7PolicySource,
  StaticOriginResolver,
  staticPolicySource,
} from '../src/index'
import { referenceParseRequestHead, referenceParseResponseHead } from './_wire-reference'

const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 10 })
const ows = fc.constantFrom('', ' ', '\t', '  ', ' \t ')
const char = (ranges: Array<[number, number]>) =>
  fc
    .oneof(...ranges.map(([min, max]) => fc.integer({ min, max })))
    .map((c) => String.fromCharCode(c))
/** Field-value bytes: visible ASCII, SP, HTAB, obs-text. */
const value = fc.string({
  unit: char([
    [0x21, 0x7e],
    [0x80, 0xff],
    [0x20, 0x20],
    [0x09, 0x09],
  ]),
  maxLength: 16,
})
const target = fc
  .string({
    unit: char([
      [0x21, 0x7e],
      [0x80, 0xff],
    ]),
    maxLength: 24,
  })
  .map((t) => `/${t}`)
const NAMES = [
  'Host',
  'host',
  'HOST',
  'Content-Length',
  'content-length',
  'Transfer-Encoding',
  'Connection',
  'connection',
  'Keep-Alive',
  'TE',
  'Trailer',
  'Upgrade',
  'Proxy-Connection',
  'Proxy-Authorization',
  'Expect',
  'X-A',
]
const VALUES = [
  'chunked',
  'Chunked',
  'gzip, chunked',
  'close',
  'CLOSE',
  'keep-alive',
  'Keep-Alive',
  'close, X-A',
  'x-a , keep-alive',
  '100-continue',
  '100-Continue',
  '5',
  '0',
  '+5',
  '05',
  '0x5',
  '123456789012345',
  '1234567890123456',
]
const field = fc
  .tuple(
    fc.oneof(token, fc.constantFrom(...NAMES)),
    ows,
    fc.oneof(value, fc.constantFrom(...VALUES)),
    ows,
  )
  .map(([n, a, v, b]) => `${n}:${a}${v}${b}\r\n`)
const requestHead = fc
  .tuple(
    fc.oneof(token, fc.constantFrom('GET', 'POST', 'HEAD', 'PUT')),
    target,
    fc.constantFrom('0', '1', '1', '1'),
    fc.boolean(),
    fc.array(field, { maxLength: 6 }),
  )
  .map(
    ([m, t, minor, host, fields]) =>
      `${m} ${t} HTTP/1.${minor}\r\n${host ? 'Host: h\r\n' : ''}${fields.join('')}\r\n`,
  )

/** Random damage: insert or overwrite bytes (CR, LF, SP, HTAB, ':', controls, anything). */
const damage = fc.array(
  fc.tuple(
    fc.nat(),
    fc.boolean(),
    fc.oneof(fc.constantFrom(13, 10, 32, 9, 0x3a, 0, 0x7f, 0x0b), fc.integer({ min: 0, max: 255 })),
  ),
  { maxLength: 2 },
)

function damaged(text: string, edits: Array<[number, boolean, number]>): Buffer | undefined {
  const bytes = [...Buffer.from(text, 'latin1')]
  for (const [at, insert, byte] of edits) {
    // Leave the final CRLFCRLF alone so the result is still one complete head.
    const i = at % Math.max(1, bytes.length - 4)
    if (insert) bytes.splice(i, 0, byte)
    else bytes[i] = byte
  }
  const b = Buffer.from(bytes)
  const end = headEnd(b)
  return end < 0 ? undefined : b.subarray(0, end)
}

describe('byte parser agrees with the string parser it replaced', () => {
  it('on requests: the same refusals (status) and the same heads', () => {
    fc.assert(
      fc.property(requestHead, damage, (text, edits) => {
        const b = damaged(text, edits)
        if (!b) return
        const ours = parseRequestHead(b)
        const ref = referenceParseRequestHead(b)
        if ('error' in ref) {
          expect(ours).toMatchObject({ error: true, status: ref.status })
          return
        }
        if (ours.error) throw new Error(`refused ${JSON.stringify(b.toString('latin1'))}`)
        expect({
          method: ours.method,
          target: ours.target,
          minor: ours.minor,
          rawHeaders: ours.rawHeaders,
          body: ours.body,
          keepAlive: ours.keepAlive,
          expectContinue: ours.expectContinue,
          host: ours.host,
        }).toEqual(ref)
      }),
      { numRuns: 3000 },
    )
  })

  it('on responses: the same refusals and the same framing', () => {
    const statusLine = fc
      .tuple(
        fc.constantFrom('0', '1'),
        fc.oneof(fc.integer({ min: 100, max: 599 }), fc.constantFrom(99, 1000, 42)),
        fc.oneof(
          fc.constant(''),
          value.map((v) => ` ${v}`),
        ),
      )
      .map(([minor, code, reason]) => `HTTP/1.${minor} ${code}${reason}\r\n`)
    fc.assert(
      fc.property(
        statusLine,
        fc.array(field, { maxLength: 6 }),
        damage,
        fc.constantFrom('GET', 'HEAD'),
        (line, fields, edits, method) => {
          const b = damaged(`${line}${fields.join('')}\r\n`, edits)
          if (!b) return
          const ours = parseResponseHead(b, method)
          const ref = referenceParseResponseHead(b, method)
          if ('error' in ref) {
            expect(ours).toMatchObject({ error: true, status: ref.status })
            return
          }
          if (ours.error) throw new Error(`refused ${JSON.stringify(b.toString('latin1'))}`)
          expect({
            minor: ours.minor,
            status: ours.status,
            reason: ours.reason,
            rawHeaders: ours.rawHeaders,
            body: ours.body,
            keepAlive: ours.keepAlive,
          }).toEqual(ref)
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('header(name) gives what the matcher header view gives', () => {
    fc.assert(
      fc.property(
        requestHead,
        fc.constantFrom('host', 'x-a', 'connection', 'Host', 'te'),
        (t, n) => {
          const h = parseRequestHead(Buffer.from(t, 'latin1'))
          if (h.error) return
          const joined: string[] = []
          for (let i = 0; i < h.rawHeaders.length; i += 2)
            if ((h.rawHeaders[i] as string).toLowerCase() === n)
              joined.push(h.rawHeaders[i + 1] as string)
          expect(h.header(n)).toBe(joined.length ? joined.join(', ') : undefined)
        },
      ),
    )
  })
})

describe('forwardHead', () => {
  it('is the received head minus the hop-by-hop lines, plus the extra lines', () => {
    fc.assert(
      fc.property(requestHead, fc.constantFrom('', 'Connection: keep-alive\r\n'), (t, extra) => {
        const bytes = Buffer.from(t, 'latin1')
        const h = parseRequestHead(bytes)
        if (h.error) return
        const out = forwardHead(h, undefined, extra)
        const again = parseRequestHead(out)
        if (again.error) throw new Error(`forwarded an invalid head ${out.toString('latin1')}`)
        const kept = endToEnd(h.rawHeaders)
        expect(again.rawHeaders).toEqual(extra ? [...kept, 'Connection', 'keep-alive'] : kept)
        expect([again.method, again.target, again.minor]).toEqual([h.method, h.target, h.minor])
        // Nothing to drop or add: the very bytes received.
        if (!extra && kept.length === h.rawHeaders.length) expect(out).toBe(bytes)
      }),
      { numRuns: 2000 },
    )
  })
})

/** A fast-engine proxy in front of `upstream` (no datapath: a static origin). */
async function proxyFor(upstream: Server, source: L7PolicySource): Promise<HttpProxy> {
  const p = new HttpProxy({
    origins: new StaticOriginResolver({
      fallback: {
        address: '127.0.0.1',
        port: (upstream.address() as AddressInfo).port,
        srcIdentity: 1,
        dstIdentity: 2,
        endpointId: 1,
        direction: 'ingress',
      },
    }),
    policy: source,
    markSockets: false,
  })
  await p.listen({ host: '127.0.0.1' })
  return p
}

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok')

describe('through the proxy, the forwarded bytes are the received bytes', () => {
  let upstream: Server
  let proxy: HttpProxy
  /** Bytes each upstream connection received, newest last. */
  const received: Buffer[][] = []
  /** Where the requests of the next upstream connection end (cumulative byte counts). */
  let plan: number[] = []

  beforeAll(async () => {
    upstream = createServer((s) => {
      const chunks: Buffer[] = []
      received.push(chunks)
      const ends = plan
      let seen = 0
      let answered = 0
      s.on('data', (d: Buffer) => {
        chunks.push(d)
        seen += d.length
        while (answered < ends.length && seen >= (ends[answered] as number)) {
          s.write(RESPONSE)
          answered++
        }
      })
      s.on('error', () => {})
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()))
    proxy = await proxyFor(
      upstream,
      staticPolicySource({ parser: 'http', wildcard: true, rules: [] }),
    )
  })

  afterAll(async () => {
    await proxy?.close()
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()))
  })

  /** Send `pieces` as separate writes (a pause between them) and read `responses` answers. */
  async function exchange(pieces: Buffer[], requestEnds: number[]): Promise<Buffer> {
    plan = requestEnds
    const s = connect(proxy.port, '127.0.0.1')
    s.setNoDelay(true)
    await once(s, 'connect')
    const got: Buffer[] = []
    let length = 0
    const want = RESPONSE.length * requestEnds.length
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`got ${Buffer.concat(got)}`)), 5000)
      const finish = () => {
        clearTimeout(timer)
        resolve()
      }
      s.on('data', (d: Buffer) => {
        got.push(d)
        length += d.length
        if (length >= want) finish()
      })
      s.on('close', finish)
    })
    for (const p of pieces) {
      s.write(p)
      await new Promise((r) => setTimeout(r, 2))
    }
    await done
    s.destroy()
    return Buffer.concat(got)
  }

  const REQUESTS = [
    'GET /a?b=%20c HTTP/1.1\r\nHost: h:80\r\nX-Odd:\t v \xe9\t\r\nAccept: */*\r\n\r\n',
    'POST /upload HTTP/1.1\r\nhost: h\r\ncontent-length: 11\r\nX-B: 1\r\n\r\nhello world',
    'PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Sum: 1\r\n\r\n',
  ]

  it.each(REQUESTS.map((r, i) => [i, r]))(
    'request %i split at every byte boundary',
    async (_i, text) => {
      const bytes = Buffer.from(text as string, 'latin1')
      for (let k = 1; k < bytes.length; k++) {
        const before = received.length
        const answer = await exchange([bytes.subarray(0, k), bytes.subarray(k)], [bytes.length])
        expect(answer).toEqual(RESPONSE)
        expect(received.length).toBe(before + 1)
        expect(Buffer.concat(received.at(-1) ?? [])).toEqual(bytes)
      }
    },
    60_000,
  )

  it('random pipelined requests in random pieces reach the upstream byte for byte', async () => {
    const body = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b))
    const request = fc
      .tuple(
        fc.constantFrom('GET', 'POST', 'DELETE', 'PATCH'),
        target,
        fc.array(
          fc
            .tuple(
              token.filter(
                (n) =>
                  !/^(host|content-length|transfer-encoding|te|trailer|upgrade|connection|keep-alive|proxy-.*|expect)$/i.test(
                    n,
                  ),
              ),
              ows,
              value,
              ows,
            )
            .map(([n, a, v, b]) => `${n}:${a}${v}${b}\r\n`),
          { maxLength: 5 },
        ),
        fc.constantFrom('none', 'length', 'chunked'),
        body,
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }),
      )
      .map(([m, t, fields, framing, b, sizes]) => {
        let head = `${m} ${t} HTTP/1.1\r\nHost: h\r\n${fields.join('')}`
        if (framing === 'none') return Buffer.from(`${head}\r\n`, 'latin1')
        if (framing === 'length')
          return Buffer.concat([
            Buffer.from(`${head}Content-Length: ${b.length}\r\n\r\n`, 'latin1'),
            b,
          ])
        head += 'Transfer-Encoding: chunked\r\n\r\n'
        const parts: Buffer[] = [Buffer.from(head, 'latin1')]
        let off = 0
        let k = 0
        while (off < b.length) {
          const n = Math.min(sizes[k++ % sizes.length] as number, b.length - off)
          parts.push(
            Buffer.from(`${n.toString(16)}\r\n`),
            b.subarray(off, off + n),
            Buffer.from('\r\n'),
          )
          off += n
        }
        parts.push(Buffer.from('0\r\n\r\n'))
        return Buffer.concat(parts)
      })
    await fc.assert(
      fc.asyncProperty(
        fc.array(request, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        async (requests, cuts) => {
          const wire = Buffer.concat(requests)
          const ends: number[] = []
          let sum = 0
          for (const r of requests) {
            sum += r.length
            ends.push(sum)
          }
          const at = [...new Set(cuts.map((c) => c % wire.length))].sort((a, b) => a - b)
          const pieces: Buffer[] = []
          let prev = 0
          for (const c of [...at, wire.length]) {
            if (c > prev) pieces.push(wire.subarray(prev, c))
            prev = c
          }
          const answer = await exchange(pieces, ends)
          expect(answer).toEqual(Buffer.concat(requests.map(() => RESPONSE)))
          expect(Buffer.concat(received.at(-1) ?? [])).toEqual(wire)
        },
      ),
      { numRuns: 40 },
    )
  }, 60_000)
})

describe('a policy update reaches an open connection repeating one request', () => {
  const ALLOW: L7Policy = {
    parser: 'http',
    wildcard: false,
    rules: [{ id: 'a', rules: { parser: 'http', http: [{ method: 'GET', path: '/x' }] } }],
  }
  const DENY: L7Policy = {
    parser: 'http',
    wildcard: false,
    rules: [{ id: 'd', rules: { parser: 'http', http: [{ method: 'POST', path: '/x' }] } }],
  }
  let upstream: Server

  beforeAll(async () => {
    upstream = createServer((s) => {
      s.on('data', () => s.write(RESPONSE))
      s.on('error', () => {})
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()))
  })
  afterAll(() => new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r())))

  /** One keep-alive connection; `ask()` sends the same request and resolves with the status. */
  async function connection(port: number) {
    const s = connect(port, '127.0.0.1')
    s.on('error', () => {})
    await once(s, 'connect')
    let buf = Buffer.alloc(0)
    let waiting: ((status: number) => void) | undefined
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      const end = headEnd(buf)
      if (end < 0) return
      const length = Number(/content-length: *(\d+)/i.exec(buf.toString('latin1', 0, end))?.[1])
      if (buf.length < end + length) return
      const status = Number(buf.toString('latin1', 9, 12))
      buf = buf.subarray(end + length)
      waiting?.(status)
    })
    return {
      ask: () =>
        new Promise<number>((resolve) => {
          waiting = resolve
          s.write('GET /x HTTP/1.1\r\nHost: h\r\n\r\n')
        }),
      close: () => s.destroy(),
    }
  }

  it('at once when the source revision changes', async () => {
    let current = ALLOW
    let revision = 1
    const p = await proxyFor(upstream, {
      rulesFor: () => current,
      get revision() {
        return revision
      },
    })
    const c = await connection(p.port)
    try {
      expect([await c.ask(), await c.ask()]).toEqual([200, 200])
      current = DENY
      revision++
      expect(await c.ask()).toBe(403)
      current = ALLOW
      revision++
      expect(await c.ask()).toBe(200)
    } finally {
      c.close()
      await p.close()
    }
  })

  it('within the re-read period when the source has no revision', async () => {
    let current = ALLOW
    const p = await proxyFor(upstream, { rulesFor: () => current })
    const c = await connection(p.port)
    try {
      expect([await c.ask(), await c.ask()]).toEqual([200, 200])
      current = DENY
      await new Promise((r) => setTimeout(r, 1100))
      expect(await c.ask()).toBe(403)
    } finally {
      c.close()
      await p.close()
    }
  })
})
