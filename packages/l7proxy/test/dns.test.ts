/**
 * The DNS proxy against a real dnsmasq (Debian) running in a network namespace.
 *
 * No datapath here: a StaticOriginResolver stands in for the BPF redirect and tells the proxy
 * that every client was sending to dnsmasq (the e2e test with the real redirect is
 * redirect.e2e.test.ts). Clients send to the proxy port directly.
 */
import { createSocket } from 'node:dgram'
import { Resolver } from 'node:dns/promises'
import { connect } from 'node:net'
import { describeKernel, TestNetwork } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  buildDnsQuery,
  type DnsLearnEvent,
  DnsProxy,
  DnsRcode,
  DnsType,
  type L7ProxyRecord,
  parseDnsMessage,
  StaticOriginResolver,
  staticPolicySource,
} from '../src/index'
import { eventually } from './_http'

const SUBNET = `10.199.${process.pid % 250}`
const HOST = `${SUBNET}.1`
const DNS_IP = `${SUBNET}.2`

function udpQuery(port: number, buf: Buffer, timeoutMs = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    const timer = setTimeout(() => {
      s.close()
      resolve(undefined)
    }, timeoutMs)
    s.on('message', (m) => {
      clearTimeout(timer)
      s.close()
      resolve(m)
    })
    s.send(buf, port, '127.0.0.1')
  })
}

function tcpExchange(port: number, frames: Buffer[], expect: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    const out: Buffer[] = []
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`got ${out.length} of ${expect} TCP answers`))
    }, 5000)
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)))
        buf = buf.subarray(2 + buf.readUInt16BE(0))
      }
      if (out.length === expect) {
        clearTimeout(timer)
        s.end()
        resolve(out)
      }
    })
    s.on('error', reject)
    s.on('close', () => {
      clearTimeout(timer)
      if (out.length < expect) reject(new Error(`closed after ${out.length} of ${expect} answers`))
    })
    // All frames in one write: pipelined queries.
    s.write(
      Buffer.concat(
        frames.flatMap((f) => {
          const len = Buffer.alloc(2)
          len.writeUInt16BE(f.length)
          return [len, f]
        }),
      ),
    )
  })
}

