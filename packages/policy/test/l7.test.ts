/**
 * The L7 rule modules (HTTP, Kafka, DNS): their semantics, their validation errors, and that
 * trace() decides with the same evaluators the proxy uses.
 */
import { describe, expect, it } from 'vitest'
import {
  evaluateDns,
  evaluateHttp,
  evaluateKafka,
  type HttpRule,
  httpRequestView,
  httpRuleMatches,
  KafkaApi,
  kafkaApiKey,
  kafkaApiName,
  type L7Policy,
  PolicyError,
  PolicyRepository,
  parseHeaderEntry,
  parsePolicyDocuments,
} from '../src/index'

const http = (rules: HttpRule[]): L7Policy => ({
  parser: 'http',
  wildcard: false,
  rules: [{ id: 'r', rules: { parser: 'http', http: rules } }],
})

describe('HTTP headers (Cilium: split at the first space)', () => {
  it('splits `Name`, `Name:`, `Name value` and `Name: value`', () => {
    expect(parseHeaderEntry('X-Present')).toEqual({ name: 'x-present' })
    expect(parseHeaderEntry('X-Present:')).toEqual({ name: 'x-present' })
    expect(parseHeaderEntry('X-Token s3cr3t')).toEqual({ name: 'x-token', value: 's3cr3t' })
    expect(parseHeaderEntry('X-Token: s3cr3t')).toEqual({ name: 'x-token', value: 's3cr3t' })
    expect(parseHeaderEntry('Referer: http://a/b c')).toEqual({
      name: 'referer',
      value: 'http://a/b c',
    })
    expect(parseHeaderEntry('X-Token:s3cr3t')).toBeUndefined()
    expect(parseHeaderEntry('')).toBeUndefined()
  })

  it('matches names in any case and values exactly', () => {
    const req = (headers: Record<string, string>) => httpRequestView({ headers })
    for (const entry of ['X-Token s3cr3t', 'X-Token: s3cr3t', 'x-token: s3cr3t']) {
      const rule = { headers: [entry] }
      expect(httpRuleMatches(rule, req({ 'X-TOKEN': 's3cr3t' })), entry).toBe(true)
      expect(httpRuleMatches(rule, req({ 'x-token': 'S3CR3T' })), entry).toBe(false)
      expect(httpRuleMatches(rule, req({})), entry).toBe(false)
    }
    expect(httpRuleMatches({ headers: ['X-Present'] }, req({ 'x-present': '' }))).toBe(true)
    // everything after the first space is the value
    expect(httpRuleMatches({ headers: ['X-Token:  v'] }, req({ 'x-token': 'v' }))).toBe(false)
  })

  it('rejects an entry whose name is not a token when parsing, naming the field', () => {
    const doc = (entry: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: h, namespace: default }
spec:
  endpointSelector: {}
  ingress:
    - toPorts:
        - ports: [{ port: "80", protocol: TCP }]
          rules: { http: [{ headers: [${JSON.stringify(entry)}] }] }
`
    expect(() => parsePolicyDocuments(doc('X-Token: v'))).not.toThrow()
    expect(() => parsePolicyDocuments(doc('X-Token:v'))).toThrow(PolicyError)
    try {
      parsePolicyDocuments(doc('X-Token:v'))
    } catch (e) {
      expect((e as PolicyError).code).toBe('INVALID_L7')
      expect((e as PolicyError).path).toBe('spec.ingress[0].toPorts[0].rules.http[0].headers[0]')
    }
  })

  it('headerMatches: value or presence; secrets fall back to value, else fail closed', () => {
    const req = httpRequestView({ headers: { 'X-Env': 'prod' } })
    const allowed = (m: NonNullable<HttpRule['headerMatches']>[number]) =>
      evaluateHttp(http([{ headerMatches: [m] }]), req).allowed
    expect(allowed({ name: 'x-env', value: 'prod' })).toBe(true)
    expect(allowed({ name: 'X-Env', value: 'dev' })).toBe(false)
    expect(allowed({ name: 'X-Env', value: '' })).toBe(true)
    expect(allowed({ name: 'X-Other' })).toBe(false)
    expect(allowed({ name: 'X-Env', secret: { name: 's' } })).toBe(false)
    expect(allowed({ name: 'X-Env', secret: { name: 's' }, value: 'prod' })).toBe(true)
    expect(allowed({ name: 'X-Other', value: 'x', mismatch: 'LOG' })).toBe(true)
    const v = evaluateHttp(
      http([{ headerMatches: [{ name: 'X-Env', value: 'v', mismatch: 'REPLACE' }] }]),
      req,
    )
    expect(v).toEqual({
      allowed: true,
      ruleId: 'r',
      index: 0,
      edits: [{ op: 'replace', name: 'X-Env', value: 'v' }],
    })
  })

  it('evaluateHttp: first matching rule, wildcard, fail closed', () => {
    const p = http([{ method: 'GET' }, { path: '/x' }])
    const view = (method: string, path: string) => httpRequestView({ method, path })
    expect(evaluateHttp(p, view('GET', '/y'))).toEqual({ allowed: true, ruleId: 'r', index: 0 })
    expect(evaluateHttp(p, view('PUT', '/x'))).toEqual({ allowed: true, ruleId: 'r', index: 1 })
    expect(evaluateHttp(p, view('PUT', '/y'))).toEqual({
      allowed: false,
      reason: 'no-rule-matched',
    })
    expect(evaluateHttp({ ...p, wildcard: true }, view('PUT', '/y')).allowed).toBe(true)
    expect(evaluateHttp(undefined, view('GET', '/'))).toEqual({
      allowed: false,
      reason: 'no-policy',
    })
    expect(
      evaluateHttp({ parser: 'kafka', wildcard: true, rules: [] }, view('GET', '/')).allowed,
    ).toBe(false)
  })
})

describe('Kafka API names', () => {
  it('are Cilium’s lower-case names, both ways', () => {
    expect(kafkaApiKey('offsets')).toBe(KafkaApi.ListOffsets)
    expect(kafkaApiKey('Produce')).toBe(0)
    expect(kafkaApiKey('listoffsets')).toBeUndefined()
    expect(kafkaApiName(KafkaApi.ListOffsets)).toBe('offsets')
    expect(kafkaApiName(KafkaApi.AlterConfigs)).toBe('alterconfigs')
    expect(kafkaApiName(99)).toBe('99')
    for (const [name, key] of Object.entries(KafkaApi))
      expect(kafkaApiKey(kafkaApiName(key)), name).toBe(key)
  })
})

describe('evaluateKafka (Cilium semantics)', () => {
  const policy = (kafka: object[]) => ({
    parser: 'kafka' as const,
    wildcard: false,
    rules: [{ id: 'r', rules: { parser: 'kafka' as const, kafka } }],
  })
  const req = (apiKey: number, topics: string[] = [], extra: object = {}) => ({
    apiKey,
    apiVersion: 2,
    clientID: 'c',
    topics,
    ...extra,
  })

  it('produce role on topic1', () => {
    const p = policy([{ role: 'produce', topic: 'topic1' }])
    expect(evaluateKafka(p, req(KafkaApi.Produce, ['topic1'])).allowed).toBe(true)
    expect(evaluateKafka(p, req(KafkaApi.Produce, ['topic2'])).allowed).toBe(false)
    expect(evaluateKafka(p, req(KafkaApi.Produce, ['topic1', 'topic2'])).allowed).toBe(false)
    expect(evaluateKafka(p, req(KafkaApi.Metadata, ['topic1'])).allowed).toBe(true)
    expect(evaluateKafka(p, req(KafkaApi.ApiVersions)).allowed).toBe(true)
    expect(evaluateKafka(p, req(KafkaApi.Fetch, ['topic1'])).allowed).toBe(false)
  })

  it('consume role passes group requests without topics', () => {
    const p = policy([{ role: 'consume', topic: 'topic1' }])
    expect(evaluateKafka(p, req(KafkaApi.Heartbeat)).allowed).toBe(true)
    expect(evaluateKafka(p, req(KafkaApi.JoinGroup)).allowed).toBe(true)
    expect(evaluateKafka(p, req(KafkaApi.Fetch, ['topic1'])).allowed).toBe(true)
    expect(evaluateKafka(p, req(KafkaApi.Produce, ['topic1'])).allowed).toBe(false)
    expect(evaluateKafka(p, req(KafkaApi.Fetch, ['x'], { topicsUnknown: true })).allowed).toBe(
      false,
    )
  })

  it('apiKey, apiVersion and clientID', () => {
    const p = policy([{ apiKey: 'fetch', apiVersion: '4', clientID: 'good' }])
    expect(
      evaluateKafka(p, req(KafkaApi.Fetch, ['t'], { apiVersion: 4, clientID: 'good' })).allowed,
    ).toBe(true)
    expect(
      evaluateKafka(p, req(KafkaApi.Fetch, ['t'], { apiVersion: 3, clientID: 'good' })).allowed,
    ).toBe(false)
    expect(
      evaluateKafka(p, req(KafkaApi.Fetch, ['t'], { apiVersion: 4, clientID: 'bad' })).allowed,
    ).toBe(false)
    expect(evaluateKafka(undefined, req(KafkaApi.Fetch)).allowed).toBe(false)
  })
})

describe('evaluateDns', () => {
  const policy = (dns: Array<{ matchName?: string; matchPattern?: string }>) => ({
    parser: 'dns' as const,
    wildcard: false,
    rules: [{ id: 'r', rules: { parser: 'dns' as const, dns } }],
  })

  it('matchName, `*` one label, `**.` any depth', () => {
    const p = policy([
      { matchName: 'api.example.test' },
      { matchPattern: '*.one.test' },
      { matchPattern: '**.deep.test' },
    ])
    expect(evaluateDns(p, 'api.example.test').allowed).toBe(true)
    expect(evaluateDns(p, 'API.example.test.').allowed).toBe(true)
    expect(evaluateDns(p, 'x.api.example.test').allowed).toBe(false)
    expect(evaluateDns(p, 'a.one.test').allowed).toBe(true)
    expect(evaluateDns(p, 'a.b.one.test').allowed).toBe(false)
    expect(evaluateDns(p, 'one.test').allowed).toBe(false)
    expect(evaluateDns(p, 'a.b.c.deep.test').allowed).toBe(true)
    expect(evaluateDns(p, 'deep.test').allowed).toBe(false)
    expect(evaluateDns(undefined, 'api.example.test').allowed).toBe(false)
    expect(evaluateDns({ ...p, wildcard: true }, 'anything.test').allowed).toBe(true)
  })
})

describe('trace() uses the proxy’s evaluators', () => {
  const repo = new PolicyRepository()
  repo.upsert(
    parsePolicyDocuments(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: k, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: kafka } }
  ingress:
    - fromEndpoints: [{ matchLabels: { app: client } }]
      toPorts:
        - ports: [{ port: "9092", protocol: TCP }]
          rules: { kafka: [{ role: consume, topic: t1 }, { apiKey: produce, topic: t2 }] }
`),
  )
  const trace = (kafka: Parameters<typeof evaluateKafka>[1]) =>
    repo.trace({
      source: { namespace: 'default', labels: { app: 'client' } },
      destination: { namespace: 'default', labels: { app: 'kafka' } },
      port: 9092,
      kafka,
    })

  it('a request without topics passes a selecting rule whatever its topic (Cilium)', () => {
    expect(trace({ apiKey: 'heartbeat', apiVersion: 1 }).verdict).toBe('allowed')
    expect(trace({ apiKey: 'fetch', apiVersion: 1, topic: 't1' }).verdict).toBe('allowed')
    expect(trace({ apiKey: 'fetch', apiVersion: 1, topics: ['t1', 't2'] }).verdict).toBe('denied')
    expect(trace({ apiKey: 'produce', apiVersion: 1, topics: ['t2'] }).ingress.l7?.matched).toEqual(
      {
        id: 'CiliumNetworkPolicy/default/k:spec.ingress[0]',
        index: 1,
      },
    )
  })

  it('an unknown API key is an input error naming the field, not a denial', () => {
    for (const apiKey of ['bogus', -1, 40000, 1.5]) {
      expect(() => trace({ apiKey })).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT', path: 'kafka.apiKey' }),
      )
    }
    expect(trace({ apiKey: 18, apiVersion: 1 }).verdict).toBe('allowed')
  })
})
