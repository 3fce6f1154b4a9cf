/**
 * An open-loop HTTP/1.1 load generator for the benchmarks, run as its own process
 * (`node --import tsx _paced.ts <url> <rate> <connections> <seconds>`) so it shares no event
 * loop with the proxy or the upstream. Prints one JSON line with its measurements.
 *
 * Open loop: request i is due at t0 + i / rate whatever the server does (a fixed timetable),
 * and its latency is measured from that due time to the last byte of its response, so a slow
 * response that delays the next send on its connection is counted, not hidden (no coordinated
 * omission). The timetable is spread over the keep-alive connections round-robin (request i on
 * connection i mod connections, as wrk2 does): each connection sends one request at a time; a
 * request that falls due while its connection still waits for the previous response is sent as
 * soon as that response is complete, and its latency includes the wait.
 *
 * Pacing: Node's timers have 1 ms granularity, which would add up to 1 ms of send lag to every
 * latency. Between due times the loop sleeps in `Atomics.wait` (sub-millisecond timeout, at most
 * MAX_WAIT_MS at once) and polls the sockets between sleeps, so sends are late by tens of
 * microseconds and a response is timestamped at most MAX_WAIT_MS after it arrived. The send lag
 * (actual send - due time) is reported, so the precision of the pacing is visible in every run.
 *
 * Why not autocannon: it can pace (`overallRate`), but it measures latency from the actual send,
 * with an optional after-the-fact estimate for coordinated omission (`-C`); here each latency is
 * taken from its due time, and the send lag is measured rather than assumed.
 *
 * Output: { due, completed, errors, seconds, rate (completed responses per second from t0 to the
 * last response), p50, p90, p99, p999, max (ms from due time), serviceP50/P99 (ms from actual
 * send), lagP50/P99 (ms, send time - due time of the requests whose connection was free: the
 * pacing precision), late (requests that fell due while their connection was still busy) }.
 */
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

const MAX_WAIT_MS = 0.05
const DRAIN_MS = 5000

const [urlArg, rateArg, connArg, secondsArg] = process.argv.slice(2)
const url = new URL(urlArg ?? '')
const rate = Number(rateArg)
const connections = Number(connArg)
const seconds = Number(secondsArg)
if (
  url.protocol !== 'http:' ||
  !(rate > 0) ||
  !Number.isInteger(connections) ||
  connections < 1 ||
  !(seconds > 0)
) {
  process.stderr.write(
    `usage: _paced.ts <http url> <rate> <connections> <seconds>; got ${process.argv.slice(2).join(' ')}\n`,
  )
  process.exit(2)
}
const host = url.hostname
const port = Number(url.port || 80)
const request = Buffer.from(
  `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: membrane-paced\r\n\r\n`,
)
const interval = 1000 / rate
const total = Math.round(rate * seconds)

interface Conn {
  socket: Socket | undefined
  ready: boolean
  /** Due indexes waiting for this connection, oldest first; the head is in flight when busy. */
  queue: number[]
  busy: boolean
  sentAt: number
  buf: Buffer
}

const latency = new Float64Array(total).fill(Number.NaN)
const service = new Float64Array(total).fill(Number.NaN)
const lag = new Float64Array(total).fill(Number.NaN)
/** Set for requests that fell due while their connection was busy (sent when it got free). */
const waited = new Float64Array(total).fill(Number.NaN)
let completed = 0
let errors = 0
let lastResponse = 0
let nextDue = 0
let t0 = 0
let finished = false
const sleeper = new Int32Array(new SharedArrayBuffer(4))
const conns: Conn[] = []

const due = (i: number) => t0 + i * interval

function open(c: Conn): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, noDelay: true })
    c.socket = socket
    c.ready = false
    c.buf = Buffer.alloc(0)
    socket.once('connect', () => {
      c.ready = true
      resolve()
      if (c.queue.length > 0 && !c.busy) send(c)
    })
    socket.on('data', (chunk: Buffer) => onData(c, chunk, performance.now()))
    socket.on('error', () => {})
    socket.on('close', () => {
      if (c.socket !== socket) return
      c.ready = false
      resolve()
      if (c.busy) fail(c)
      if (!finished) void open(c)
    })
  })
}

