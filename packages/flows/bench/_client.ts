// Bench client (a child process): follows GetFlows and reports counts to the parent.
//   argv: target, flowsPerSecond (0 = as fast as it can), mode: 'decode' (every response decoded
//   into a Flow with protobufjs) | 'count' (responses kept as bytes; only the oneof tag and loss
//   counts are read)
import { connect } from 'node:http2'
import { createRequire } from 'node:module'
import * as grpc from '@grpc/grpc-js'
import { ObserverClient, observerServiceDefinition } from '../src/grpc'
import { decodeMessage, encodeMessage } from '../src/proto'

const require = createRequire(import.meta.url)
const [target = '', rateArg = '0', mode = 'decode'] = process.argv.slice(2)
const rate = Number(rateArg)
// follow from the oldest flow still in the ring: nothing produced before the stream opened is missed
const REQUEST = { follow: true, since: { seconds: 1, nanos: 0 } }
let flows = 0
let lostRing = 0
let lostOther = 0
const ac = new AbortController()
const send = (m: unknown) => process.send?.(m)

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'report') send({ flows, lostRing, lostOther })
  if (m.cmd === 'stop') ac.abort()
})

function countLost(source: number, n: number) {
  if (source === 3) lostRing += n
  else lostOther += n
}

async function pace() {
  if (rate > 0 && flows % 100 === 0) {
    const due = Number(started) + (flows / rate) * 1e9
    const wait = (due - Number(process.hrtime.bigint())) / 1e6
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
}

let started = process.hrtime.bigint()
if (mode === 'raw') {
  // A bare HTTP/2 gRPC reader: splits length-prefixed messages and looks at the oneof tag only.
  const path = target.replace(/^unix:(\/\/)?/, '')
  const session = connect('http://localhost', {
    createConnection: () => require('node:net').connect(path),
    settings: { initialWindowSize: 8 << 20 },
  })
  session.on('connect', () => session.setLocalWindowSize(16 << 20))
  const body = encodeMessage('observer.GetFlowsRequest', REQUEST)
  const framed = Buffer.alloc(5 + body.length)
  framed.writeUInt32BE(body.length, 1)
  body.copy(framed, 5)
  const req = session.request({
    ':method': 'POST',
    ':path': '/observer.Observer/GetFlows',
    'content-type': 'application/grpc',
    te: 'trailers',
  })
  req.end(framed)
  ac.signal.addEventListener('abort', () => {
    req.close()
    session.close()
  })
  started = process.hrtime.bigint()
  send({ ready: true })
  let pending: Buffer = Buffer.alloc(0)
  await new Promise<void>((resolve) => {
    req.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      let off = 0
      while (pending.length - off >= 5) {
        const len = pending.readUInt32BE(off + 1)
        if (pending.length - off < 5 + len) break
        const msg = pending.subarray(off + 5, off + 5 + len)
        if (msg[0] === 0x0a) flows++
        else if (msg[0] === 0x1a) {
          const l = decodeMessage('observer.GetFlowsResponse', msg)
          const le = l.lostEvents as { source?: number; numEventsLost?: string }
          countLost(le.source ?? 0, Number(le.numEventsLost ?? 0))
        }
        off += 5 + len
      }
      pending = pending.subarray(off)
      if (rate > 0) {
        // pace to `rate` flows/s: stop reading (HTTP/2 flow control reaches the server) until due
        const due = Number(started) + (flows / rate) * 1e9
        const wait = (due - Number(process.hrtime.bigint())) / 1e6
        if (wait > 1) {
          req.pause()
          setTimeout(() => req.resume(), wait)
        }
      }
    })
    req.on('close', () => resolve())
    req.on('error', () => resolve())
  })
} else if (mode === 'count') {
  const def = {
    ...observerServiceDefinition,
    GetFlows: { ...observerServiceDefinition.GetFlows, responseDeserialize: (b: Buffer) => b },
  }
  const Ctor = grpc.makeGenericClientConstructor(
    def as unknown as grpc.ServiceDefinition,
    'Observer',
  )
  const client = new Ctor(target, grpc.credentials.createInsecure(), {
    'grpc-node.flow_control_window': 8 << 20,
  }) as unknown as grpc.Client & {
    GetFlows(req: unknown): grpc.ClientReadableStream<Buffer>
  }
  await new Promise<void>((res, rej) =>
    client.waitForReady(Date.now() + 5000, (e) => (e ? rej(e) : res())),
  )
  const call = client.GetFlows(REQUEST)
  ac.signal.addEventListener('abort', () => call.cancel())
  started = process.hrtime.bigint()
  send({ ready: true })
  try {
    for await (const b of call as AsyncIterable<Buffer>) {
      if (b[0] === 0x0a) flows++
      else if (b[0] === 0x1a) {
        const l = decodeMessage('observer.GetFlowsResponse', b)
        const le = l.lostEvents as { source?: number; numEventsLost?: string }
        countLost(le.source ?? 0, Number(le.numEventsLost ?? 0))
      }
      await pace()
    }
  } catch {}
  client.close()
} else {
  const client = new ObserverClient(target)
  await client.waitForReady()
  started = process.hrtime.bigint()
  send({ ready: true })
  try {
    for await (const r of client.getFlows(REQUEST, ac.signal)) {
      if (r.flow) flows++
      else if (r.lostEvents) countLost(r.lostEvents.source, r.lostEvents.numEventsLost)
      await pace()
    }
  } catch (e) {
    process.stderr.write(`bench client: ${String(e)}\n`)
  }
  client.close()
}
send({ flows, lostRing, lostOther, done: true })
process.disconnect?.()
