/**
 * One verdict: random L7 rules and random requests go through `PolicyRepository.trace()` (what
 * `membrane policy trace` prints) and through a real proxy (real sockets, real request bytes,
 * the proxy's own parsers), and the two must agree on every request.
 *
 * The rules are real policy documents parsed by @membrane/policy; the proxy reads them from the
 * same repository through `repositoryPolicySource`, as the agent wires it. A StaticOriginResolver
 * stands in for the datapath redirect (redirect.e2e.test.ts covers that part).
 */
import { connect } from 'node:net'
import {
  KafkaApi,
  PolicyRepository,
  parsePolicyObjects,
  type PolicyRepository as Repo,
  type TraceEndpoint,
  type TraceInput,
  traceEndpointLabels,
} from '@membrane/policy'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  HttpProxy,
  KafkaProxy,
  type L7PolicySource,
  type L7ProxyRecord,
  repositoryPolicySource,
  StaticOriginResolver,
} from '../src/index'
import { eventually, rawExchange, startUpstream, type Upstream } from './_http'
import { type BrokerStandIn, encodeRequest, proto, startBrokerStandIn } from './_kafka-broker'

const CLIENT: TraceEndpoint = { namespace: 'default', labels: { app: 'client' } }
const SERVER: TraceEndpoint = { namespace: 'default', labels: { app: 'server' } }
const CLIENT_ID = 1001
const SERVER_ENDPOINT = 7

/**
 * A repository holding one CNP: `app=server` accepts `app=client` on `port` (the original
 * destination port the proxy looks rules up by) with these L7 rules.
 */
function repoWith(port: number, rules: Record<string, unknown>): Repo {
  const repo = new PolicyRepository()
  repo.upsert(
    parsePolicyObjects([
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'l7', namespace: 'default' },
        spec: {
          endpointSelector: { matchLabels: { app: 'server' } },
          ingress: [
            {
              fromEndpoints: [{ matchLabels: { app: 'client' } }],
              toPorts: [{ ports: [{ port: String(port), protocol: 'TCP' }], rules }],
            },
          ],
        },
      },
    ]),
  )
  repo.updateIdentities([{ id: CLIENT_ID, labels: traceEndpointLabels(CLIENT) }])
  return repo
}

/** What `membrane policy trace` says about a request from the client to the server. */
function traceVerdict(repo: Repo, port: number, l7: Pick<TraceInput, 'http' | 'kafka'>) {
  return repo.trace({ source: CLIENT, destination: SERVER, port, ...l7 }).verdict
}

/** A policy source that follows `current()`: each property run swaps the repository. */
function followingSource(current: () => Repo): L7PolicySource {
  const endpoint = { labels: traceEndpointLabels(SERVER) }
  let last: Repo | undefined
  let source: L7PolicySource | undefined
  let revision = 0
  const now = () => {
    const repo = current()
    if (repo !== last) {
      last = repo
      source = repositoryPolicySource(repo, (id) => (id === SERVER_ENDPOINT ? endpoint : undefined))
      revision++
    }
    return source as L7PolicySource
  }
  return {
    rulesFor: (q) => now().rulesFor(q),
    get revision() {
      now()
      return revision
    },
  }
}

const origin = (port: number) =>
  new StaticOriginResolver({
    fallback: {
      address: '127.0.0.1',
      port,
      srcIdentity: CLIENT_ID,
      dstIdentity: 2002,
      endpointId: SERVER_ENDPOINT,
      direction: 'ingress',
    },
  })

// ---------------------------------------------------------------- HTTP

/** Present in about one rule of three, so that rules are often narrow enough to allow. */
const sometimes = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: arb, weight: 1 })