function send(c: Conn): void {
  const i = c.queue[0]
  if (i === undefined || !c.ready || !c.socket) return
  c.busy = true
  c.sentAt = performance.now()
  // Pacing precision: how late the timetable loop sent a request its connection was free for.
  if (Number.isNaN(waited[i] as number)) lag[i] = c.sentAt - due(i)
  c.socket.write(request)
}

function fail(c: Conn): void {
  c.queue.shift()
  c.busy = false
  errors++
}

/** Parse complete responses (Content-Length framed) out of the connection's buffer. */
function onData(c: Conn, chunk: Buffer, now: number): void {
  c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk])
  for (;;) {
    const end = c.buf.indexOf('\r\n\r\n')
    if (end < 0) return
    const head = c.buf.subarray(0, end).toString('latin1')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1])
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1]
    if (length === undefined || !c.busy) {
      // Not a response this client can frame (or one it did not ask for): count and reconnect.
      if (c.busy) fail(c)
      else errors++
      c.socket?.destroy()
      return
    }
    const size = end + 4 + Number(length)
    if (c.buf.length < size) return
    c.buf = c.buf.subarray(size)
    const i = c.queue.shift() as number
    c.busy = false
    if (status === 200) {
      latency[i] = now - due(i)
      service[i] = now - c.sentAt
      completed++
      lastResponse = now
    } else {
      errors++
    }
    if (c.queue.length > 0) send(c)
  }
}

function tick(): void {
  const now = performance.now()
  while (nextDue < total && due(nextDue) <= now) {
    const c = conns[nextDue % connections] as Conn
    c.queue.push(nextDue)
    if (c.busy || !c.ready) waited[nextDue] = 1
    else send(c)
    nextDue++
  }
  const outstanding = conns.some((c) => c.queue.length > 0)
  if (nextDue >= total && (!outstanding || now > due(total) + DRAIN_MS)) {
    finish()
    return
  }
  const wait = nextDue < total ? due(nextDue) - now : MAX_WAIT_MS
  if (wait > 2) {
    setTimeout(tick, wait - 1.5)
    return
  }
  if (wait > 0) Atomics.wait(sleeper, 0, 0, Math.min(wait, MAX_WAIT_MS))
  setImmediate(tick)
}

function pct(values: Float64Array, p: number): number {
  const xs = values.filter((v) => !Number.isNaN(v)).sort()
  if (xs.length === 0) return Number.NaN
  const rank = Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))
  return xs[rank] as number
}

function finish(): void {
  finished = true
  for (const c of conns) {
    errors += c.queue.length // never answered within the drain time
    c.socket?.destroy()
  }
  const r = (v: number) => Number(v.toFixed(3))
  const result = {
    due: total,
    completed,
    errors,
    late: waited.filter((v) => !Number.isNaN(v)).length,
    seconds,
    rate: Math.round(completed / ((lastResponse - t0) / 1000)),
    p50: r(pct(latency, 50)),
    p90: r(pct(latency, 90)),
    p99: r(pct(latency, 99)),
    p999: r(pct(latency, 99.9)),
    max: r(pct(latency, 100)),
    serviceP50: r(pct(service, 50)),
    serviceP99: r(pct(service, 99)),
    lagP50: r(pct(lag, 50)),
    lagP99: r(pct(lag, 99)),
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

async function main() {
  for (let k = 0; k < connections; k++) {
    conns.push({
      socket: undefined,
      ready: false,
      queue: [],
      busy: false,
      sentAt: 0,
      buf: Buffer.alloc(0),
    })
  }
  await Promise.all(conns.map(open))
  t0 = performance.now() + 1
  tick()
}

void main()
