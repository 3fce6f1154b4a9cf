/**
 * End to end with the real datapath redirect: workloads in network namespaces, the endpoint
 * programs of @membrane/datapath on their host-side veths, policy from @membrane/policy, and the
 * L7Proxy on the host (one port for HTTP and DNS). No stand-ins: the origin comes from the
 * datapath's mb_proxy4 map, upstream sockets carry the identity mark, DNS goes to a real
 * dnsmasq, clients are curl and c-ares (Node's resolver).
 *
 * - Star Wars: tiefighter POST /v1/request-landing passes, PUT /v1/exhaust-port gets
 *   `403 Access denied`, GET /public.* passes, /private needs `X-Token: secret`; xwing is
 *   dropped at L3/L4.
 * - Kafka: a kafkajs producer may produce to topic1; topic2 gets TOPIC_AUTHORIZATION_FAILED
 *   (the broker is the in-test stand-in of test/_kafka-broker.ts, run in its namespace: no Kafka
 *   broker can run here).
 * - toFQDNs: api.example.test resolves through dnsmasq and its IP becomes reachable before the
 *   answer reaches the client; blocked.example.test is REFUSED and its IP stays blocked.
 */
import { execFileSync } from 'node:child_process'
import { Datapath } from '@membrane/datapath'
import { l7RecordToFlow } from '@membrane/flows'
import {
  PolicyRepository,
  parsePolicyDocuments,
  type TrackedEndpointPolicy,
} from '@membrane/policy'
import { describeKernel, run, TestNetwork, tempBpffsDir } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  type DnsLearnEvent,
  datapathOriginResolver,
  FqdnPolicyUpdater,
  L7Proxy,
  type L7ProxyRecord,
  repositoryPolicySource,
} from '../src/index'
import {
  HTTP_SERVER,
  KAFKA_BROKER,
  KAFKA_PRODUCE,
  RESOLVE,
  startReady,
  TSX,
  type Workload,
  workload,
} from './_topology'

const N = process.pid % 200
const NET = `10.216.${N}`
const WORLD = `10.217.${N}`
const ROUTER = `${NET}.1`
const NS = 'k8s:io.kubernetes.pod.namespace=default'

const POLICIES = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: rule1, namespace: default }
spec:
  endpointSelector: { matchLabels: { org: empire, class: deathstar } }
  ingress:
    - fromEndpoints: [{ matchLabels: { org: empire } }]
      toPorts:
        - ports: [{ port: "80", protocol: TCP }]
          rules:
            http:
              - { method: POST, path: /v1/request-landing }
              - { method: GET, path: "/public.*" }
              - { method: GET, path: /private, headers: ["X-Token: secret"] }
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: fqdn, namespace: default }
spec:
  endpointSelector: { matchLabels: { class: tiefighter } }
  egress:
    - toEndpoints: [{ matchLabels: { k8s-app: kube-dns } }]
      toPorts:
        - ports: [{ port: "53", protocol: ANY }]
          rules:
            dns: [{ matchName: api.example.test }]
    - toFQDNs: [{ matchName: api.example.test }]
      toPorts: [{ ports: [{ port: "80", protocol: TCP }] }]
    - toEndpoints: [{ matchLabels: { class: deathstar } }]
      toPorts: [{ ports: [{ port: "80", protocol: TCP }] }]
    - toEndpoints: [{ matchLabels: { app: kafka } }]
      toPorts: [{ ports: [{ port: "9092", protocol: TCP }] }]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: kafka, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: kafka } }
  ingress:
    - fromEndpoints: [{ matchLabels: { org: empire } }]
      toPorts:
        - ports: [{ port: "9092", protocol: TCP }]
          rules:
            kafka: [{ role: produce, topic: topic1 }]
