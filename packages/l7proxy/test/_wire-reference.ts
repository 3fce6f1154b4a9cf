/**
 * The oracle of the wire property tests: the string-and-regex head parser the fast engine used
 * before it parsed bytes (packages/l7proxy/src/http/wire.ts before the byte parser), kept here
 * unchanged so the tests can check the byte parser accepts and refuses exactly what it did.
 * Not used by the proxy.
 */

interface HeadError {
  error: true
  status: 400 | 431 | 501 | 502
  reason: string
}

export interface ReferenceRequestHead {
  method: string
  target: string
  minor: 0 | 1
  rawHeaders: string[]
  body: number | 'chunked'
  keepAlive: boolean
  expectContinue: boolean
  host: string
}

export interface ReferenceResponseHead {
  minor: 0 | 1
  status: number
  reason: string
  rawHeaders: string[]
  body: number | 'chunked' | 'close'
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
export function referenceParseRequestHead(head: Buffer): ReferenceRequestHead | HeadError {
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
export function referenceParseResponseHead(
  head: Buffer,
  method: string,
): ReferenceResponseHead | HeadError {
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