const httpRule = fc
  .record({
    method: sometimes(
      fc.constantFrom('GET', 'POST', 'GET|POST', 'P.*', '(?i)get', '[A-Z]+', 'DEL(ETE)?'),
    ),
    path: sometimes(
      fc.constantFrom(
        '/public.*',
        '/v1/.*',
        '/',
        '/a/b\\?c=d',
        '/a/b',
        '/[a-z]+',
        '/[a-z/]+',
        '.*',
        '(?i)/api/.*',
        '/x/y%20z',
        '/v1/[a-z-]+\\b',
        '/v1/[a-z-]+',
      ),
    ),
    host: sometimes(
      fc.constantFrom(
        'api\\.example\\.test',
        '.*\\.test',
        'api\\.example\\.test(:[0-9]+)?',
        '(?i)API\\.example\\.TEST',
      ),
    ),
    headers: sometimes(
      fc.array(
        fc.constantFrom(
          'X-Token: secret',
          'X-Token secret',
          'x-token: secret',
          'X-Present',
          'X-Present:',
          'X-Env prod',
          'X-Env:  prod',
          'X-Env: a b',
        ),
        { minLength: 1, maxLength: 2 },
      ),
    ),
    headerMatches: sometimes(
      fc.array(
        fc.record(
          {
            name: fc.constantFrom('X-Env', 'x-token', 'X-Present'),
            value: fc.constantFrom('prod', 'secret', ''),
            mismatch: fc.constantFrom('LOG', 'ADD', 'DELETE', 'REPLACE'),
            secret: fc.constant({ name: 'tokens' }),
          },
          { requiredKeys: ['name'] },
        ),
        { minLength: 1, maxLength: 2 },
      ),
    ),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)))

const httpRequest = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
  path: fc.constantFrom(
    '/',
    '/public',
    '/public/a',
    '/public?x=1',
    '/v1/request-landing',
    '/v1/request-landing?z',
    '/v1/exhaust-port',
    '/a/b?c=d',
    '/a/b',
    '/x/y%20z',
    '/API/v1',
    '/api/x',
  ),
  host: fc.constantFrom('api.example.test', 'API.EXAMPLE.TEST', 'api.example.test:8080', 'x'),
  headers: fc.array(
    fc.tuple(
      fc.constantFrom('X-Token', 'x-token', 'X-Present', 'X-Env', 'x-env'),
      fc.constantFrom('secret', 'prod', 'dev', '', 'a b'),
    ),
    { maxLength: 3 },
  ),
})

describe.each(['fast', 'node'] as const)('HTTP: trace() and the %s proxy agree', (engine) => {
  let upstream: Upstream
  let proxy: HttpProxy
  let repo: Repo = new PolicyRepository()

  beforeAll(async () => {
    upstream = await startUpstream()
    proxy = new HttpProxy({
      origins: origin(upstream.port),
      policy: followingSource(() => repo),
      markSockets: false,
      engine,
    })
    await proxy.listen({ host: '127.0.0.1' })
  })

  afterAll(async () => {
    await proxy?.close()
    await upstream?.close()
  })

  it('on random rules and requests', async () => {
    let allowed = 0
    let runs = 0
    await fc.assert(
      fc.asyncProperty(fc.array(httpRule, { maxLength: 3 }), httpRequest, async (rules, req) => {
        repo = repoWith(upstream.port, { http: rules })
        // What a trace user passes: a repeated header as its values joined with `, `.
        const headers: Record<string, string> = {}
        for (const [k, v] of req.headers) {
          const name = k.toLowerCase()
          headers[name] = headers[name] === undefined ? v : `${headers[name]}, ${v}`
        }
        const traced = traceVerdict(repo, upstream.port, {
          http: { method: req.method, path: req.path, headers: { ...headers, host: req.host } },
        })
        const head =
          `${req.method} ${req.path} HTTP/1.1\r\nHost: ${req.host}\r\n` +
          req.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('') +
          'Connection: close\r\n\r\n'
        const reply = await rawExchange(proxy.port, head)
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1])
        expect([200, 403], reply).toContain(status)
        const rec = JSON.stringify({ rules, req })
        expect(status === 200 ? 'allowed' : 'denied', rec).toBe(traced)
        runs++
        if (status === 200) allowed++
      }),
      { numRuns: 100 },
    )
    // Both outcomes were exercised (a property that only ever denies proves little).
    expect(allowed).toBeGreaterThan(runs / 20)
    expect(runs - allowed).toBeGreaterThan(runs / 20)
  })
})

// ---------------------------------------------------------------- Kafka

const TOPICS = ['t1', 't2', 't3']

const kafkaRule = fc.record(
  {
    role: fc.constantFrom('produce', 'consume'),
    apiKey: fc.constantFrom('produce', 'fetch', 'metadata', 'offsets', 'apiversions'),
    apiVersion: fc.constantFrom('0', '1', '2', '4'),
    clientID: fc.constantFrom('a', 'b'),
    topic: fc.constantFrom('t1', 't2'),
  },
  { requiredKeys: [] },
)
// Cilium: role and apiKey are mutually exclusive.
const kafkaRules = fc
  .array(kafkaRule, { minLength: 1, maxLength: 3 })
  .map((rs) =>
    rs.map(({ role, apiKey, ...r }) => (role && apiKey ? { role, ...r } : { role, apiKey, ...r })),
  )
  .map((rs) =>
    rs.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined))),
  )

