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

/**
 * Field lines of a head as offsets into its bytes, five numbers a field: name start, name end
 * (the colon), value start, value end (the value without surrounding SP/HTAB), kind.
 */
type Fields = number[]

/** Kinds of field lines the engine looks at; everything else is {@link F_OTHER}. */
const F_OTHER = 0
const F_CONTENT_LENGTH = 1
const F_TRANSFER_ENCODING = 2
const F_CONNECTION = 3
const F_HOST = 4
const F_EXPECT = 5
/** Hop-by-hop fields other than Connection (never forwarded). */
const F_HOP = 6

/** A parsed head: its bytes and where its field lines are. */
abstract class Head {
  readonly error = false as const
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: 0 | 1 = 1
  /** The head as received (start line to the blank line). */
  readonly bytes: Buffer
  /** @internal field offsets (see {@link Fields}). */
  readonly fields: Fields = []
  /** @internal the end of the start line. */
  lineEnd = 0
  /** @internal set when a Connection header names other fields (drop those too). */
  named: Set<string> | undefined
  #raw: string[] | undefined

  constructor(bytes: Buffer) {
    this.bytes = bytes
  }

  /** name, value, name, value... as received (values without surrounding whitespace). */
  get rawHeaders(): string[] {
    this.#raw ??= rawOf(this.bytes, this.fields)
    return this.#raw
  }

  /**
   * The value of the fields named `lower` (a lower-case name; repeated fields joined with `, `),
   * as `headerView(rawHeaders).get(lower)` (internal/http-headers.ts) gives it, read from the bytes.
   */
  header(lower: string): string | undefined {
    const b = this.bytes
    const f = this.fields
    let out: string | undefined
    for (let i = 0; i < f.length; i += 5) {
      const ns = f[i] as number
      if ((f[i + 1] as number) - ns !== lower.length) continue
      let k = 0
      while (k < lower.length) {
        let c = b[ns + k] as number
        if (c >= 0x41 && c <= 0x5a) c += 0x20
        if (c !== lower.charCodeAt(k)) break
        k++
      }
      if (k < lower.length) continue
      const v = b.toString('latin1', f[i + 2] as number, f[i + 3] as number)
      out = out === undefined ? v : `${out}, ${v}`
    }
    return out
  }
}

/** A parsed request head: the framing and what the policy looks at, plus its bytes. */
export class RequestHead extends Head {
  method = ''
  target = ''
  /** Body length, or 'chunked', or 0 for none. */
  body: number | 'chunked' = 0
  /** The client wants the connection kept after this exchange. */
  keepAlive = true
  expectContinue = false
  host = ''
}

/** A parsed response head. */
export class ResponseHead extends Head {
  status = 0
  /** The reason phrase (read from the bytes on first use). */
  get reason(): string {
    return this.lineEnd > 13 ? this.bytes.toString('latin1', 13, this.lineEnd) : ''
  }
  /** Body length, 'chunked', 'close' (until the connection closes), or 0 for none. */
  body: number | 'chunked' | 'close' = 0
  /** The server keeps the connection after this response. */
  keepAlive = true
}

function rawOf(b: Buffer, f: Fields): string[] {
  const out: string[] = []
  for (let i = 0; i < f.length; i += 5)
    out.push(
      b.toString('latin1', f[i] as number, f[i + 1] as number),
      b.toString('latin1', f[i + 2] as number, f[i + 3] as number),
    )
  return out
}

/** tchar of RFC 9110: field names and methods. */
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1
/** Bytes of a field value or reason phrase: HTAB, SP, visible ASCII, obs-text. */
const VALUE = new Uint8Array(256).fill(1)
for (let c = 0; c < 0x20; c++) if (c !== 9) VALUE[c] = 0
VALUE[0x7f] = 0
/** Bytes of a request target: anything but controls and SP. */
const TARGET = new Uint8Array(256).fill(1)
for (let c = 0; c <= 0x20; c++) TARGET[c] = 0
TARGET[0x7f] = 0

const LF = 10
const CR = 13
const SP = 32
const HTAB = 9

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

/** ASCII case-insensitive: are `b[at..at+lower.length)` the bytes of `lower` (a-z, '-', digits)? */
function bytesAre(b: Buffer, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++)
    if (((b[at + i] as number) | 0x20) !== lower.charCodeAt(i)) return false
  return true
}

/** Hop-by-hop fields: never forwarded (RFC 9110 7.6.1, plus the proxy ones). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
])

/** The field names the engine looks at, by length (lower case). */
const KINDS: Array<Array<[string, number]>> = []
for (const [name, kind] of [
  ['host', F_HOST],
  ['content-length', F_CONTENT_LENGTH],
  ['transfer-encoding', F_TRANSFER_ENCODING],
  ['connection', F_CONNECTION],
  ['expect', F_EXPECT],
  ...[...HOP_BY_HOP].filter((n) => n !== 'connection').map((n) => [n, F_HOP] as const),
] as const) {
  KINDS[name.length] ??= []
  KINDS[name.length]?.push([name, kind])
}

