/**
 * HTTP/1.1 message heads and body framing (RFC 9112), strict: the fast engine forwards the body
 * bytes it validated, so it must frame exactly as a conforming server would — anything
 * ambiguous (Content-Length with Transfer-Encoding, several Content-Lengths, a coding other than
 * `chunked`, obs-fold, bare LF, control characters) is rejected instead of guessed.
 */

/** Why a head was rejected: the status to answer and a reason. */
export interface HeadError {
  error: true
  status: 400 | 431 | 501 | 502
  reason: string
}

/** A parsed request head. */
export interface RequestHead {
  error?: false
  method: string
  target: string
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: 0 | 1
  /** name, value, name, value... as received. */
  rawHeaders: string[]
  /** Body length, or 'chunked', or 0 for none. */
  body: number | 'chunked'
  /** The client wants the connection kept after this exchange. */
  keepAlive: boolean
  expectContinue: boolean
  host: string
}

/** A parsed response head. */
export interface ResponseHead {
  error?: false
  minor: 0 | 1
  status: number
  reason: string
  rawHeaders: string[]
  /** Body length, 'chunked', 'close' (until the connection closes), or 0 for none. */
  body: number | 'chunked' | 'close'
  /** The server keeps the connection after this response. */
  keepAlive: boolean
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// biome-ignore lint/suspicious/noControlCharactersInRegex: the HTTP grammar (RFC 9110/9112) is defined by control-character ranges
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP\/1\.([01])$/
// biome-ignore lint/suspicious/noControlCharactersInRegex: the HTTP grammar (RFC 9110/9112) is defined by control-character ranges
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/
// Field values: visible ASCII, SP, HTAB and obs-text; no other control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the HTTP grammar (RFC 9110/9112) is defined by control-character ranges
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/

function fail(status: HeadError['status'], reason: string): HeadError {
  return { error: true, status, reason }
}

/**
 * Where the head ends in `buf` (the index after CRLFCRLF), -1 when not complete yet.
 */
export function headEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf('\r\n\r\n', from, 'latin1')
  return i < 0 ? -1 : i + 4
}

interface Fields {
  raw: string[]
  contentLength: string[]
  transferEncoding: string[]
  connection: string[]
  host: string[]
  expect: string[]
}

function parseFields(lines: string[]): Fields | HeadError {
  const f: Fields = {
    raw: [],
    contentLength: [],
    transferEncoding: [],
    connection: [],
    host: [],
    expect: [],
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string
    if (line === '') continue
    if (line[0] === ' ' || line[0] === '\t') return fail(400, 'obsolete line folding')
    const colon = line.indexOf(':')
    if (colon <= 0) return fail(400, 'header line without a name')
    const name = line.slice(0, colon)
    if (!TOKEN.test(name)) return fail(400, `invalid header name ${JSON.stringify(name)}`)
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (BAD_VALUE.test(value)) return fail(400, `control character in header ${name}`)
    f.raw.push(name, value)
    switch (name.toLowerCase()) {
      case 'content-length':
        f.contentLength.push(value)
        break
      case 'transfer-encoding':
        f.transferEncoding.push(value)
        break
      case 'connection':
        f.connection.push(value)
        break
      case 'host':
        f.host.push(value)
        break
      case 'expect':
        f.expect.push(value)
        break
    }
  }
  return f
}

function lines(head: string): string[] | HeadError {
  // CRLF only: a bare CR or LF is a classic desync vector.
  const body = head.slice(0, -4)
  if (/\r(?!\n)|(?<!\r)\n/.test(body)) return fail(400, 'bare CR or LF')
  return body.split('\r\n')
}

function connectionTokens(values: string[]): Set<string> {
  const out = new Set<string>()
  for (const v of values) for (const t of v.split(',')) out.add(t.trim().toLowerCase())
  return out
}

function bodyOf(f: Fields, minor: 0 | 1): number | 'chunked' | HeadError {
  if (f.transferEncoding.length > 0) {
    if (f.contentLength.length > 0) return fail(400, 'both Content-Length and Transfer-Encoding')
    if (minor === 0) return fail(400, 'Transfer-Encoding in HTTP/1.0')
    if (f.transferEncoding.length > 1 || f.transferEncoding[0]?.toLowerCase() !== 'chunked')
      return fail(
        501,
        `unsupported transfer coding ${JSON.stringify(f.transferEncoding.join(', '))}`,
      )
    return 'chunked'
  }
  if (f.contentLength.length > 1) return fail(400, 'several Content-Length headers')
  if (f.contentLength.length === 1) {
    const v = f.contentLength[0] as string
    if (!/^[0-9]{1,15}$/.test(v)) return fail(400, `invalid Content-Length ${JSON.stringify(v)}`)
    return Number(v)
  }
  return 0
}

/** Parse a request head (the bytes up to and including CRLFCRLF). */
export function parseRequestHead(head: Buffer): RequestHead | HeadError {
  const ls = lines(head.toString('latin1'))
  if ('error' in ls) return ls
  const m = REQUEST_LINE.exec(ls[0] as string)
  if (!m) return fail(400, 'invalid request line')
  const minor = m[3] === '1' ? 1 : 0
  const f = parseFields(ls)
  if ('error' in f) return f
  if (f.host.length > 1) return fail(400, 'several Host headers')
  if (minor === 1 && f.host.length === 0) return fail(400, 'HTTP/1.1 request without Host')
  const body = bodyOf(f, minor)
  if (typeof body === 'object') return body
  const conn = connectionTokens(f.connection)
  return {
    method: m[1] as string,
    target: m[2] as string,
    minor,
    rawHeaders: f.raw,
    body,
    keepAlive: minor === 1 ? !conn.has('close') : conn.has('keep-alive'),
    expectContinue: f.expect.some((e) => e.toLowerCase() === '100-continue'),
    host: f.host[0] ?? '',
  }
}

