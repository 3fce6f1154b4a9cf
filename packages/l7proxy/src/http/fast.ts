/**
 * The fast HTTP/1.1 engine: one client connection, one upstream connection, bytes forwarded as
 * they come. Heads are parsed strictly (wire.ts) and forwarded as received minus their hop-by-hop
 * field lines (re-serialised only when a rule edits headers); bodies are framed (Content-Length
 * or a validated chunked stream) and forwarded unchanged, so chunked and streamed bodies stay
 * intact. Requests are served one at a time per connection; pipelined requests wait in the
 * buffer.
 */
import type { OnReadOpts, Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { HeaderEdit } from '@membrane/policy'
import { applyHeaderEdits } from '../internal/http-headers'
import {
  ChunkedFramer,
  endToEnd,
  forwardHead,
  headEnd,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
  serializeHead,
} from './wire'

/** What the engine needs from its proxy. */
export interface FastContext {
  maxHeaderSize: number
  headersTimeoutMs: number
  keepAliveTimeoutMs: number
  /** Policy verdict for a request head: false, or the header edits to apply (possibly none). */
  allowed(head: RequestHead): false | readonly HeaderEdit[]
  /** A new (marked) upstream connection to the original destination, read with `onread`. */
  connect(onread: OnReadOpts): Socket
  onRequest(head: RequestHead, verdict: 'forwarded' | 'denied'): void
  onResponse(head: RequestHead, status: number, latencyNs: number | undefined, ok: boolean): void
  onBadRequest(kind: 'malformed' | 'headersTooLarge' | 'timeouts', reason: string): void
  onUpstreamError(): void
}

const DENIED_BODY = 'Access denied\r\n'
const UPSTREAM_ERROR_BODY = 'upstream connect error or disconnect/reset before headers\r\n'
const MAX_RESPONSE_HEAD = 64 * 1024
/** A response body up to this size that came with its head goes out in the head's write. */
const MAX_MERGED_BODY = 16 * 1024
const KEEP_ALIVE_1_0 = 'Connection: keep-alive\r\n'
/** Size of an upstream connection's read buffer. */
const UPSTREAM_READ_SIZE = 16 * 1024
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
}

