// Bench client (a child process): follows GetFlows and reports counts to the parent.
//   argv: target, flowsPerSecond (0 = as fast as it can), mode: 'decode' (every response decoded
//   into a Flow with protobufjs) | 'count' (responses kept as bytes; only the oneof tag and loss
//   counts are read)
import * as grpc from '@grpc/grpc-js'
import { ObserverClient, observerServiceDefinition } from '../src/grpc'
import { decodeMessage } from '../src/proto'

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
if (mode === 'count') {
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
