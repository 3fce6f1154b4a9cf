/**
 * Child processes of the benchmarks (`node --import tsx _servers.ts <role> ...`), so the load
 * generator, the proxy and the upstream do not share one event loop:
 *   upstream            an HTTP server answering 200 with a small body; prints its port
 *   agent <socket>      the agent's end of the proxy's control socket: reads the JSON lines the
 *                       proxy sends and parses each one; prints 0 once listening
 *   http-proxy <port> <socket>  the proxy as the agent runs it (agent/src/internal/proxy-main.ts):
 *                       one L7Proxy listener, the fast HTTP engine in front of 127.0.0.1:<port>,
 *                       its records sent to the agent at <socket> in batches, a JSON line
 *                       a batch (as proxy-main.ts sends them); prints its port
 *   http-proxy-node <port> <socket>  the same with the Node (llhttp) engine
 *   dns-proxy <port>    DnsProxy in front of 127.0.0.1:<port> (UDP); prints its port
 * No datapath here: a StaticOriginResolver stands in for the BPF redirect, and upstream sockets
 * are not marked.
 */
import { createServer } from 'node:http'
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net'
import {
  batchRecords,
  DnsProxy,
  L7Proxy,
  StaticOriginResolver,
  staticPolicySource,
} from '../src/index'

const [role, arg, agentSocket] = process.argv.slice(2)
const origin = (port: number) =>
  new StaticOriginResolver({
    fallback: {
      address: '127.0.0.1',
      port,
      srcIdentity: 1001,
      dstIdentity: 2000,
      endpointId: 1,
      direction: 'ingress',
    },
  })

if (role === 'upstream') {
  const body = Buffer.from('{"ok":true,"ship":"landed"}\n')
  const server = createServer((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
    res.end(body)
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${(server.address() as AddressInfo).port}\n`)
  })
} else if (role === 'agent') {
  const server = createNetServer((socket) => {
    let buffered = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      buffered += chunk
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        JSON.parse(buffered.slice(0, nl))
        buffered = buffered.slice(nl + 1)
      }
    })
  })
  server.listen(arg, () => process.stdout.write('0\n'))
} else if (role === 'http-proxy' || role === 'http-proxy-node') {
  const link = connect(agentSocket as string)
  link.on('error', () => {})
  const proxy = new L7Proxy({
    http: { engine: role === 'http-proxy' ? 'fast' : 'node' },
    origins: origin(Number(arg)),
    policy: staticPolicySource({
      parser: 'http',
      wildcard: false,
      rules: [
        {
          id: 'bench',
          rules: {
            parser: 'http',
            http: [
              { method: 'POST', path: '/v1/request-landing' },
              { method: 'GET', path: '/public/.*', headers: ['Host'] },
            ],
          },
        },
      ],
    }),
    markSockets: false,
    onRecord: batchRecords((records) =>
      link.write(`${JSON.stringify({ t: 'records', records })}\n`),
    ),
  })
  proxy.listen({ host: '127.0.0.1' }).then((a) => process.stdout.write(`${a.port}\n`))
} else if (role === 'dns-proxy') {
  const proxy = new DnsProxy({
    origins: origin(Number(arg)),
    policy: staticPolicySource({
      parser: 'dns',
      wildcard: false,
      rules: [{ id: 'bench', rules: { parser: 'dns', dns: [{ matchPattern: '*.example.test' }] } }],
    }),
    markSockets: false,
    onRecord: () => {},
    onLearn: () => {},
  })
  proxy.listen({ host: '127.0.0.1' }).then((a) => process.stdout.write(`${a.port}\n`))
} else {
  process.stderr.write(`unknown role ${role}\n`)
  process.exit(2)
}
process.on('SIGTERM', () => process.exit(0))