function simpleResponse(
  status: number,
  body: string,
  keepAlive: boolean,
  minor: 0 | 1,
  head = false,
): Buffer {
  const conn = keepAlive
    ? minor === 0
      ? 'connection: keep-alive\r\n'
      : ''
    : 'connection: close\r\n'
  // A response to HEAD carries the length of the body it does not send.
  return Buffer.from(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${conn}\r\n${head ? '' : body}`,
    'latin1',
  )
}

interface Exchange {
  head: RequestHead
  t0: bigint
  /** Request body still to forward: bytes, or a chunked framer. */
  left: number
  framer: ChunkedFramer | undefined
  requestDone: boolean
  responseDone: boolean
  /** A final response head was sent to the client. */
  answered: boolean
  /** Keep the client connection after this exchange. */
  keepAlive: boolean
}

function uncork(s: Socket): void {
  s.uncork()
}

/** The status line to send instead of the received one (HTTP/1.0 upstreams, no reason). */
function statusLine(rh: ResponseHead): string | undefined {
  return rh.minor === 1 && rh.lineEnd > 12 ? undefined : `HTTP/1.1 ${rh.status} ${rh.reason}`
}

/** Serve one client connection with the fast engine. */
export function serveFast(client: Socket, ctx: FastContext): void {
  let buf: Buffer = Buffer.alloc(0)
  let scanned = 0
  let state: 'head' | 'body' | 'wait' | 'closed' = 'head'
  let cur: Exchange | undefined
  let upstream: Socket | undefined
  let upBuf: Buffer = Buffer.alloc(0)
  let resp: 'head' | 'body' | 'idle' = 'idle'
  let respLeft = 0
  let respFramer: ChunkedFramer | undefined
  let respClose = false
  // One timer per connection, armed lazily: entering a phase only notes the time; the timer
  // fires at the earliest deadline it was armed for and re-arms itself for what is left, so a
  // busy keep-alive connection does not create and cancel timers on every request.
  let phase: 'idle' | 'head' | 'none' = 'none'
  let phaseAt = 0
  let timer: NodeJS.Timeout | undefined
  let timerDue = Number.POSITIVE_INFINITY
  let last: RequestHead | undefined

  client.setNoDelay(true)

  const stopTimer = () => {
    phase = 'none'
    clearTimeout(timer)
    timer = undefined
    timerDue = Number.POSITIVE_INFINITY
  }
  const close = () => {
    if (state === 'closed') return
    state = 'closed'
    stopTimer()
    upstream?.destroy()
    client.destroy()
  }
  const endWith = (data: Buffer) => {
    state = 'closed'
    stopTimer()
    upstream?.destroy()
    client.end(data, () => client.destroy())
  }
  const schedule = (due: number, now: number) => {
    clearTimeout(timer)
    timerDue = due
    timer = setTimeout(onTimer, Math.max(1, due - now))
    timer.unref?.()
  }
  const onTimer = () => {
    timer = undefined
    timerDue = Number.POSITIVE_INFINITY
    if (state === 'closed' || phase === 'none') return
    const now = performance.now()
    const due = phaseAt + (phase === 'idle' ? ctx.keepAliveTimeoutMs : ctx.headersTimeoutMs)
    if (now < due) return schedule(due, now)
    if (phase === 'idle') {
      if (state === 'head' && buf.length === 0) close()
      return
    }
    if (state !== 'head') return
    ctx.onBadRequest('timeouts', 'request head not received in time')
    endWith(simpleResponse(408, '', false, 1))
  }
  const enterPhase = (p: 'idle' | 'head', ms: number) => {
    const now = performance.now()
    phase = p
    phaseAt = now
    // An armed timer that fires no later than this deadline re-arms itself when it fires.
    if (timerDue > now + ms) schedule(now + ms, now)
  }
  const armIdle = () => enterPhase('idle', ctx.keepAliveTimeoutMs)
  const armHead = () => {
    if (phase !== 'head') enterPhase('head', ctx.headersTimeoutMs)
  }

  const writeClient = (data: Buffer) => {
    if (!client.write(data) && upstream) {
      const up = upstream
      up.pause()
      client.once('drain', () => up.resume())
    }
  }
  const writeUpstream = (data: Buffer) => {
    if (upstream && !upstream.write(data)) {
      client.pause()
      upstream.once('drain', () => client.resume())
    }
  }

  const finishIfDone = () => {
    if (!cur?.requestDone || !cur.responseDone) return
    const keep = cur.keepAlive
    cur = undefined
    if (!keep) {
      state = 'closed'
      stopTimer()
      upstream?.destroy()
      client.end(() => client.destroy())
      return
    }
    state = 'head'
    armIdle()
    if (client.isPaused()) client.resume()
    processClient()
  }

  const responseDone = (keepUpstream: boolean) => {
    resp = 'idle'
    respFramer = undefined
    if (!keepUpstream) {
      upstream?.destroy()
      upstream = undefined
      upBuf = Buffer.alloc(0)
    }
    if (cur) cur.responseDone = true
    finishIfDone()
  }

  const processUpstream = () => {
    while (cur && state !== 'closed') {
      if (resp === 'head') {
        const end = headEnd(upBuf)
        if (end < 0) {
          if (upBuf.length > MAX_RESPONSE_HEAD) return upstreamFailed(502)
          return
        }
        const rh = parseResponseHead(upBuf.subarray(0, end), cur.head.method)
        upBuf = upBuf.subarray(end)
        if (rh.error) return upstreamFailed(502)
        if (rh.status < 200) {
          if (rh.status === 101) return upstreamFailed(502)
          writeClient(forwardHead(rh, statusLine(rh)))
          continue
        }
        startResponse(rh)
        continue
      }
      if (resp === 'body') {
        if (upBuf.length === 0) return
        if (respClose) {
          writeClient(upBuf)
          upBuf = Buffer.alloc(0)
          return
        }
        let n: number
        if (respFramer) {
          n = respFramer.feed(upBuf)
          if (respFramer.error) return upstreamFailed(502)
        } else n = Math.min(respLeft, upBuf.length)
        writeClient(upBuf.subarray(0, n))
        upBuf = upBuf.subarray(n)
        if (!respFramer) respLeft -= n
        if (respFramer?.done || (!respFramer && respLeft === 0)) {
          const keep = keepUpstreamAfter
          responseDone(keep)
          continue
        }
        return
      }
      // idle: bytes nobody asked for
      if (upBuf.length > 0) {
        upstream?.destroy()
        upstream = undefined
        upBuf = Buffer.alloc(0)
      }
      return
    }
  }

  let keepUpstreamAfter = true
  const startResponse = (rh: ResponseHead) => {
    const x = cur as Exchange
    x.answered = true
    x.keepAlive = x.head.keepAlive && rh.body !== 'close'
    keepUpstreamAfter = rh.keepAlive
    // Latency to the response head; the record is made after the head is on its way.
    const latencyNs = Number(process.hrtime.bigint() - x.t0)
    const conn = x.keepAlive ? (x.head.minor === 0 ? KEEP_ALIVE_1_0 : '') : 'Connection: close\r\n'
    respClose = rh.body === 'close'
    respFramer = rh.body === 'chunked' ? new ChunkedFramer() : undefined
    respLeft = typeof rh.body === 'number' ? rh.body : 0
    resp = 'body'
    // A whole small body that came with the head leaves in the same write.
    if (respLeft > 0 && respLeft <= MAX_MERGED_BODY && upBuf.length >= respLeft) {
      writeClient(forwardHead(rh, statusLine(rh), conn, upBuf.subarray(0, respLeft)))
      upBuf = upBuf.subarray(respLeft)
      respLeft = 0
      ctx.onResponse(x.head, rh.status, latencyNs, true)
      responseDone(keepUpstreamAfter)
      return
    }
    // Body bytes that came with the head leave in the same write (writev) as the head.
    if (upBuf.length > 0 && !client.writableCorked) {
      client.cork()
      process.nextTick(uncork, client)
    }
    writeClient(forwardHead(rh, statusLine(rh), conn))
    ctx.onResponse(x.head, rh.status, latencyNs, true)
    if (rh.body === 0) responseDone(keepUpstreamAfter)
  }

  const upstreamFailed = (status: 502 | 503) => {
    ctx.onUpstreamError()
    if (cur && !cur.answered) {
      ctx.onResponse(cur.head, status, undefined, false)
      endWith(
        simpleResponse(status, status === 503 ? UPSTREAM_ERROR_BODY : 'Bad Gateway\r\n', false, 1),
      )
    } else close()
  }

  const getUpstream = (): Socket => {
    if (upstream && !upstream.destroyed) return upstream
    // Responses are read into one buffer per upstream connection (no stream 'data' event, no
    // allocation per read). Whatever still refers to it after a read is processed — bytes kept
    // for later, or a write the client socket has queued — gets a copy or a fresh buffer.
    let readBuf = Buffer.allocUnsafeSlow(UPSTREAM_READ_SIZE)
    let retained = false
    const up = ctx.connect({
      buffer: () => {
        if (retained) {
          readBuf = Buffer.allocUnsafeSlow(UPSTREAM_READ_SIZE)
          retained = false
        }
        return readBuf
      },
      callback: (n: number, b: Uint8Array) => {
        if (up !== upstream) return true
        const d = (b as Buffer).subarray(0, n)
        upBuf = upBuf.length ? Buffer.concat([upBuf, d]) : d
        processUpstream()
        if (upBuf.length > 0 && upBuf.buffer === readBuf.buffer) upBuf = Buffer.from(upBuf)
        if (client.writableLength > 0) retained = true
        return true
      },
    })
    upstream = up
    upBuf = Buffer.alloc(0)
    up.on('error', () => {})
    up.on('close', () => {
      if (up !== upstream) return
      upstream = undefined
      if (state === 'closed') return
      if (cur && resp === 'body' && respClose) {
        // A close-delimited body ends here; the client connection ends with it.
        cur.keepAlive = false
        responseDone(false)
        return
      }
      if (cur && !cur.responseDone) upstreamFailed(503)
    })
    return up
  }

  const processClient = () => {
    while (state !== 'closed') {
      if (state === 'head') {
        if (buf.length === 0) return
        const end = headEnd(buf, Math.max(0, scanned - 3))
        if (end < 0) {
          armHead()
          scanned = buf.length
          if (buf.length > ctx.maxHeaderSize) {
            ctx.onBadRequest('headersTooLarge', 'request head too large')
            return endWith(simpleResponse(431, '', false, 1))
          }
          return
        }
        scanned = 0
        if (end > ctx.maxHeaderSize) {
          ctx.onBadRequest('headersTooLarge', 'request head too large')
          return endWith(simpleResponse(431, '', false, 1))
        }
        // A head byte-for-byte the same as the previous one on this connection (a client
        // polling or repeating a request) parses the same: reuse it (parsing is a pure function
        // of the bytes). The proxy keys its policy-decision cache on this object.
        const bytes = buf.subarray(0, end)
        const head =
          last !== undefined && last.bytes.length === end && last.bytes.equals(bytes)
            ? last
            : parseRequestHead(bytes)
        buf = buf.subarray(end)
        if (head.error) {
          ctx.onBadRequest('malformed', head.reason)
          return endWith(simpleResponse(head.status === 501 ? 501 : 400, '', false, 1))
        }
        phase = 'none'
        last = head
        const verdict = ctx.allowed(head)
        // Records and counters follow the write: they are not on the request's path.
        if (verdict === false) {
          const keep = head.keepAlive && head.body === 0
          const res = simpleResponse(403, DENIED_BODY, keep, head.minor, head.method === 'HEAD')
          if (!keep) {
            endWith(res)
            ctx.onRequest(head, 'denied')
            return
          }
          writeClient(res)
          ctx.onRequest(head, 'denied')
          armIdle()
          continue
        }
        cur = {
          head,
          t0: process.hrtime.bigint(),
          left: typeof head.body === 'number' ? head.body : 0,
          framer: head.body === 'chunked' ? new ChunkedFramer() : undefined,
          requestDone: head.body === 0,
          responseDone: false,
          answered: false,
          keepAlive: head.keepAlive,
        }
        const extra = head.minor === 0 ? KEEP_ALIVE_1_0 : ''
        const up = getUpstream()
        resp = 'head'
        // The body bytes that follow leave in the same write (writev) as the head.
        if (!cur.requestDone && buf.length > 0 && !up.writableCorked) {
          up.cork()
          process.nextTick(uncork, up)
        }
        writeUpstream(
          verdict.length
            ? serializeHead(
                `${head.method} ${head.target} HTTP/1.${head.minor}`,
                endToEnd(applyHeaderEdits(head.rawHeaders, verdict)),
                extra,
              )
            : forwardHead(head, undefined, extra),
        )
        ctx.onRequest(head, 'forwarded')
        state = cur.requestDone ? 'wait' : 'body'
        continue
      }
      if (state === 'body') {
        const x = cur as Exchange
        if (buf.length === 0) return
        let n: number
        if (x.framer) {
          n = x.framer.feed(buf)
          if (x.framer.error) {
            ctx.onBadRequest('malformed', x.framer.error)
            if (!x.answered) return endWith(simpleResponse(400, '', false, 1))
            return close()
          }
        } else n = Math.min(x.left, buf.length)
        writeUpstream(buf.subarray(0, n))
        buf = buf.subarray(n)
        if (!x.framer) x.left -= n
        if (x.framer?.done || (!x.framer && x.left === 0)) {
          x.requestDone = true
          state = 'wait'
          finishIfDone()
          continue
        }
        return
      }
      // wait: the response is on its way; pipelined requests stay buffered (bounded).
      if (buf.length > ctx.maxHeaderSize * 4) client.pause()
      return
    }
  }

  client.on('data', (d: Buffer) => {
    if (state === 'closed') return
    buf = buf.length ? Buffer.concat([buf, d]) : d
    processClient()
  })
  client.on('error', () => {})
  client.on('close', () => {
    state = 'closed'
    stopTimer()
    upstream?.destroy()
  })
  // A client that closes its side aborts what is in progress (as Node's http server does).
  client.on('end', () => close())
  armIdle()
}