const kafkaRequest = fc.record({
  api: fc.constantFrom('produce', 'fetch', 'metadata', 'listOffsets', 'apiVersions'),
  clientId: fc.constantFrom('a', 'b', ''),
  topics: fc.subarray(TOPICS, { minLength: 1, maxLength: 2 }),
  noTopics: fc.boolean(),
})

/** kafkajs' encoding of one request, with the API key, version and topics it carries. */
function kafkaFrame(r: { api: string; topics: string[]; noTopics: boolean }): {
  apiKey: number
  apiVersion: number
  topics: string[]
  call: ReturnType<typeof proto>
} {
  switch (r.api) {
    case 'produce':
      return {
        apiKey: KafkaApi.Produce,
        apiVersion: 2,
        topics: r.topics,
        call: proto('produce', 2, {
          acks: 1,
          timeout: 100,
          topicData: r.topics.map((topic) => ({
            topic,
            partitions: [{ partition: 0, messages: [{ value: 'x' }] }],
          })),
        }),
      }
    case 'fetch':
      return {
        apiKey: KafkaApi.Fetch,
        apiVersion: 4,
        topics: r.topics,
        call: proto('fetch', 4, {
          maxWaitTime: 10,
          minBytes: 1,
          maxBytes: 100,
          topics: r.topics.map((topic) => ({
            topic,
            partitions: [{ partition: 0, fetchOffset: '0', maxBytes: 100 }],
          })),
        }),
      }
    case 'metadata': {
      const topics = r.noTopics ? [] : r.topics
      return {
        apiKey: KafkaApi.Metadata,
        apiVersion: 1,
        topics,
        call: proto('metadata', 1, { topics }),
      }
    }
    case 'listOffsets':
      return {
        apiKey: KafkaApi.ListOffsets,
        apiVersion: 1,
        topics: r.topics,
        call: proto('listOffsets', 1, {
          replicaId: -1,
          topics: r.topics.map((topic) => ({ topic, partitions: [{ partition: 0 }] })),
        }),
      }
    default:
      return {
        apiKey: KafkaApi.ApiVersions,
        apiVersion: 0,
        topics: [],
        call: proto('apiVersions', 0, {}),
      }
  }
}

describe('Kafka: trace() and the proxy agree', () => {
  let broker: BrokerStandIn
  let proxy: KafkaProxy
  let repo: Repo = new PolicyRepository()
  const records: L7ProxyRecord[] = []

  beforeAll(async () => {
    broker = await startBrokerStandIn()
    proxy = new KafkaProxy({
      origins: origin(broker.port),
      policy: followingSource(() => repo),
      onRecord: (r) => records.push(r),
      markSockets: false,
    })
    await proxy.listen({ host: '127.0.0.1' })
  })

  afterAll(async () => {
    await proxy?.close()
    await broker?.close()
  })

  it('on random rules and requests', async () => {
    let correlationId = 0
    let allowed = 0
    await fc.assert(
      fc.asyncProperty(kafkaRules, kafkaRequest, async (rules, req) => {
        repo = repoWith(broker.port, { kafka: rules })
        const f = kafkaFrame(req)
        const traced = traceVerdict(repo, broker.port, {
          kafka: {
            apiKey: f.apiKey,
            apiVersion: f.apiVersion,
            clientID: req.clientId,
            topics: f.topics,
          },
        })
        const id = ++correlationId
        const frame = await encodeRequest({
          correlationId: id,
          clientId: req.clientId,
          request: f.call.request,
        })
        const socket = connect(proxy.port, '127.0.0.1')
        socket.on('error', () => {})
        socket.write(frame.buffer)
        try {
          await eventually(() => records.some((r) => r.kafka?.correlationId === id))
        } finally {
          socket.destroy()
        }
        const rec = records.find((r) => r.kafka?.correlationId === id) as L7ProxyRecord
        const proxied = rec.verdict === 'forwarded' ? 'allowed' : 'denied'
        expect(proxied, JSON.stringify({ rules, req })).toBe(traced)
        if (proxied === 'allowed') allowed++
      }),
      { numRuns: 100 },
    )
    expect(allowed).toBeGreaterThan(5)
    expect(correlationId - allowed).toBeGreaterThan(5)
  })
})
