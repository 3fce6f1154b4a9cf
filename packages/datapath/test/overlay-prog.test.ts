/**
 * The overlay's decisions through BPF_PROG_TEST_RUN (the real endpoint.o): which flows take the
 * tunnel, what their conntrack entries and events say, and the drops of its two programs. The
 * encapsulation itself and from_overlay with real tunnel metadata are tested with traffic
 * between nodes in cluster.test.ts (a test run cannot carry tunnel metadata in).
 */
import { describeKernel, tempBpffsDir } from '@membrane/test-utils'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { configCodec, Datapath, DropReason } from '../src/index'
import { buildPacket, TcpFlags } from '../src/testing'
import { buildObjects } from './_btf'
import { decodeRawEvent, type RawEvent } from './_event'
import { progHelpers } from './_prog'

const TC_ACT_OK = 0
const TC_ACT_SHOT = 2
const TC_ACT_REDIRECT = 7
const EVENT_TRACE = 4
const TRACE_TO_OVERLAY = 4
const EP = { id: 10, identity: 1000, ifindex: 1, ip: '10.0.1.10', mac: '02:00:00:00:01:0a' }
const REMOTE = { ip: '10.0.2.20', identity: 2000, node: '192.168.0.2' }

describeKernel(
  'the overlay in the endpoint programs (BPF_PROG_TEST_RUN)',
  ['root', 'bpf', 'bpffs', 'clang', 'bin:bpftool'],
  () => {
    let dp: Datapath
    let pins: { path: string; remove(): void }
    const events: RawEvent[] = []
    let sub: { close(): void }

    /** Write mb_config.tunnel_ifindex as attachOverlay does, without attaching anything. */
    function setTunnelIfindex(ifindex: number) {
      const cfg = dp.unsafeMap('mb_config')
      const key = Buffer.alloc(4)
      const value = configCodec.decode(cfg.lookup(key) as Buffer)
      cfg.update(key, configCodec.encode({ ...value, tunnelIfindex: ifindex }))
    }

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path, events: { traceNew: true } })
      sub = dp.events((r) => events.push(decodeRawEvent(r)))
    })
    afterAll(async () => {
      sub?.close()
      await dp?.close()
      pins?.remove()
    })
    beforeEach(() => {
      dp.ct.flush()
      for (const e of dp.endpoints.list()) dp.endpoints.delete(e.ifindex)
      dp.policyMap(EP.id).clear()
      dp.endpoints.upsert(EP)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: REMOTE.identity, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      dp.ipcache.upsert(`${REMOTE.ip}/32`, REMOTE.identity, { tunnelEndpoint: REMOTE.node })
      setTunnelIfindex(4242)
      events.length = 0
    })

    const { run, tcp, drops, waitEvents } = progHelpers(() => dp, events)
    const ctEntry = () =>
      dp.ct.dump().find((e) => e.tuple.saddr === EP.ip && e.tuple.daddr === REMOTE.ip)

    it('a flow to a pod behind another node is redirected to the tunnel, marked OVERLAY', async () => {
      const r = await run('from_container', tcp(EP.ip, 41000, REMOTE.ip, 80), { ifindex: 1 })
      expect(r.retval).toBe(TC_ACT_REDIRECT)
      expect(ctEntry()?.flagNames).toContain('OVERLAY')
      const [trace] = await waitEvents(
        (e) => e.type === EVENT_TRACE && e.subtype === TRACE_TO_OVERLAY,
      )
      expect(trace).toMatchObject({
        srcIdentity: EP.identity,
        dstIdentity: REMOTE.identity,
        dport: 80,
      })
      // Later packets of the flow follow the entry.
      const ack = await run('from_container', tcp(EP.ip, 41000, REMOTE.ip, 80, TcpFlags.ACK), {
        ifindex: 1,
      })
      expect(ack.retval).toBe(TC_ACT_REDIRECT)
    })

    it('the sender’s egress policy still decides first', async () => {
      const before = drops(DropReason.POLICY, 'egress')
      const r = await run('from_container', tcp(EP.ip, 41001, REMOTE.ip, 81), { ifindex: 1 })
      expect(r.retval).toBe(TC_ACT_SHOT)
      expect(drops(DropReason.POLICY, 'egress')).toBe(before + 1n)
    })

    it('without the overlay (native routing) the same flow goes to the stack, unmarked', async () => {
      setTunnelIfindex(0)
      const r = await run('from_container', tcp(EP.ip, 41002, REMOTE.ip, 80), { ifindex: 1 })
      expect(r.retval).toBe(TC_ACT_OK)
      expect(ctEntry()?.flagNames ?? []).not.toContain('OVERLAY')
    })

    it('an entry without a tunnel endpoint (a local or outside prefix) is not tunneled', async () => {
      dp.ipcache.upsert(`${REMOTE.ip}/32`, REMOTE.identity)
      const r = await run('from_container', tcp(EP.ip, 41003, REMOTE.ip, 80), { ifindex: 1 })
      expect(r.retval).toBe(TC_ACT_OK)
    })

    it('an overlay flow whose ipcache entry went away: NO_TUNNEL_ENDPOINT (160)', async () => {
      expect(
        (await run('from_container', tcp(EP.ip, 41004, REMOTE.ip, 80), { ifindex: 1 })).retval,
      ).toBe(TC_ACT_REDIRECT)
      dp.ipcache.delete(`${REMOTE.ip}/32`)
      const before = drops(DropReason.NO_TUNNEL_ENDPOINT, 'egress')
      const r = await run('from_container', tcp(EP.ip, 41004, REMOTE.ip, 80, TcpFlags.ACK), {
        ifindex: 1,
      })
      expect(r.retval).toBe(TC_ACT_SHOT)
      expect(drops(DropReason.NO_TUNNEL_ENDPOINT, 'egress')).toBe(before + 1n)
    })

    it('from_overlay refuses a packet without tunnel metadata: NO_TUNNEL_KEY (147)', async () => {
      const before = drops(DropReason.NO_TUNNEL_KEY, 'ingress')
      const r = await dp.program('from_overlay').testRun({
        data: buildPacket(tcp(REMOTE.ip, 41005, EP.ip, 80)),
      })
      expect(r.retval).toBe(TC_ACT_SHOT)
      expect(drops(DropReason.NO_TUNNEL_KEY, 'ingress')).toBe(before + 1n)
    })
  },
)
