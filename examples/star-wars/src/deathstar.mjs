// The deathstar: a plain HTTP server run inside its endpoint's network namespace.
// Usage: node deathstar.mjs <port> <instance-name>
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 80)
const instance = process.argv[3] ?? 'deathstar'

const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.setHeader('x-instance', instance)
    if (req.method === 'POST' && req.url === '/v1/request-landing') {
      res.end('Ship landed\n')
    } else if (req.method === 'PUT' && req.url === '/v1/exhaust-port') {
      res.statusCode = 503
      res.end('Panic: deathstar exploded\n')
    } else if (req.method === 'GET' && req.url === '/v1') {
      res.end(`{"name":"Death Star","instance":"${instance}"}\n`)
    } else {
      res.statusCode = 404
      res.end('Not found\n')
    }
  })
})
server.keepAliveTimeout = 1000
server.listen(port, '0.0.0.0', () => process.stdout.write(`ready ${port}\n`))
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