describeKernel('DnsProxy with dnsmasq in a namespace', ['root', 'netns', 'bin:dnsmasq'], () => {
  const net = new TestNetwork()
  let proxy: DnsProxy
  const learned: Array<DnsLearnEvent & { at: number }> = []
  const records: L7ProxyRecord[] = []
  let hookDelayMs = 0

  beforeAll(async () => {
    const ns = await net.namespace()
    await net.veth({ nsA: null, nsB: ns, addrA: `${HOST}/24`, addrB: `${DNS_IP}/24` })
    const dnsmasq = ns.spawn('dnsmasq', [
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--bind-interfaces',
      `--listen-address=${DNS_IP}`,
      '--port=53',
      '--pid-file=',
      '--user=root',
      `--host-record=api.example.test,${SUBNET}.10,300`,
      `--host-record=multi.example.test,${SUBNET}.11`,
      `--host-record=multi.example.test,${SUBNET}.12`,
      `--host-record=x.deep.zone.test,${SUBNET}.13,5`,
      `--host-record=blocked.example.test,${SUBNET}.99`,
      '--cname=alias.example.test,api.example.test',
    ])
    let stderr = ''
    dnsmasq.stderr?.on('data', (d) => {
      stderr += d
    })
    proxy = new DnsProxy({
      origins: new StaticOriginResolver({
        fallback: {
          address: DNS_IP,
          port: 53,
          srcIdentity: 1001,
          dstIdentity: 2,
          endpointId: 5,
          direction: 'egress',
        },
      }),
      policy: staticPolicySource({
        parser: 'dns',
        wildcard: false,
        rules: [
          {
            id: 'CiliumNetworkPolicy/default/fqdn:spec.egress[0]',
            rules: {
              parser: 'dns',
              dns: [
                { matchName: 'api.example.test' },
                { matchName: 'alias.example.test' },
                { matchPattern: '*.example.test' },
                { matchPattern: '**.zone.test' },
              ],
            },
          },
        ],
      }),
      minTtlSeconds: 60,
      markSockets: false,
      onRecord: (r) => records.push(r),
      onLearn: async (e) => {
        if (hookDelayMs) await new Promise((r) => setTimeout(r, hookDelayMs))
        learned.push({ ...e, at: Date.now() })
      },
    })
    await proxy.listen({ host: '127.0.0.1' })
    // Wait for dnsmasq to answer (directly, not through the proxy).
    await eventually(async () => {
      const s = createSocket('udp4')
      const got = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 300)
        s.on('message', () => {
          clearTimeout(t)
          resolve(true)
        })
        s.send(buildDnsQuery(1, 'api.example.test'), 53, DNS_IP)
      })
      s.close()
      return got
    }, 10_000).catch((e) => {
      throw new Error(`dnsmasq did not start: ${stderr}`, { cause: e })
    })
  })

  afterAll(async () => {
    await proxy?.close()
    await net.cleanup()
  })

  it('resolves an allowed name for a real resolver (c-ares) and learns it', async () => {
    const r = new Resolver({ timeout: 2000, tries: 1 })
    r.setServers([`127.0.0.1:${proxy.port}`])
    expect(await r.resolve4('api.example.test')).toEqual([`${SUBNET}.10`])
    const ev = learned.find((e) => e.name === 'api.example.test')
    expect(ev).toMatchObject({
      ips: [`${SUBNET}.10`],
      answerTtl: 300,
      ttl: 300,
      endpointId: 5,
      srcIdentity: 1001,
    })
    expect(proxy.cache.lookup('api.example.test')).toEqual([`${SUBNET}.10`])
    expect(proxy.cache.namesOf(`${SUBNET}.10`)).toContain('api.example.test')
  })

  it('answers REFUSED for a denied name and learns nothing from it', async () => {
    const before = proxy.stats()
    const q = buildDnsQuery(0x1234, 'evil.other.test')
    const a = parseDnsMessage((await udpQuery(proxy.port, q)) as Buffer)
    expect(a).toMatchObject({ id: 0x1234, qr: true, rcode: DnsRcode.REFUSED, answers: [] })
    expect(a.questions[0]?.name).toBe('evil.other.test')
    // `*.example.test` is one label: a.b.example.test is refused too.
    const deep = parseDnsMessage(
      (await udpQuery(proxy.port, buildDnsQuery(2, 'a.b.example.test'))) as Buffer,
    )
    expect(deep.rcode).toBe(DnsRcode.REFUSED)
    expect(proxy.stats().denied - before.denied).toBe(2)
    expect(proxy.cache.lookup('evil.other.test')).toEqual([])
    const r = new Resolver({ timeout: 2000, tries: 1 })
    r.setServers([`127.0.0.1:${proxy.port}`])
    await expect(r.resolve4('evil.other.test')).rejects.toMatchObject({ code: 'EREFUSED' })
  })

  it('runs the learn hook BEFORE the answer reaches the client', async () => {
    hookDelayMs = 300
    try {
      const t0 = Date.now()
      const a = await udpQuery(proxy.port, buildDnsQuery(9, 'multi.example.test'))
      const received = Date.now()
      const ev = learned.find((e) => e.name === 'multi.example.test')
      expect(ev).toBeDefined()
      expect((ev as { at: number }).at).toBeLessThanOrEqual(received)
      expect(received - t0).toBeGreaterThanOrEqual(300)
      const m = parseDnsMessage(a as Buffer)
      expect(m.id).toBe(9)
      expect(m.answers.map((x) => x.data).sort()).toEqual([`${SUBNET}.11`, `${SUBNET}.12`])
      // dnsmasq's local TTL is 0: the minimum TTL (60 s) applies.
      expect(ev).toMatchObject({ answerTtl: 0, ttl: 60 })
      const exp = proxy.cache.entries().find((e) => e.name === 'multi.example.test')
      expect(exp?.ips[0]?.expiresAt).toBeGreaterThan(Date.now() + 55_000)
    } finally {
      hookDelayMs = 0
    }
  })

  it('learns CNAME targets, `**.` patterns, and expires entries after their TTL', async () => {
    const a = parseDnsMessage(
      (await udpQuery(proxy.port, buildDnsQuery(3, 'alias.example.test'))) as Buffer,
    )
    expect(a.answers.map((r) => r.type)).toContain(DnsType.CNAME)
    expect(proxy.cache.lookup('alias.example.test')).toEqual([`${SUBNET}.10`])
    const d = parseDnsMessage(
      (await udpQuery(proxy.port, buildDnsQuery(4, 'x.deep.zone.test'))) as Buffer,
    )
    expect(d.rcode).toBe(0)
    expect(learned.find((e) => e.name === 'x.deep.zone.test')).toMatchObject({
      answerTtl: 5,
      ttl: 60,
    })
    const gone = proxy.expireNow(Date.now() + 61_000)
    expect(gone.find((g) => g.name === 'x.deep.zone.test')?.ips).toEqual([`${SUBNET}.13`])
    expect(gone.find((g) => g.name === 'api.example.test')).toBeUndefined() // TTL 300
    expect(proxy.cache.lookup('x.deep.zone.test')).toEqual([])
  })

  it('serves DNS over TCP: pipelined allowed and denied queries', async () => {
    const [a, b] = await tcpExchange(
      proxy.port,
      [buildDnsQuery(21, 'api.example.test'), buildDnsQuery(22, 'nope.other.test')],
      2,
    )
    const byId = new Map([a, b].map((x) => parseDnsMessage(x as Buffer)).map((m) => [m.id, m]))
    expect(byId.get(21)?.answers.map((r) => r.data)).toEqual([`${SUBNET}.10`])
    expect(byId.get(22)?.rcode).toBe(DnsRcode.REFUSED)
    await eventually(() => proxy.stats().activeTcpConnections === 0)
  })

  it('drops garbage (UDP: no answer; TCP: connection closed), counts it, keeps serving', async () => {
    const before = proxy.stats().malformed
    expect(await udpQuery(proxy.port, Buffer.from([1, 2, 3]), 300)).toBeUndefined()
    const loop = buildDnsQuery(5, 'a.test')
    loop[12] = 0xc0
    loop[13] = 12
    expect(await udpQuery(proxy.port, loop, 300)).toBeUndefined()
    await expect(tcpExchange(proxy.port, [Buffer.from('garbage!garbage!')], 1)).rejects.toThrow()
    expect(proxy.stats().malformed - before).toBe(3)
    const ok = await udpQuery(proxy.port, buildDnsQuery(6, 'api.example.test'))
    expect(parseDnsMessage(ok as Buffer).rcode).toBe(0)
    await eventually(() => proxy.stats().activeTcpConnections === 0)
  })

  it('emits DNS records: query, verdict, rcode, ips, ttl', () => {
    const denied = records.find(
      (r) => r.verdict === 'denied' && r.dns?.query === 'evil.other.test.',
    )
    expect(denied).toMatchObject({
      type: 'request',
      transport: 'udp',
      dns: { rcode: 5, qtypes: ['A'] },
    })
    const resp = records.find((r) => r.type === 'response' && r.dns?.query === 'api.example.test.')
    expect(resp).toMatchObject({
      verdict: 'forwarded',
      trafficDirection: 'egress',
      destination: { ip: DNS_IP, port: 53, identity: 2 },
      dns: { rcode: 0, ips: [`${SUBNET}.10`], ttl: 300, rrtypes: ['A'] },
    })
    expect(resp?.latencyNs).toBeGreaterThan(0)
  })
})
