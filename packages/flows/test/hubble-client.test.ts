/**
 * The Observer API as a Hubble client sees it: the client is built from Hubble's own definitions,
 * not from packages/flows/proto. With MEMBRANE_HUBBLE_API_DIR pointing at a directory holding
 * Hubble's flow/flow.proto and observer/observer.proto (and relay/relay.proto, which observer
 * imports), the client is loaded from those files; otherwise from the facts in ./_hubble-api.ts.
 * Every FlowFilter field the client knows is either honoured (filters real flows correctly) or
 * refused with INVALID_ARGUMENT naming it.
 */
import { existsSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import protobuf from 'protobufjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentEventType } from '../src/agent-events'
import { startGrpcJsObserverServer } from '../src/grpc'
import { FlowObserver } from '../src/observer'
import { startObserverServer } from '../src/server'
import {
  type Endpoint,
  type Flow,
  FlowType,
  IPVersion,
  L7FlowType,
  TrafficDirection,
  Verdict,
} from '../src/types'
import { HUBBLE_FIELDS, hubbleRootFromFacts } from './_hubble-api'

const API_DIR = process.env.MEMBRANE_HUBBLE_API_DIR

function hubbleRoot(): { root: protobuf.Root; from: string } {
  if (!API_DIR) return { root: hubbleRootFromFacts(), from: 'facts' }
  const root = new protobuf.Root()
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/')
      ? target
      : isAbsolute(target)
        ? target
        : join(API_DIR, target)
  const observer = join(API_DIR, 'observer', 'observer.proto')
  if (!existsSync(observer)) throw new Error(`MEMBRANE_HUBBLE_API_DIR: no ${observer}`)
  root.loadSync(observer, { keepCase: true })
  root.resolveAll()
  return { root, from: API_DIR }
}

const { root, from } = hubbleRoot()
/** Whether the loaded definitions have this field (an older Hubble may not: its tests are skipped). */
const knows = (type: string, field: string) => {
  try {
    return !!root.lookupType(type).fields[field]
  } catch {
    return false
  }
}
const FlowFilterT = root.lookupType('flow.FlowFilter')
const enc = (t: string, v: unknown) => {
  const T = root.lookupType(t)
  const err = T.verify(v as Record<string, unknown>)
  if (err) throw new Error(`${t}: ${err}`)
  return Buffer.from(T.encode(T.fromObject(v as Record<string, unknown>)).finish())
}
const dec = (t: string) => (b: Buffer) =>
  root.lookupType(t).toObject(root.lookupType(t).decode(b), { longs: String, enums: Number })

/** A grpc-js client whose (de)serializers come from Hubble's definitions. */
function hubbleClient(target: string) {
  const unary = (req: string, res: string) => ({
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : enc(`observer.${req}`, v)),
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: dec(`observer.${res}`),
  })
  const def = {
    GetFlows: {
      ...unary('GetFlowsRequest', 'GetFlowsResponse'),
      path: '/observer.Observer/GetFlows',
      responseStream: true,
    },
    GetAgentEvents: {
      ...unary('GetAgentEventsRequest', 'GetAgentEventsResponse'),
      path: '/observer.Observer/GetAgentEvents',
      responseStream: true,
    },
    GetDebugEvents: {
      ...unary('GetDebugEventsRequest', 'GetAgentEventsResponse'),
      path: '/observer.Observer/GetDebugEvents',
      responseStream: true,
    },
    GetNamespaces: {
      ...unary('GetNamespacesRequest', 'GetNamespacesResponse'),
      path: '/observer.Observer/GetNamespaces',
    },
    ServerStatus: {
      ...unary('ServerStatusRequest', 'ServerStatusResponse'),
      path: '/observer.Observer/ServerStatus',
    },
  }
  const Ctor = grpc.makeGenericClientConstructor(def as unknown as grpc.ServiceDefinition, 'Obs')
  const c = new Ctor(target, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (...a: unknown[]) => unknown
  > &
    grpc.Client
  const stream = async (method: string, req: unknown) => {
    const call = c[method]?.call(c, req) as grpc.ClientReadableStream<Record<string, unknown>>
    const out: Record<string, unknown>[] = []
    for await (const r of call) out.push(r)
    return out
  }
  const call = (method: string, req: unknown) =>
    new Promise<Record<string, unknown>>((resolve, reject) =>
      c[method]?.call(c, req, (e: Error | null, v: Record<string, unknown>) =>
        e ? reject(e) : resolve(v),
      ),
    )
  return { stream, call, close: () => c.close() }
}

// ---------- real flows, each named by its source pod ----------

const ep = (o: Endpoint): Endpoint => o
const db = ep({
  ID: 12,
  identity: 1002,
  namespace: 'shop',
  podName: 'db-1',
  labels: ['k8s:app=db'],
  workloads: [{ name: 'db', kind: 'StatefulSet' }],
  clusterName: 'c1',
})
const now = () => ({ seconds: Math.floor(Date.now() / 1000), nanos: 0 })
const WEB_UUID = '4b0c2a5e-9d1f-4c3e-8a7b-1f2e3d4c5b6a'

function fixtureFlows(): Flow[] {
  return [
    {
      uuid: WEB_UUID,
      verdict: Verdict.FORWARDED,
      Type: FlowType.L3_L4,
      IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: IPVersion.IPv4 },
      l4: { TCP: { sourcePort: 40000, destinationPort: 80, flags: { SYN: true } } },
      source: ep({
        ID: 11,
        identity: 1001,
        namespace: 'shop',
        podName: 'web-1',
        labels: ['k8s:app=web'],
        workloads: [{ name: 'web', kind: 'Deployment' }],
        clusterName: 'c1',
      }),
      destination: db,
      sourceNames: ['web.shop'],
      destinationNames: ['db.shop.svc'],
      sourceService: { name: 'web', namespace: 'shop' },
      destinationService: { name: 'db', namespace: 'shop' },
      trafficDirection: TrafficDirection.EGRESS,
      eventType: { type: 4, subType: 5 },
      interface: { index: 3, name: 'eth0' },
      isReply: { value: false },
    },
    {
      verdict: Verdict.DROPPED,
      dropReason: 133,
      dropReasonDesc: 133,
      Type: FlowType.L3_L4,
      nodeName: 'node-b',
      nodeLabels: ['zone=west'],
      IP: {
        source: '10.0.1.5',
        destination: '10.0.0.2',
        ipVersion: IPVersion.IPv4,
        encrypted: true,
      },
      l4: { TCP: { sourcePort: 41000, destinationPort: 80, flags: { SYN: true } } },
      source: ep({
        identity: 2001,
        namespace: 'empire',
        podName: 'xwing-1',
        labels: ['k8s:org=alliance'],
        clusterName: 'c2',
      }),
      destination: db,
      trafficDirection: TrafficDirection.INGRESS,
      eventType: { type: 1, subType: 133 },
      interface: { index: 4, name: 'eth1' },
    },
    {
      verdict: Verdict.FORWARDED,
      Type: FlowType.L7,
      IP: { source: '10.0.0.7', destination: '10.0.0.2', ipVersion: IPVersion.IPv4 },
      l4: { TCP: { sourcePort: 42000, destinationPort: 8080 } },
      source: ep({ identity: 1003, namespace: 'shop', podName: 'client-1' }),
      destination: db,
      eventType: { type: 129, subType: 0 },
      l7: {
        type: L7FlowType.REQUEST,
        http: {
          code: 0,
          method: 'POST',
          url: 'http://db.shop/v1/request-landing?x=1',
          protocol: 'HTTP/1.1',
          headers: [{ key: 'x-team', value: 'blue' }],
        },
      },
    },
    {
      verdict: Verdict.FORWARDED,
      Type: FlowType.L7,
      IP: { source: '10.0.0.8', destination: '10.0.0.2', ipVersion: IPVersion.IPv4 },
      l4: { TCP: { sourcePort: 43000, destinationPort: 8080 } },
      source: ep({ identity: 1003, namespace: 'shop', podName: 'client-2' }),
      destination: db,
      eventType: { type: 129, subType: 0 },
      isReply: { value: true },
      l7: {
        type: L7FlowType.RESPONSE,
        http: { code: 503, method: 'GET', url: 'http://db.shop/health', protocol: 'HTTP/1.1' },
      },
    },
    {
      verdict: Verdict.FORWARDED,
      Type: FlowType.L7,
      IP: { source: 'fd00::9', destination: 'fd00::a', ipVersion: IPVersion.IPv6 },
      l4: { UDP: { sourcePort: 5353, destinationPort: 53 } },
      source: ep({ identity: 1004, namespace: 'kube-system', podName: 'dns-1' }),
      eventType: { type: 129, subType: 0 },
      l7: { type: L7FlowType.REQUEST, dns: { query: 'api.example.com.' } },
    },
  ].map((f) => ({ ...f, time: now() }) as Flow)
}

