// Request/response latency probe for the bandwidth lab (runs inside a network namespace).
//   node _rr.mjs server <addr> <port>
//   node _rr.mjs client <addr> <port> <seconds> <intervalMs>
// The client sends 64-byte requests one at a time and prints one JSON line:
// {"samplesUs":[...],"timeouts":n}. The server echoes every byte back.
import { createConnection, createServer } from 'node:net'

const [mode, addr, portText, secondsText = '5', intervalText = '10'] = process.argv.slice(2)
const port = Number(portText)

if (mode === 'server') {
  const server = createServer((socket) => {
    socket.setNoDelay(true)
    socket.on('data', (d) => socket.write(d))
    socket.on('error', () => {})
  })
  server.listen(port, addr, () => process.stdout.write('listening\n'))
} else {
  const seconds = Number(secondsText)
  const interval = Number(intervalText)
  const socket = createConnection({ host: addr, port })
  socket.setNoDelay(true)
  const samplesUs = []
  const request = Buffer.alloc(64, 0x61)
  let pending = 0
  let started = 0n
  let resolveReply = () => {}
  socket.on('data', (d) => {
    pending -= d.length
    if (pending <= 0) resolveReply()
  })
  socket.on('error', (e) => {
    process.stderr.write(`rr client: ${e.message}\n`)
    process.exit(1)
  })
  await new Promise((r) => socket.once('connect', r))
  const end = Date.now() + seconds * 1000
  while (Date.now() < end) {
    pending = request.length
    started = process.hrtime.bigint()
    const reply = new Promise((r) => {
      resolveReply = r
    })
    socket.write(request)
    await reply
    samplesUs.push(Number(process.hrtime.bigint() - started) / 1000)
    await new Promise((r) => setTimeout(r, interval))
  }
  process.stdout.write(`${JSON.stringify({ samplesUs })}\n`)
  socket.destroy()
}
