// A ship: one HTTP request from inside its endpoint's network namespace, result as one JSON line.
// Usage: node ship.mjs <METHOD> <url> [timeoutMs]
import { request } from 'node:http'

const [method = 'GET', url = 'http://127.0.0.1/', timeoutArg = '2000'] = process.argv.slice(2)
const timeoutMs = Number(timeoutArg)
const started = Date.now()
const done = (result) => {
  process.stdout.write(`${JSON.stringify({ ...result, ms: Date.now() - started })}\n`)
  process.exit(0)
}
const req = request(url, { method, headers: { connection: 'close' } }, (res) => {
  let body = ''
  res.setEncoding('utf8')
  res.on('data', (c) => {
    body += c
  })
  res.on('end', () =>
    done({ status: res.statusCode, body: body.trim(), instance: res.headers['x-instance'] }),
  )
})
// A whole-request deadline (connect included): a dropped SYN is retried by TCP for much longer.
setTimeout(() => {
  req.destroy()
  done({ error: 'timeout' })
}, timeoutMs).unref()
req.on('error', (error) => done({ error: error.code ?? error.message }))
req.end()
