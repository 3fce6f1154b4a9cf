/**
 * The L7 redirect with real traffic: a client's connection is DNATed by its endpoint program to
 * a proxy listening on the router address in the host namespace; the proxy asks
 * lookupProxyOrigin where the client was going and connects there with the proxy SO_MARK; the
 * client sees replies from the original destination (reverse NAT through conntrack).
 */
import { createServer, type Server, Socket } from 'node:net'
import { setSocketMark } from '@membrane/bpf-loader-napi'
import { describeKernel, run, TestNetwork, tempBpffsDir } from '@membrane/test-utils'
import { proxyMark } from '@membrane/types'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Datapath, type ProxyOrigin } from '../src'
import { buildObjects } from './_btf'
import { client, startServer, type Workload, workload } from './_topology'

const ROUTER = '10.213.255.1'
const PROXY_PORT = 15080

/** Connect with SO_MARK set before the SYN (bind in the lookup hook creates the fd first). */
function connectMarked(host: string, port: number, mark: number | undefined): Socket {
  const socket = new Socket()
  if (mark === undefined) return socket.connect({ host, port })
  return socket.connect({
    host: 'upstream.invalid',
    port,
    autoSelectFamily: false,
    lookup: (_name, _opts, cb) => {
      const handle = (socket as unknown as { _handle: { bind(a: string, p: number): number } })
        ._handle
      handle.bind('0.0.0.0', 0)
      setSocketMark(socket, mark)
      ;(cb as (e: null, a: string, f: number) => void)(null, host, 4)
    },
  })
}

describeKernel(
  'L7 redirect through the datapath (real traffic)',
  ['root', 'bpf', 'bpffs', 'netns', 'tc', 'clang'],
  () => {
    const net = new TestNetwork()
    let pins: { path: string; remove(): void }
    let dp: Datapath
    let a: Workload
    let b: Workload
    let proxy: Server
    const origins: (ProxyOrigin | undefined)[] = []
    let markUpstream = true

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path, routerIp4: ROUTER })
      a = await workload(net, '10.213.3.10', 31, 3001, dp)
      b = await workload(net, '10.213.3.20', 32, 3002, dp)
      await run('ip', ['addr', 'add', `${ROUTER}/32`, 'dev', a.hostIf])
      await startServer(b, 'b', [8080])
      dp.policyMap(a.id).apply({
        upserts: [
          {
            key: { identity: 3002, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false, proxyPort: PROXY_PORT },
          },
        ],
      })
      dp.policyMap(b.id).apply({
        upserts: [
          {
            key: { identity: 3001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      proxy = createServer((down) => {
        const origin = dp.lookupProxyOrigin(
          down.remoteAddress as string,
          down.remotePort as number,
          'TCP',
        )
        origins.push(origin)
        if (!origin) return down.destroy()
        const up = connectMarked(
          origin.address,
          origin.port,
          markUpstream ? proxyMark(origin.srcIdentity) : undefined,
        )
        up.on('data', (d) => down.write(`proxied:${d}`))
        down.on('data', (d) => up.write(d))
        up.on('error', () => down.destroy())
        down.on('error', () => up.destroy())
        down.on('close', () => up.destroy())
      })
      await new Promise<void>((resolve) => proxy.listen(PROXY_PORT, ROUTER, resolve))
    }, 60_000)

    afterAll(async () => {
      await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)))
      await net.cleanup()
      await dp?.close()
      pins?.remove()
    })

    it('the client talks to the proxy while believing it talks to the server', async () => {
      const r = await client<{ replies: string[]; remotes: string[] }>(a, [
        'tcp',
        b.ip,
        '8080',
        '2',
        '3000',
      ])
      expect(r.replies).toEqual(['proxied:b:8080', 'proxied:b:8080'])
      expect(r.remotes).toEqual([`${b.ip}:8080`, `${b.ip}:8080`])
      expect(origins.at(-1)).toEqual({
        address: b.ip,
        port: 8080,
        srcIdentity: 3001,
        dstIdentity: 3002,
        endpointId: a.id,
        direction: 'egress',
      })
      // The upstream connection was admitted by b's ingress policy through the mark.
      expect(
        dp.ct.dump().some((e) => e.tuple.daddr === b.ip && e.flagNames.includes('FROM_PROXY')),
      ).toBe(true)
    }, 30_000)

    it('without the mark the upstream is a stranger to the destination and is dropped', async () => {
      markUpstream = false
      try {
        const r = await client<{ replies: string[] }>(a, ['tcp', b.ip, '8080', '1', '1500'])
        expect(r.replies).toEqual(['ERR:TIMEOUT'])
      } finally {
        markUpstream = true
      }
    }, 30_000)

    it("an ingress L7 rule of a local destination redirects in the sender's program", async () => {
      dp.policyMap(a.id).apply({
        upserts: [
          {
            key: { identity: 3002, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      dp.policyMap(b.id).apply({
        upserts: [
          {
            key: { identity: 3001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false, proxyPort: PROXY_PORT },
          },
        ],
      })
      dp.ct.flush()
      const r = await client<{ replies: string[]; remotes: string[] }>(a, [
        'tcp',
        b.ip,
        '8080',
        '1',
        '3000',
      ])
      expect(r.replies).toEqual(['proxied:b:8080'])
      expect(r.remotes).toEqual([`${b.ip}:8080`])
      expect(origins.at(-1)).toMatchObject({
        address: b.ip,
        port: 8080,
        srcIdentity: 3001,
        endpointId: b.id,
        direction: 'ingress',
      })
    }, 30_000)
  },
)