const ALL = ['web-1', 'xwing-1', 'client-1', 'client-2', 'dns-1']

/**
 * What each upstream FlowFilter field is sent with, and the flows it must return — or 'refused'
 * (INVALID_ARGUMENT naming the field). A field the client knows without a case here fails.
 */
const CASES: Record<string, { value: unknown; expect: string[] | 'refused' }> = {
  uuid: { value: [WEB_UUID], expect: ['web-1'] },
  source_ip: { value: ['10.0.1.0/24'], expect: ['xwing-1'] },
  source_ip_xlated: { value: ['192.0.2.1'], expect: 'refused' },
  source_pod: { value: ['shop/web'], expect: ['web-1'] },
  source_fqdn: { value: ['web.*'], expect: ['web-1'] },
  source_label: { value: ['k8s:org=alliance'], expect: ['xwing-1'] },
  source_service: { value: ['shop/web'], expect: ['web-1'] },
  source_workload: { value: [{ name: 'web', kind: 'Deployment' }], expect: ['web-1'] },
  source_cluster_name: { value: ['c2'], expect: ['xwing-1'] },
  destination_ip: { value: ['fd00::a'], expect: ['dns-1'] },
  destination_pod: { value: ['shop/db'], expect: ['web-1', 'xwing-1', 'client-1', 'client-2'] },
  destination_fqdn: { value: ['db.shop.svc'], expect: ['web-1'] },
  destination_label: {
    value: ['k8s:app=db'],
    expect: ['web-1', 'xwing-1', 'client-1', 'client-2'],
  },
  destination_service: { value: ['shop/db'], expect: ['web-1'] },
  destination_workload: {
    value: [{ kind: 'StatefulSet' }],
    expect: ['web-1', 'xwing-1', 'client-1', 'client-2'],
  },
  destination_cluster_name: { value: ['c9'], expect: [] },
  traffic_direction: { value: [TrafficDirection.INGRESS], expect: ['xwing-1'] },
  verdict: { value: [Verdict.DROPPED], expect: ['xwing-1'] },
  drop_reason_desc: { value: [133], expect: ['xwing-1'] },
  interface: { value: [{ name: 'eth1' }], expect: ['xwing-1'] },
  event_type: { value: [{ type: 129 }], expect: ['client-1', 'client-2', 'dns-1'] },
  http_status_code: { value: ['5+'], expect: ['client-2'] },
  protocol: { value: ['udp'], expect: ['dns-1'] },
  source_port: { value: ['42000'], expect: ['client-1'] },
  destination_port: { value: ['53'], expect: ['dns-1'] },
  reply: { value: [true], expect: ['client-2'] },
  dns_query: { value: ['example\\.com'], expect: ['dns-1'] },
  source_identity: { value: [2001], expect: ['xwing-1'] },
  destination_identity: { value: [1002], expect: ['web-1', 'xwing-1', 'client-1', 'client-2'] },
  http_method: { value: ['POST'], expect: ['client-1'] },
  http_path: { value: ['^/v1/'], expect: ['client-1'] },
  http_url: { value: ['request-landing\\?x=1$'], expect: ['client-1'] },
  http_header: { value: [{ key: 'x-team', value: 'blue' }], expect: ['client-1'] },
  tcp_flags: { value: [{ SYN: true }], expect: ['web-1', 'xwing-1'] },
  node_name: { value: ['node-b'], expect: ['xwing-1'] },
  node_labels: { value: ['zone=west'], expect: ['xwing-1'] },
  ip_version: { value: [IPVersion.IPv6], expect: ['dns-1'] },
  trace_id: { value: ['0af7651916cd43dd8448eb211c80319c'], expect: 'refused' },
  ip_trace_id: { value: [7], expect: 'refused' },
  encrypted: { value: [true], expect: ['xwing-1'] },
  experimental: { value: { cel_expression: ['true'] }, expect: 'refused' },
}