function kindOf(b: Buffer, at: number, len: number): number {
  const candidates = KINDS[len]
  if (candidates) for (const [name, kind] of candidates) if (bytesAre(b, at, name)) return kind
  return F_OTHER
}

/**
 * The field lines after the start line: each `name: value` CRLF, strictly (no obs-fold, no bare
 * CR or LF, token names, no control characters in values). Fills `f`; returns an error or
 * undefined.
 */
function scanFields(b: Buffer, from: number, f: Fields): HeadError | undefined {
  const end = b.length - 2 // the final CRLF
  let pos = from
  while (pos < end) {
    const lf = b.indexOf(LF, pos)
    if (lf < 0 || lf >= end + 1 || b[lf - 1] !== CR) return fail(400, 'bare CR or LF')
    const le = lf - 1
    const c0 = b[pos] as number
    if (c0 === SP || c0 === HTAB) return fail(400, 'obsolete line folding')
    let j = pos
    while (j < le && TCHAR[b[j] as number] === 1) j++
    if (j === le || b[j] !== 0x3a) {
      for (let k = j; k < le; k++) if (b[k] === CR) return fail(400, 'bare CR or LF')
      if (j === pos || b.indexOf(0x3a, pos) < 0 || b.indexOf(0x3a, pos) > le)
        return fail(400, 'header line without a name')
      return fail(400, `invalid header name ${JSON.stringify(b.toString('latin1', pos, j + 1))}`)
    }
    if (j === pos) return fail(400, 'header line without a name')
    let vs = j + 1
    while (vs < le && (b[vs] === SP || b[vs] === HTAB)) vs++
    let ve = le
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--
    for (let k = vs; k < ve; k++) {
      const c = b[k] as number
      if (VALUE[c] === 0)
        return c === CR || c === LF
          ? fail(400, 'bare CR or LF')
          : fail(400, `control character in header ${b.toString('latin1', pos, j)}`)
    }
    f.push(pos, j, vs, ve, kindOf(b, pos, j - pos))
    pos = lf + 1
  }
  return undefined
}

/** Framing facts of a head's fields. */
interface Framing {
  contentLength: number
  transferEncoding: number
  host: number
  /** The value offsets of the first Content-Length / Transfer-Encoding / Host / Expect. */
  cl: number
  te: number
  hostAt: number
  connection: boolean
  expect: number[] | undefined
}

function framing(f: Fields): Framing {
  const r: Framing = {
    contentLength: 0,
    transferEncoding: 0,
    host: 0,
    cl: -1,
    te: -1,
    hostAt: -1,
    connection: false,
    expect: undefined,
  }
  for (let i = 0; i < f.length; i += 5) {
    switch (f[i + 4]) {
      case F_CONTENT_LENGTH:
        if (r.contentLength++ === 0) r.cl = i
        break
      case F_TRANSFER_ENCODING:
        if (r.transferEncoding++ === 0) r.te = i
        break
      case F_HOST:
        if (r.host++ === 0) r.hostAt = i
        break
      case F_CONNECTION:
        r.connection = true
        break
      case F_EXPECT:
        r.expect ??= []
        r.expect.push(i)
        break
    }
  }
  return r
}