/** Parse a response head; `method` is the request's (HEAD responses have no body). */
export function parseResponseHead(head: Buffer, method: string): ResponseHead | HeadError {
  const ls = lines(head.toString('latin1'))
  if ('error' in ls) return fail(502, ls.reason)
  const m = STATUS_LINE.exec(ls[0] as string)
  if (!m) return fail(502, 'invalid status line')
  const minor = m[1] === '1' ? 1 : 0
  const status = Number(m[2])
  const f = parseFields(ls)
  if ('error' in f) return fail(502, f.reason)
  const conn = connectionTokens(f.connection)
  let keepAlive = minor === 1 ? !conn.has('close') : conn.has('keep-alive')
  let body: number | 'chunked' | 'close'
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) body = 0
  else {
    const b = bodyOf(f, minor)
    if (typeof b === 'object') {
      // A server may send Transfer-Encoding in HTTP/1.0 or unknown codings: read to close.
      if (b.status === 400) return fail(502, b.reason)
      body = 'close'
    } else if (b === 0 && f.contentLength.length === 0) body = 'close'
    else body = b
  }
  if (body === 'close') keepAlive = false
  return { minor, status, reason: m[3] ?? '', rawHeaders: f.raw, body, keepAlive }
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
])

/** Header pairs minus hop-by-hop ones and those the Connection header names. */
export function endToEnd(raw: readonly string[]): string[] {
  let named: Set<string> | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() !== 'connection') continue
    for (const t of (raw[i + 1] as string).split(',')) {
      const n = t.trim().toLowerCase()
      if (!n || n === 'close' || n === 'keep-alive') continue
      named ??= new Set()
      named.add(n)
    }
  }
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase()
    if (HOP_BY_HOP.has(k) || named?.has(k)) continue
    out.push(raw[i] as string, raw[i + 1] as string)
  }
  return out
}

/** Serialize a head: first line, header pairs, extra lines, blank line. */
export function serializeHead(first: string, raw: readonly string[], extra = ''): Buffer {
  let s = `${first}\r\n`
  for (let i = 0; i < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`
  return Buffer.from(`${s}${extra}\r\n`, 'latin1')
}

/**
 * Incremental chunked-body framer: feed bytes, learn how many of them belong to the body
 * (including the last chunk and trailers). Validates sizes and CRLFs strictly.
 */
export class ChunkedFramer {
  #state: 'size' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done' = 'size'
  #line = ''
  #left = 0
  #lastChunk = false
  /** Error text once the framing is invalid. */
  error: string | undefined

  get done(): boolean {
    return this.#state === 'done'
  }

  /**
   * Consume bytes from `buf[from..]`; returns how many belong to the body (stops at the end of
   * the body, or on an error — check `error`).
   */
  feed(buf: Buffer, from = 0): number {
    let i = from
    while (i < buf.length && this.#state !== 'done' && !this.error) {
      switch (this.#state) {
        case 'size':
        case 'trailer': {
          const nl = buf.indexOf(10, i)
          const end = nl < 0 ? buf.length : nl + 1
          this.#line += buf.toString('latin1', i, end)
          i = end
          if (this.#line.length > 4096) {
            this.error = 'chunk line too long'
            break
          }
          if (nl < 0) break
          if (!this.#line.endsWith('\r\n')) {
            this.error = 'chunk line without CRLF'
            break
          }
          const line = this.#line.slice(0, -2)
          this.#line = ''
          if (this.#state === 'trailer') {
            if (line === '') this.#state = 'done'
            // biome-ignore lint/suspicious/noControlCharactersInRegex: the HTTP grammar (RFC 9110/9112) is defined by control-character ranges
            else if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*$/.test(line))
              this.error = 'invalid trailer'
            break
          }
          // biome-ignore lint/suspicious/noControlCharactersInRegex: the HTTP grammar (RFC 9110/9112) is defined by control-character ranges
          const m = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;[^\x00-\x08\x0a-\x1f\x7f]*)?$/.exec(line)
          if (!m) {
            this.error = `invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`
            break
          }
          this.#left = Number.parseInt(m[1] as string, 16)
          if (this.#left === 0) {
            this.#lastChunk = true
            this.#state = 'trailer'
          } else this.#state = 'data'
          break
        }
        case 'data': {
          const n = Math.min(this.#left, buf.length - i)
          this.#left -= n
          i += n
          if (this.#left === 0) this.#state = 'data-cr'
          break
        }
        case 'data-cr':
          if (buf[i] !== 13) this.error = 'chunk data not followed by CRLF'
          else this.#state = 'data-lf'
          i++
          break
        case 'data-lf':
          if (buf[i] !== 10) this.error = 'chunk data not followed by CRLF'
          else this.#state = 'size'
          i++
          break
      }
    }
    void this.#lastChunk
    return i - from
  }
}