const podsOf = (rs: Record<string, unknown>[]) =>
  rs
    .map((r) => (r.flow as { source?: { pod_name?: string } } | undefined)?.source?.pod_name)
    .filter((p): p is string => !!p)
    .sort()

const servers = [
  ['node:http2 server', startObserverServer],
  ['grpc-js server', startGrpcJsObserverServer],
] as const

describe.each(servers)(`a Hubble client (from ${from}) against the %s`, (_name, start) => {
  let observer: FlowObserver
  let srv: Awaited<ReturnType<typeof start>>
  let client: ReturnType<typeof hubbleClient>

  beforeAll(async () => {
    observer = new FlowObserver({ nodeName: 'node-a', nodeLabels: ['zone=east'] })
    for (const f of fixtureFlows()) observer.addFlow(f)
    srv = await start(observer, { address: '127.0.0.1:0' })
    client = hubbleClient(srv.target)
  })
  afterAll(async () => {
    client.close()
    await srv.close()
  })

  it('has a case for every FlowFilter field the client knows', () => {
    const missing = FlowFilterT.fieldsArray.map((f) => f.name).filter((n) => !(n in CASES))
    expect(missing).toEqual([])
    if (!API_DIR) {
      // from the facts: every field Hubble has is exercised
      const facts = HUBBLE_FIELDS['flow.FlowFilter']?.map((f) => f.name).sort()
      expect(FlowFilterT.fieldsArray.map((f) => f.name).sort()).toEqual(facts)
    }
  })

  it('an empty whitelist returns every flow', async () => {
    expect(podsOf(await client.stream('GetFlows', {}))).toEqual([...ALL].sort())
  })

  it.each(FlowFilterT.fieldsArray.map((f) => f.name))('FlowFilter.%s', async (field) => {
    const c = CASES[field]
    if (!c) throw new Error(`no case for ${field}`)
    const req = { whitelist: [{ [field]: c.value }] }
    if (c.expect === 'refused') {
      const err = await client.stream('GetFlows', req).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      )
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT)
      const camel = protobuf.util.camelCase(field)
      expect(err?.details).toContain(`whitelist[0].${camel}`)
      return
    }
    const got = podsOf(await client.stream('GetFlows', req))
    expect(got).toEqual([...c.expect].sort())
    // the same filter as a blacklist returns the complement
    const rest = podsOf(await client.stream('GetFlows', { blacklist: [{ [field]: c.value }] }))
    expect(rest).toEqual(ALL.filter((p) => !c.expect.includes(p)).sort())
  })

  it('refuses a FlowFilter field number it does not know (a newer client), naming it', async () => {
    const filter = Buffer.concat([
      enc('flow.FlowFilter', { source_pod: ['shop/'] }),
      Buffer.from([0xe8, 0x04, 0x01]), // field 77, wire type 0 (tag 616 as a varint), value 1
    ])
    const req = Buffer.concat([Buffer.from([(6 << 3) | 2, filter.length]), filter])
    const err = await client.stream('GetFlows', req).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    )
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(err?.details).toMatch(/whitelist\[0\].*field number 77/)
  })

  it('stamps a uuid (v4) on every flow, the same for every reader', async () => {
    const a = await client.stream('GetFlows', {})
    const b = await client.stream('GetFlows', {})
    const ids = a.map((r) => (r.flow as { uuid: string }).uuid)
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(new Set(ids).size).toBe(ids.length)
    expect(b.map((r) => (r.flow as { uuid: string }).uuid)).toEqual(ids)
  })

  it.runIf(knows('flow.Flow', 'node_labels'))(
    'carries node_labels (the observer’s unless the flow has its own)',
    async () => {
      const rs = await client.stream('GetFlows', { whitelist: [{ source_pod: ['shop/web'] }] })
      expect((rs[0]?.flow as { node_labels?: string[] } | undefined)?.node_labels).toEqual([
        'zone=east',
      ])
    },
  )

  it.runIf(knows('observer.GetFlowsRequest', 'field_mask'))(
    'honours field_mask: only the named paths are sent',
    async () => {
      const rs = await client.stream('GetFlows', {
        whitelist: [{ source_pod: ['shop/web'] }],
        field_mask: { paths: ['source.pod_name', 'verdict', 'l4.TCP.destination_port'] },
      })
      expect(rs).toHaveLength(1)
      expect(rs[0]?.flow).toEqual({
        source: { pod_name: 'web-1' },
        verdict: Verdict.FORWARDED,
        l4: { TCP: { destination_port: 80 } },
      })
    },
  )

  it.runIf(knows('observer.GetFlowsRequest', 'field_mask'))(
    'refuses an invalid field_mask path, naming it',
    async () => {
      const err = await client
        .stream('GetFlows', { field_mask: { paths: ['verdict', 'source.no_such_field'] } })
        .then(
          () => undefined,
          (e: grpc.ServiceError) => e,
        )
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT)
      expect(err?.details).toContain("'source.no_such_field'")
      expect(err?.details).not.toContain("'verdict'")
    },
  )

  it.runIf(knows('observer.ServerStatusResponse', 'flows_rate'))(
    'ServerStatus reports flows_rate',
    async () => {
      const s = await client.call('ServerStatus', {})
      expect(s.num_flows).toBe('5')
      expect(s.flows_rate).toBeGreaterThan(0)
      expect(s.flows_rate).toBeLessThanOrEqual(5)
    },
  )

  it.runIf(knows('observer.Namespace', 'cluster'))(
    'GetNamespaces lists the namespaces seen in flows, with their cluster',
    async () => {
      const r = await client.call('GetNamespaces', {})
      expect(r.namespaces).toEqual([
        { namespace: 'kube-system', cluster: '' },
        { namespace: 'shop', cluster: '' },
        { namespace: 'shop', cluster: 'c1' },
        { namespace: 'empire', cluster: 'c2' },
      ])
    },
  )

  it('GetAgentEvents streams what the agent published', async () => {
    observer.publishAgentEvent({
      type: AgentEventType.ENDPOINT_CREATED,
      endpointUpdate: { id: 42, labels: ['k8s:app=web'], podName: 'web-2', namespace: 'shop' },
    })
    const rs = await client.stream('GetAgentEvents', { number: 10 })
    expect(rs.at(-1)).toMatchObject({
      node_name: 'node-a',
      agent_event: {
        type: AgentEventType.ENDPOINT_CREATED,
        endpoint_update: { id: '42', pod_name: 'web-2', namespace: 'shop' },
      },
    })
  })

  it('GetDebugEvents is UNIMPLEMENTED and says why', async () => {
    const err = await client.stream('GetDebugEvents', {}).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    )
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED)
    expect(err?.details).toMatch(/no debug events/)
  })
})