`

interface Ep extends Workload {
  id: number
  identity: number
  labels: string[]
}

describeKernel(
  'L7 proxy behind the real datapath redirect',
  ['root', 'bpf', 'bpffs', 'netns', 'tc', 'clang', 'bin:curl', 'bin:dnsmasq'],
  () => {
    const net = new TestNetwork()
    let pins: { path: string; remove(): void }
    let dp: Datapath
    let proxy: L7Proxy
    const repo = new PolicyRepository()
    const eps = new Map<number, Ep>()
    const tracked = new Map<number, TrackedEndpointPolicy>()
    const records: L7ProxyRecord[] = []
    const learnedAt: Array<DnsLearnEvent & { mapUpdatedAt: number }> = []
    let tiefighter: Ep
    let xwing: Ep
    let deathstar: Ep
    let dns: Ep
    let kafka: Ep
    let brokerLog = ''
    let cidrNext = 1

    const endpoint = async (
      ip: string,
      id: number,
      identity: number,
      labels: string[],
      enforce: { ingress: boolean; egress: boolean },
    ): Promise<Ep> => {
      const w = await workload(net, ip)
      await dp.attachEndpoint({
        id,
        ifname: w.hostIf,
        ip,
        mac: w.mac,
        identity,
        enforceIngress: enforce.ingress,
        enforceEgress: enforce.egress,
      })
      dp.ipcache.upsert(`${ip}/32`, identity)
      const ep = { ...w, id, identity, labels }
      eps.set(id, ep)
      return ep
    }

    /** What the agent does on a policy or identity change: push each endpoint's diff. */
    const sync = () => {
      for (const [id, t] of tracked) dp.policyMap(id).apply(t.refresh())
    }

    const curl = async (from: Ep, args: string[]) => {
      try {
        const { stdout } = await from.ns.exec('curl', [
          '-sS',
          '-m',
          '3',
          '-w',
          '\n%{http_code}',
          ...args,
        ])
        const lines = stdout.split('\n')
        return { code: Number(lines.pop()), body: lines.join('\n') }
      } catch (e) {
        return { code: 0, body: '', error: (e as { exitCode?: number }).exitCode }
      }
    }

    beforeAll(async () => {
      execFileSync('flock', ['/tmp/membrane-bpf.lock', 'node', 'tools/bpf-build.mjs', '--quiet'], {
        cwd: new URL('../../../', import.meta.url).pathname,
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path, routerIp4: ROUTER })
      repo.updateIdentities([])
      tiefighter = await endpoint(
        `${NET}.10`,
        1,
        1001,
        ['k8s:org=empire', 'k8s:class=tiefighter', NS],
        {
          ingress: false,
          egress: true,
        },
      )
      xwing = await endpoint(`${NET}.11`, 2, 1002, ['k8s:org=alliance', 'k8s:class=xwing', NS], {
        ingress: false,
        egress: false,
      })
      deathstar = await endpoint(
        `${NET}.20`,
        3,
        2000,
        ['k8s:org=empire', 'k8s:class=deathstar', NS],
        {
          ingress: true,
          egress: false,
        },
      )
      dns = await endpoint(`${NET}.53`, 4, 3000, ['k8s:k8s-app=kube-dns', NS], {
        ingress: false,
        egress: false,
      })
      kafka = await endpoint(`${NET}.92`, 5, 4000, ['k8s:app=kafka', NS], {
        ingress: true,
        egress: false,
      })
      const broker = await startReady(kafka, process.execPath, [
        '--conditions=@membrane/source',
        '--import',
        TSX,
        KAFKA_BROKER,
        kafka.ip,
        '9092',
      ])
      broker.stdout?.on('data', (d: Buffer) => {
        brokerLog += d
      })
      // The proxy's address is on the host (here: on tiefighter's host-side veth).
      await run('ip', ['addr', 'add', `${ROUTER}/32`, 'dev', tiefighter.hostIf])
      // Two servers outside the cluster ("world"): no endpoint programs, no ipcache entry.
      const api = await workload(net, `${WORLD}.30`)
      const blocked = await workload(net, `${WORLD}.31`)
      await startReady(api, process.execPath, [HTTP_SERVER, 'api', '80'])
      await startReady(blocked, process.execPath, [HTTP_SERVER, 'blocked', '80'])
      await startReady(deathstar, process.execPath, [HTTP_SERVER, 'deathstar', '80'])
      dns.ns.spawn('dnsmasq', [
        '--no-daemon',
        '--conf-file=/dev/null',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        '--bind-interfaces',
        `--listen-address=${dns.ip}`,
        '--pid-file=',
        '--user=root',
        `--host-record=api.example.test,${WORLD}.30,60`,
        `--host-record=blocked.example.test,${WORLD}.31,60`,
      ])

      repo.upsert(parsePolicyDocuments(POLICIES))
      repo.updateIdentities(
        [...eps.values()].map((e) => ({ id: e.identity, labels: e.labels, ips: [e.ip] })),
      )

      const fqdn = new FqdnPolicyUpdater({
        policy: repo,
        allocateCidrIdentity: () => (1 << 24) | cidrNext++,
        ipcacheUpsert: (prefix, id) => dp.ipcache.upsert(prefix, id),
        applyPolicy: () => sync(),
      })
      proxy = new L7Proxy({
        origins: datapathOriginResolver(dp),
        policy: repositoryPolicySource(repo, (id) => eps.get(id)),
        onRecord: (r) => records.push(r),
        dns: {
          minTtlSeconds: 30,
          // The agent's part, through FqdnPolicyUpdater: CIDR identities for learned IPs,
          // ipcache, FQDN selections and the endpoints' policy maps.
          onLearn: async (e) => {
            await fqdn.onLearn(e)
            learnedAt.push({ ...e, mapUpdatedAt: Date.now() })
          },
          onExpire: fqdn.onExpire,
        },
      })
      await proxy.listen({ port: 0 })
      const port = proxy.port
      for (const ep of eps.values()) {
        const t = repo.endpointPolicy({ labels: ep.labels }, { proxyPortFor: () => port })
        tracked.set(ep.id, t)
        dp.policyMap(ep.id).reconcile(t.mapState)
      }
    }, 120_000)

    afterAll(async () => {
      await proxy?.close()
      await net.cleanup()
      await dp?.close()
      pins?.remove()
    })

    it('Star Wars: tiefighter may land, the exhaust port answers 403 Access denied', async () => {
      const land = await curl(tiefighter, [
        '-X',
        'POST',
        `http://${deathstar.ip}/v1/request-landing`,
      ])
      expect(land).toMatchObject({ code: 200, body: 'Ship landed\n' })
      const exhaust = await curl(tiefighter, [
        '-X',
        'PUT',
        `http://${deathstar.ip}/v1/exhaust-port`,
      ])
      expect(exhaust).toMatchObject({ code: 403, body: 'Access denied\r\n' })
      // The datapath recorded where the client was going; the proxy used it.
      const rec = records.find((r) => r.http?.method === 'PUT' && r.verdict === 'denied')
      expect(rec).toMatchObject({
        trafficDirection: 'ingress',
        source: { ip: tiefighter.ip, identity: 1001 },
        destination: { ip: deathstar.ip, port: 80, identity: 2000 },
      })
      // Records feed @membrane/flows as they are.
      const flow = l7RecordToFlow(rec as L7ProxyRecord)
      expect(flow.l7?.http).toMatchObject({ method: 'PUT', code: 403 })
      expect(flow.verdict).toBe(2) // DROPPED
    })

    it('GET /public.* passes, /private needs X-Token: secret, keep-alive through the redirect', async () => {
      const url = `http://${deathstar.ip}`
      expect((await curl(tiefighter, [`${url}/public/plans`])).code).toBe(200)
      expect((await curl(tiefighter, [`${url}/private`])).code).toBe(403)
      expect((await curl(tiefighter, ['-H', 'X-Token: secret', `${url}/private`])).code).toBe(200)
      const before = proxy.stats().http.connections
      const two = await tiefighter.ns.exec('curl', [
        '-sS',
        '-m',
        '3',
        '-o',
        '/dev/null',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{num_connects}\n',
        `${url}/public/1`,
        `${url}/public/2`,
      ])
      expect(two.stdout.trim().split('\n')).toEqual(['200 1', '200 0'])
      expect(proxy.stats().http.connections - before).toBe(1)
    })

    it('xwing is dropped by the datapath (L3/L4), never reaching the proxy', async () => {
      const before = proxy.stats().dispatch.tcpConnections
      const r = await curl(xwing, [
        '-m',
        '2',
        '-X',
        'POST',
        `http://${deathstar.ip}/v1/request-landing`,
      ])
      expect(r.code).toBe(0)
      expect(proxy.stats().dispatch.tcpConnections).toBe(before)
    })

    it('toFQDNs: the allowed name resolves and its IP passes on the first connection', async () => {
      // Before the lookup the IP is "world": no policy entry, blocked.
      expect((await curl(tiefighter, ['-m', '2', `http://${WORLD}.30/`])).code).toBe(0)
      const { stdout } = await tiefighter.ns.exec(process.execPath, [
        RESOLVE,
        dns.ip,
        'api.example.test',
      ])
      const got = JSON.parse(stdout.trim()) as { ips?: string[] }
      const answeredAt = Date.now()
      expect(got.ips).toEqual([`${WORLD}.30`])
      const ev = learnedAt.find((e) => e.name === 'api.example.test')
      expect(ev?.mapUpdatedAt).toBeLessThanOrEqual(answeredAt)
      expect(ev).toMatchObject({ endpointId: 1, srcIdentity: 1001, answerTtl: 60 })
      const first = await curl(tiefighter, [`http://${WORLD}.30/`])
      expect(first).toMatchObject({ code: 200, body: 'api: GET /\n' })
    })

    it('toFQDNs: another name is REFUSED and its IP stays blocked', async () => {
      const { stdout } = await tiefighter.ns.exec(process.execPath, [
        RESOLVE,
        dns.ip,
        'blocked.example.test',
      ])
      expect(JSON.parse(stdout.trim())).toEqual({ error: 'EREFUSED' })
      expect((await curl(tiefighter, ['-m', '2', `http://${WORLD}.31/`])).code).toBe(0)
      const denied = records.find((r) => r.dns?.query === 'blocked.example.test.')
      expect(denied).toMatchObject({
        verdict: 'denied',
        trafficDirection: 'egress',
        source: { ip: tiefighter.ip, identity: 1001 },
        destination: { ip: dns.ip, port: 53, identity: 3000 },
      })
    })

    it('Kafka: produce to topic1 passes, topic2 gets TOPIC_AUTHORIZATION_FAILED', async () => {
      const { stdout } = await tiefighter.ns.exec(process.execPath, [
        KAFKA_PRODUCE,
        `${kafka.ip}:9092`,
        'topic1',
        'topic2',
      ])
      expect(JSON.parse(stdout.trim().split('\n').pop() as string)).toEqual({
        topic1: 'ok',
        topic2: 'TOPIC_AUTHORIZATION_FAILED',
      })
      await new Promise((r) => setTimeout(r, 200))
      const seen = brokerLog
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { apiKey: number; topics: string[] })
      expect(seen.some((r) => r.apiKey === 0 && r.topics.includes('topic1'))).toBe(true)
      expect(seen.some((r) => r.topics.includes('topic2'))).toBe(false)
      const denied = records.find((r) => r.kafka && r.verdict === 'denied')
      expect(denied).toMatchObject({
        trafficDirection: 'ingress',
        source: { ip: tiefighter.ip, identity: 1001 },
        destination: { ip: kafka.ip, port: 9092, identity: 4000 },
        kafka: { errorCode: 29 },
      })
    })

    it('leaves no proxy connections open', async () => {
      const end = Date.now() + 5000
      while (Date.now() < end && proxy.stats().http.activeConnections > 0)
        await new Promise((r) => setTimeout(r, 50))
      expect(proxy.stats().http.activeConnections).toBe(0)
      expect(proxy.stats().http.activeUpstreamConnections).toBe(0)
    })
  },
)