/** Content-Length (1-15 digits, nothing else) or -1. */
function lengthOf(b: Buffer, vs: number, ve: number): number {
  if (ve <= vs || ve - vs > 15) return -1
  let n = 0
  for (let k = vs; k < ve; k++) {
    const d = (b[k] as number) - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

function bodyOf(b: Buffer, f: Fields, fr: Framing, minor: 0 | 1): number | 'chunked' | HeadError {
  if (fr.transferEncoding > 0) {
    if (fr.contentLength > 0) return fail(400, 'both Content-Length and Transfer-Encoding')
    if (minor === 0) return fail(400, 'Transfer-Encoding in HTTP/1.0')
    const vs = f[fr.te + 2] as number
    const ve = f[fr.te + 3] as number
    if (fr.transferEncoding > 1 || ve - vs !== 7 || !bytesAre(b, vs, 'chunked')) {
      const values: string[] = []
      for (let i = 0; i < f.length; i += 5)
        if (f[i + 4] === F_TRANSFER_ENCODING)
          values.push(b.toString('latin1', f[i + 2] as number, f[i + 3] as number))
      return fail(501, `unsupported transfer coding ${JSON.stringify(values.join(', '))}`)
    }
    return 'chunked'
  }
  if (fr.contentLength > 1) return fail(400, 'several Content-Length headers')
  if (fr.contentLength === 1) {
    const n = lengthOf(b, f[fr.cl + 2] as number, f[fr.cl + 3] as number)
    if (n < 0)
      return fail(
        400,
        `invalid Content-Length ${JSON.stringify(b.toString('latin1', f[fr.cl + 2] as number, f[fr.cl + 3] as number))}`,
      )
    return n
  }
  return 0
}

/**
 * The tokens of the Connection fields: whether they say close / keep-alive, and the other field
 * names they list (those are hop-by-hop too). A lone `close` or `keep-alive` is read from the
 * bytes; anything else goes through strings.
 */
function connectionOf(
  b: Buffer,
  f: Fields,
): { close: boolean; keepAlive: boolean; named: Set<string> | undefined } {
  let close = false
  let keepAlive = false
  let named: Set<string> | undefined
  for (let i = 0; i < f.length; i += 5) {
    if (f[i + 4] !== F_CONNECTION) continue
    const vs = f[i + 2] as number
    const len = (f[i + 3] as number) - vs
    if (len === 5 && bytesAre(b, vs, 'close')) close = true
    else if (len === 10 && bytesAre(b, vs, 'keep-alive')) keepAlive = true
    else
      for (const t of b.toString('latin1', vs, vs + len).split(',')) {
        const n = t.trim().toLowerCase()
        if (n === 'close') close = true
        else if (n === 'keep-alive') keepAlive = true
        else if (n) {
          named ??= new Set()
          named.add(n)
        }
      }
  }
  return { close, keepAlive, named }
}

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS']

/** The method as a string; common ones without a new string. */
function methodOf(b: Buffer, len: number): string {
  for (const m of METHODS)
    if (m.length === len) {
      let k = 0
      while (k < len && b[k] === m.charCodeAt(k)) k++
      if (k === len) return m
    }
  return b.toString('latin1', 0, len)
}

/**
 * Parse a request head (the bytes up to and including CRLFCRLF). Reads bytes, not strings: only
 * the method, the target and Host become strings (the other fields on demand, `rawHeaders`).
 */
export function parseRequestHead(head: Buffer): RequestHead | HeadError {
  const lf = head.indexOf(LF)
  if (lf < 1 || head[lf - 1] !== CR) return fail(400, 'bare CR or LF')
  const le = lf - 1
  // method SP target SP HTTP/1.x
  let i = 0
  while (i < le && TCHAR[head[i] as number] === 1) i++
  const methodEnd = i
  if (methodEnd === 0 || head[i] !== SP) return badStartLine(head, le)
  const ts = ++i
  while (i < le && TARGET[head[i] as number] === 1) i++
  const te = i
  if (te === ts || head[i] !== SP || le - i !== 9 || !isVersion(head, i + 1))
    return badStartLine(head, le)
  const minor = head[le - 1] === 0x31 ? 1 : 0
  const h = new RequestHead(head)
  const err = scanFields(head, lf + 1, h.fields)
  if (err) return err
  const f = h.fields
  const fr = framing(f)
  if (fr.host > 1) return fail(400, 'several Host headers')
  if (minor === 1 && fr.host === 0) return fail(400, 'HTTP/1.1 request without Host')
  const body = bodyOf(head, f, fr, minor)
  if (typeof body === 'object') return body
  h.minor = minor
  h.method = methodOf(head, methodEnd)
  h.target = head.toString('latin1', ts, te)
  h.body = body
  h.lineEnd = le
  if (fr.hostAt >= 0)
    h.host = head.toString('latin1', f[fr.hostAt + 2] as number, f[fr.hostAt + 3] as number)
  if (fr.connection) {
    const c = connectionOf(head, f)
    h.keepAlive = minor === 1 ? !c.close : c.keepAlive
    h.named = c.named
  } else h.keepAlive = minor === 1
  if (fr.expect)
    for (const at of fr.expect) {
      const vs = f[at + 2] as number
      if ((f[at + 3] as number) - vs === 12 && bytesAre(head, vs, '100-continue'))
        h.expectContinue = true
    }
  return h
}

/** `HTTP/1.0` or `HTTP/1.1` at `at`. */
function isVersion(b: Buffer, at: number): boolean {
  return (
    b[at] === 0x48 &&
    b[at + 1] === 0x54 &&
    b[at + 2] === 0x54 &&
    b[at + 3] === 0x50 &&
    b[at + 4] === 0x2f &&
    b[at + 5] === 0x31 &&
    b[at + 6] === 0x2e &&
    (b[at + 7] === 0x30 || b[at + 7] === 0x31)
  )
}

/** A bad start line; a stray CR or LF anywhere in the head is reported as such. */
function badStartLine(b: Buffer, le: number): HeadError {
  for (let k = 0; k < le; k++) if (b[k] === CR) return fail(400, 'bare CR or LF')
  return fail(400, 'invalid request line')
}

/** Parse a response head; `method` is the request's (HEAD responses have no body). */
export function parseResponseHead(head: Buffer, method: string): ResponseHead | HeadError {
  const lf = head.indexOf(LF)
  if (lf < 1 || head[lf - 1] !== CR) return fail(502, 'bare CR or LF')
  const le = lf - 1
  // HTTP/1.x SP [1-9]dd [SP reason]
  if (
    le < 12 ||
    !isVersion(head, 0) ||
    head[8] !== SP ||
    (head[9] as number) < 0x31 ||
    (head[9] as number) > 0x39 ||
    (head[10] as number) < 0x30 ||
    (head[10] as number) > 0x39 ||
    (head[11] as number) < 0x30 ||
    (head[11] as number) > 0x39 ||
    (le > 12 && head[12] !== SP)
  )
    return fail(502, 'invalid status line')
  for (let k = 13; k < le; k++)
    if (VALUE[head[k] as number] === 0)
      return fail(502, head[k] === CR ? 'bare CR or LF' : 'invalid status line')
  const minor = head[7] === 0x31 ? 1 : 0
  const status =
    ((head[9] as number) - 48) * 100 + ((head[10] as number) - 48) * 10 + (head[11] as number) - 48
  const h = new ResponseHead(head)
  const err = scanFields(head, lf + 1, h.fields)
  if (err) return fail(502, err.reason)
  const f = h.fields
  const fr = framing(f)
  const c = fr.connection ? connectionOf(head, f) : undefined
  let keepAlive = minor === 1 ? !c?.close : c?.keepAlive === true
  let body: number | 'chunked' | 'close'
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) body = 0
  else {
    const b = bodyOf(head, f, fr, minor)
    if (typeof b === 'object') {
      // A server may send Transfer-Encoding in HTTP/1.0 or unknown codings: read to close.
      if (b.status === 400) return fail(502, b.reason)
      body = 'close'
    } else if (b === 0 && fr.contentLength === 0) body = 'close'
    else body = b
  }
  if (body === 'close') keepAlive = false
  h.minor = minor
  h.status = status
  h.body = body
  h.keepAlive = keepAlive
  h.lineEnd = le
  h.named = c?.named
  return h
}

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
 * The head to forward: the received bytes without the hop-by-hop field lines (and those the
 * Connection header names), the start line replaced by `first` when given, `extra` lines
 * (each ending CRLF) before the blank line, and `tail` (body bytes) after it, in one buffer.
 * Field lines are copied as received, not re-serialised; with nothing to drop or add this is the
 * received head itself.
 */
export function forwardHead(
  h: RequestHead | ResponseHead,
  first?: string,
  extra = '',
  tail?: Buffer,
): Buffer {
  const b = h.bytes
  const f = h.fields
  const named = h.named
  const fieldsEnd = b.length - 2 // the blank line
  let droppedBytes = 0
  let dropped = false
  for (let i = 0; i < f.length; i += 5)
    if (dropField(b, f, i, named)) {
      dropped = true
      droppedBytes += lineEndOf(f, i, fieldsEnd) - (f[i] as number)
    }
  if (!dropped && first === undefined && extra === '' && !tail) return b
  const startLine = h.lineEnd + 2
  const out = Buffer.allocUnsafe(
    (first === undefined ? startLine : first.length + 2) +
      (fieldsEnd - startLine - droppedBytes) +
      extra.length +
      2 +
      (tail ? tail.length : 0),
  )
  let o = first === undefined ? b.copy(out, 0, 0, startLine) : out.write(`${first}\r\n`, 'latin1')
  if (!dropped) o += b.copy(out, o, startLine, fieldsEnd)
  else
    for (let i = 0; i < f.length; i += 5)
      if (!dropField(b, f, i, named))
        o += b.copy(out, o, f[i] as number, lineEndOf(f, i, fieldsEnd))
  if (extra) o += out.write(extra, o, 'latin1')
  out[o++] = CR
  out[o++] = LF
  if (tail) tail.copy(out, o)
  return out
}

/** Where field line `i` ends: at the next line's name, or at the blank line. */
function lineEndOf(f: Fields, i: number, fieldsEnd: number): number {
  return i + 5 < f.length ? (f[i + 5] as number) : fieldsEnd
}

function dropField(b: Buffer, f: Fields, i: number, named: Set<string> | undefined): boolean {
  const kind = f[i + 4]
  if (kind === F_CONNECTION || kind === F_HOP) return true
  return named?.has(b.toString('latin1', f[i] as number, f[i + 1] as number).toLowerCase()) === true
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
