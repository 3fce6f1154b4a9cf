import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describeKernel, killAndWait, run, TestNetwork } from '@membrane/test-utils'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { AgentStatus, EndpointView } from '../src/agent'
import { AgentClient } from '../src/client'
import { type AgentDaemon, startDaemon } from '../src/daemon'
import { testConfig } from './helpers'

const fixture = (name: string) => join(import.meta.dirname, 'fixtures', name)
// "Outside" addresses private to this test process (never shared with a parallel test).
const NET = `172.${16 + (process.pid % 16)}.${(process.pid >> 4) % 256}`
const DNS_IP = `${NET}.10`
const WEB_IP = `${NET}.11`
const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: client-egress
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: client
  egress:
    - toCIDR: [${DNS_IP}/32]
      toPorts:
        - ports: [{ port: "53", protocol: UDP }]
          rules:
            dns:
              - matchName: api.example.test
        - ports: [{ port: "7000", protocol: TCP }]
    - toFQDNs:
        - matchName: api.example.test
      toPorts:
        - ports: [{ port: "7000", protocol: TCP }]
`

describeKernel(
  'toCIDR and toFQDNs through the agent',
  ['root', 'netns', 'bpf', 'tc', 'bin:dnsmasq'],
  () => {
    const { config, cleanupDirs } = testConfig()
    const net = new TestNetwork()
    const children: ChildProcess[] = []
    let daemon: AgentDaemon
    let clientEp: EndpointView

    const connect = async (ip: string) =>
      (
        await run('ip', [
          'netns',
          'exec',
          clientEp.netns!,
          process.execPath,
          fixture('connect.mjs'),
          ip,
          '7000',
          '1000',
        ])
      ).stdout.trim()
    const resolve = async (name: string) =>
      JSON.parse(
        (
          await run('ip', [
            'netns',
            'exec',
            clientEp.netns!,
            process.execPath,
            fixture('resolve.mjs'),
            DNS_IP,
            name,
          ])
        ).stdout,
      ) as { ips?: string[]; error?: string }

    beforeAll(async () => {
      daemon = await startDaemon({ config })
      const client = new AgentClient(config.socketPath)
      const status = await client.get<AgentStatus>('/v1/status')
      expect(status.components.l7proxy?.state, status.components.l7proxy?.detail).toBe('ok')
      clientEp = (
        await client.post<{ endpoint: EndpointView }>('/v1/endpoints', {
          name: 'client',
          labels: { app: 'client' },
        })
      ).endpoint
      // "The outside world": a namespace that is no endpoint, with two addresses.
      const outside = await net.namespace()
      const pair = await net.veth({
        nsA: null,
        nsB: outside,
        addrB: `${DNS_IP}/32`,
        nameB: 'eth0',
      })
      await outside.exec('ip', ['addr', 'add', `${WEB_IP}/32`, 'dev', 'eth0'])
      await outside.exec('ip', ['route', 'add', 'default', 'dev', 'eth0'])
      writeFileSync(`/proc/sys/net/ipv4/conf/${pair.a}/proxy_arp`, '1')
      for (const ip of [DNS_IP, WEB_IP]) {
        await run('ip', ['route', 'replace', `${ip}/32`, 'dev', pair.a])
      }
      const echo = outside.spawn(process.execPath, [fixture('echo-server.mjs'), '7000'])
      await new Promise((r) => echo.stdout!.once('data', r))
      const dns = outside.spawn('dnsmasq', [
        '--no-daemon',
        '--no-resolv',
        '--no-hosts',
        '--bind-interfaces',
        `--listen-address=${DNS_IP}`,
        `--address=/api.example.test/${WEB_IP}`,
        `--address=/other.example.test/${WEB_IP}`,
      ])
      children.push(dns)
      await new Promise((r) => setTimeout(r, 300))
      expect(await connect(WEB_IP)).toBe('ok') // no policy yet
      await client.post('/v1/policies', { text: POLICY })
    })
    afterAll(async () => {
      await Promise.all(children.map((c) => killAndWait(c)))
      await daemon?.stop({ purge: true })
      await net.cleanup()
      cleanupDirs()
    })

    it('toCIDR: the named prefix gets an identity and is allowed, another address is not', async () => {
      const ipcache = await new AgentClient(config.socketPath).get<
        { cidr: string; identity: number }[]
      >('/v1/ipcache')
      const entry = ipcache.find((e) => e.cidr === `${DNS_IP}/32`)
      expect(entry?.identity).toBeGreaterThanOrEqual(1 << 24) // a node-local CIDR identity
      expect(await connect(DNS_IP)).toBe('ok')
      expect(await connect(WEB_IP)).toBe('timeout')
    })

    it('toFQDNs: a name the DNS proxy allowed opens its address; a refused name does not', async () => {
      expect(await resolve('other.example.test')).toEqual({ error: 'EREFUSED' })
      expect(await connect(WEB_IP)).toBe('timeout')
      expect(await resolve('api.example.test')).toEqual({ ips: [WEB_IP] })
      expect(await connect(WEB_IP)).toBe('ok')
    })

    it('toFQDNs: a learned address stays open across an agent restart (the proxy replays it)', async () => {
      expect(await connect(WEB_IP)).toBe('ok') // learned by the test before
      await daemon.stop()
      daemon = await startDaemon({ config })
      // No new lookup. Up to three tries of 1 s: the loaded test VM can be slow to echo; without
      // the replay every try times out.
      let answer = ''
      for (let i = 0; i < 3 && answer !== 'ok'; i++) answer = await connect(WEB_IP)
      expect(answer).toBe('ok')
      const ipcache = await new AgentClient(config.socketPath).get<{ cidr: string }[]>(
        '/v1/ipcache',
      )
      expect(ipcache.map((e) => e.cidr)).toContain(`${WEB_IP}/32`)
    })
  },
)
