/**
 * Kernel tests (BPF_PROG_TEST_RUN on the verifier-loaded endpoint.o) of the per-packet fast
 * path: the array mirrors the programs read first (mb_ep_direct, mb_lb4_be_direct,
 * mb_lb_maglev_direct, mb_policy_any) and their hash fallbacks, their repair when the pins are
 * opened again, the node endpoint CIDR (localCidr4), a pure TCP SYN skipping conntrack, and
 * conntrack's coarse clock.
 *
 * The Datapath here is opened with `maglevDirectTables: 2` (only service id 1 has an array
 * slot) and `localCidr4: 10.0.1.0/24`. test_run runs tc programs on loopback (ifindex 1)
 * unless the context names another interface, so the main endpoint sits on ifindex 1.
 */
import { readdirSync, readFileSync } from 'node:fs'
import {
  describeKernel,
  run as exec,
  tempBpffsDir,
  tempCgroup,
  uniqueName,
} from '@membrane/test-utils'
import { ipv4 as ipv4Codec, u32 as u32Codec } from '@membrane/types'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import {
  buildPacket,
  CtFlag,
  ctEntryCodec,
  Datapath,
  DatapathError,
  type DatapathOptions,
  DropReason,
  EndpointMap,
  type EndpointRecord,
  lb4BackendCodec,
  MAGLEV_TABLE_SIZE,
  monotonicNowNs,
  type PacketSpec,
  type ServiceState,
  TcpFlags,
} from '../src'
import { policyAnySlot } from '../src/maps/policy'
import { buildObjects } from './_btf'
import { decodeRawEvent, type RawEvent } from './_event'
import { maglevPredictor, progHelpers } from './_prog'

const TC_ACT_OK = 0
const TC_ACT_SHOT = 2
const EP = { id: 10, identity: 1000, ifindex: 1, ip: '10.0.1.10', mac: '02:00:00:00:01:0a' }
const ROUTER = '10.0.0.254'
const OPTIONS: DatapathOptions = {
  routerIp4: ROUTER,
  localCidr4: '10.0.1.0/24',
  maglevDirectTables: 2,
}
const EP_SIZE = 48
const k32 = (n: number) => u32Codec.encode(n)

describeKernel(
  'per-packet fast path (BPF_PROG_TEST_RUN)',
  ['root', 'bpf', 'bpffs', 'clang', 'cgroup2', 'bin:ip', 'bin:bpftool'],
  () => {
    let dp: Datapath
    let pins: { path: string; remove(): void }
    const events: RawEvent[] = []
    let sub: { close(): void } | undefined

    const subscribe = () => {
      sub = dp.events((r) => events.push(decodeRawEvent(r)))
    }
    /** Close the Datapath and open it again from the same pins (a restart of the agent). */
    const reopen = async () => {
      sub?.close()
      sub = undefined
      await dp.close()
      dp = await Datapath.open({ pinRoot: pins.path, ...OPTIONS })
      subscribe()
    }

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path, ...OPTIONS })
      subscribe()
    })
    afterAll(async () => {
      sub?.close()
      await dp?.close()
      pins?.remove()
    })
    beforeEach(() => {
      dp.ct.flush()
      for (const s of dp.services.list()) dp.services.delete(s.address, s.port, s.protocol)
      dp.gc()
      for (const e of dp.endpoints.list()) dp.endpoints.delete(e.ifindex)
      for (const id of [EP.id, 20, 21, 30]) dp.policyMap(id).clear()
      for (const e of dp.ipcache.entries()) dp.ipcache.delete(e.cidr)
      dp.endpoints.upsert(EP)
      events.length = 0
    })

    const { run, tcp, drops, waitEvents } = progHelpers(() => dp, events)
    const allowAll = (id: number, direction: 'ingress' | 'egress' = 'egress') =>
      dp.policyMap(id).apply({
        upserts: [
          {
            key: { identity: 0, direction, protocol: 0, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
        ],
      })
    const predictor = maglevPredictor

    // ---- mb_ep_direct -------------------------------------------------------------------

    it('an endpoint on an interface whose ifindex is >= 65536 (no array slot) is found through mb_endpoints', async () => {
      expect(dp.map('mb_ep_direct').info).toMatchObject({ type: 'array', maxEntries: 65536 })
      const name = uniqueName()
      let ifindex = 0
      for (let attempt = 0; attempt < 5 && !ifindex; attempt++) {
        const candidate = 70000 + Math.floor(Math.random() * 500000)
        try {
          // (no dummy driver here: a veth pair, both ends on the host)
          await exec('ip', [
            'link',
            'add',
            'name',
            `${name}a`,
            'index',
            String(candidate),
            'type',
            'veth',
            'peer',
            'name',
            `${name}b`,
          ])
          ifindex = candidate
        } catch {
          // index taken by another test: try another
        }
      }
      expect(ifindex).toBeGreaterThanOrEqual(65536)
      try {
        const rec: EndpointRecord = {
          id: 30,
          identity: 3000,
          ifindex,
          ip: '10.0.1.30',
          mac: '02:00:00:00:01:1e',
        }
        // Without a record the interface is unknown: NO_CONFIG.
        const before = drops(DropReason.NO_CONFIG, 'egress')
        expect(
          (await run('from_container', tcp(rec.ip, 41000, '10.0.2.5', 80), { ifindex })).retval,
        ).toBe(TC_ACT_SHOT)
        expect(drops(DropReason.NO_CONFIG, 'egress')).toBe(before + 1n)

        dp.endpoints.upsert(rec)
        expect(dp.endpoints.get(ifindex)).toMatchObject({ id: 30, ifindex })
        allowAll(30, 'egress')
        allowAll(30, 'ingress')
        const out = await run('from_container', tcp(rec.ip, 41001, '10.0.2.5', 80), { ifindex })
        expect(out.retval).toBe(TC_ACT_OK)
        // The connection is tracked as this endpoint's (its record, not loopback's EP).
        expect(
          dp.ct.get({ saddr: rec.ip, daddr: '10.0.2.5', sport: 41001, dport: 80, protocol: 6 }),
        ).toMatchObject({ endpointId: 30, srcIdentity: 3000 })
        // The same packet on loopback is EP's: a spoofed source there.
        expect((await run('from_container', tcp(rec.ip, 41002, '10.0.2.5', 80))).retval).toBe(
          TC_ACT_SHOT,
        )
        expect(
          (await run('to_container', tcp('10.0.2.5', 80, rec.ip, 41003), { ifindex })).retval,
        ).toBe(TC_ACT_OK)
        dp.endpoints.delete(ifindex)
        expect(
          (await run('from_container', tcp(rec.ip, 41004, '10.0.2.5', 80), { ifindex })).retval,
        ).toBe(TC_ACT_SHOT)
      } finally {
        dp.endpoints.delete(ifindex)
        if (ifindex) await exec('ip', ['link', 'del', `${name}a`])
      }
    })

    it('mb_ep_direct: a cleared slot falls back to mb_endpoints; a slot whose ifindex matches is read first', async () => {
      allowAll(EP.id)
      const slot = () => dp.map('mb_ep_direct').lookup(k32(EP.ifindex))
      // The mirror wrote the slot with the hash's record.
      expect(slot()).toEqual(dp.map('mb_endpoints').lookup(k32(EP.ifindex)))
      expect(slot()).toEqual(EndpointMap.encode(EP))

      dp.map('mb_ep_direct').update(k32(EP.ifindex), Buffer.alloc(EP_SIZE))
      expect((await run('from_container', tcp(EP.ip, 42000, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_OK,
      )
      expect(
        dp.ct.get({ saddr: EP.ip, daddr: '10.0.2.5', sport: 42000, dport: 80, protocol: 6 }),
      ).toMatchObject({ endpointId: EP.id })

      // Proof that the slot is what the programs read first: a (stale, hand-written) slot for
      // this ifindex with another address makes EP's packets spoofed.
      dp.map('mb_ep_direct').update(k32(EP.ifindex), EndpointMap.encode({ ...EP, ip: '10.0.1.99' }))
      expect((await run('from_container', tcp(EP.ip, 42001, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(DropReason.INVALID_SIP, 'egress')).toBeGreaterThan(0n)
      // A slot naming another ifindex is empty for this one: the hash answers.
      dp.map('mb_ep_direct').update(
        k32(EP.ifindex),
        EndpointMap.encode({ ...EP, ifindex: 5, ip: '10.0.1.99' }),
      )
      expect((await run('from_container', tcp(EP.ip, 42002, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_OK,
      )
      dp.endpoints.upsert(EP)
      expect(slot()).toEqual(EndpointMap.encode(EP))
    })

    // ---- mb_lb4_be_direct -----------------------------------------------------------------

    it('mb_lb4_be_direct: a cleared slot (proto 0) falls back to mb_lb4_backends; a filled slot is read first', async () => {
      allowAll(EP.id)
      for (const algorithm of ['maglev', 'random'] as const) {
        const svc = dp.services.upsert({
          address: '10.96.0.10',
          port: 80,
          algorithm,
          backends: [{ address: '10.0.3.1', port: 8080 }],
        })
        const id = svc.backends[0]?.id as number
        const slot = () => dp.map('mb_lb4_be_direct').lookup(k32(id))
        expect(slot()).toEqual(dp.map('mb_lb4_backends').lookup(k32(id)))
        const base = algorithm === 'maglev' ? 43000 : 43100
        dp.map('mb_lb4_be_direct').update(k32(id), Buffer.alloc(lb4BackendCodec.size))
        const out = await run('from_container', tcp(EP.ip, base, '10.96.0.10', 80))
        expect([algorithm, out.retval, out.pkt.daddr, out.pkt.dport]).toEqual([
          algorithm,
          TC_ACT_OK,
          '10.0.3.1',
          8080,
        ])
        dp.map('mb_lb4_be_direct').update(
          k32(id),
          lb4BackendCodec.encode({ address: '10.0.3.77', port: 9090, proto: 6, flags: 0 }),
        )
        const viaSlot = await run('from_container', tcp(EP.ip, base + 1, '10.96.0.10', 80))
        expect([algorithm, viaSlot.pkt.daddr, viaSlot.pkt.dport]).toEqual([
          algorithm,
          '10.0.3.77',
          9090,
        ])
        dp.services.delete('10.96.0.10', 80)
        dp.ct.flush()
        expect(dp.gc().backendsDeleted).toContain(id)
        // Deleting the backend cleared its slot before the hash entry went.
        expect(dp.map('mb_lb4_backends').lookup(k32(id))).toBeUndefined()
        expect(slot()).toEqual(Buffer.alloc(lb4BackendCodec.size))
      }
    })

    // ---- mb_lb_maglev_direct ----------------------------------------------------------------

    it('maglevDirectTables: 2 — services with id >= 2 (no slot) still get the backend @membrane/maglev predicts; id 1 is read from its slot', async () => {
      allowAll(EP.id)
      expect(dp.maglevDirectTables).toBe(2)
      expect(dp.map('mb_lb_maglev_direct').info).toMatchObject({ type: 'array', maxEntries: 2 })
      const svcs = [1, 2, 3].map((i) =>
        dp.services.upsert({
          address: `10.96.1.${i}`,
          port: 80,
          backends: [1, 2, 3, 4, 5].map((b) => ({ address: `10.0.${10 + i}.${b}`, port: 8080 })),
        }),
      )
      expect(svcs.map((s) => s.id)).toEqual([1, 2, 3])
      const direct = dp.map('mb_lb_maglev_direct')
      // Id 1 mirrored; ids 2 and 3 are out of range (only the hash has them).
      expect(direct.lookup(k32(1))).toEqual(dp.map('mb_lb_maglev').lookup(k32(1)))
      for (const id of [2, 3]) expect(dp.map('mb_lb_maglev').lookup(k32(id))).toBeDefined()
      expect(() => direct.lookup(k32(2))).not.toThrow()
      expect(direct.lookup(k32(2)) ?? Buffer.alloc(0)).toHaveLength(0)

      for (const svc of svcs) {
        const predict = predictor(svc)
        const seen = new Set<string>()
        for (let i = 0; i < 24; i++) {
          const sport = 20000 + svc.id * 1000 + i * 7
          const out = await run('from_container', tcp(EP.ip, sport, svc.address, 80))
          expect([svc.id, sport, out.pkt.daddr]).toEqual([svc.id, sport, predict(EP.ip, sport, 80)])
          seen.add(out.pkt.daddr)
        }
        expect(seen.size).toBeGreaterThan(2)
      }

      // Service 1's table is read from the array: a hand-written slot sending every flow to
      // its first backend wins over the hash...
      const first = svcs[0]?.backends[0] as { id: number; address: string }
      const forced = Buffer.alloc(MAGLEV_TABLE_SIZE * 4)
      for (let i = 0; i < MAGLEV_TABLE_SIZE; i++) forced.writeUInt32LE(first.id, i * 4)
      direct.update(k32(1), forced)
      for (let i = 0; i < 12; i++) {
        const out = await run('from_container', tcp(EP.ip, 30000 + i, '10.96.1.1', 80))
        expect(out.pkt.daddr).toBe(first.address)
      }
      // ...and an empty slot (backend 0 in slot 0) falls back to the hash's table.
      direct.update(k32(1), Buffer.alloc(MAGLEV_TABLE_SIZE * 4))
      const predict1 = predictor(svcs[0] as ServiceState)
      const seen = new Set<string>()
      for (let i = 0; i < 24; i++) {
        const sport = 31000 + i * 11
        const out = await run('from_container', tcp(EP.ip, sport, '10.96.1.1', 80))
        expect(out.pkt.daddr).toBe(predict1(EP.ip, sport, 80))
        seen.add(out.pkt.daddr)
      }
      expect(seen.size).toBeGreaterThan(2)
    })

    it('reopening a pinned map with another maglevDirectTables is an INCOMPATIBLE_PIN error that changes nothing', async () => {
      dp.services.upsert({
        address: '10.96.1.9',
        port: 80,
        backends: [{ address: '10.0.19.1', port: 8080 }],
      })
      const before = dp.map('mb_lb_maglev_direct').lookup(k32(1))
      for (const maglevDirectTables of [undefined, 3]) {
        const attempt = Datapath.open({
          pinRoot: pins.path,
          ...OPTIONS,
          ...(maglevDirectTables ? { maglevDirectTables } : { maglevDirectTables: undefined }),
        })
        const err = await attempt.then(
          async (other) => {
            await other.close()
            return undefined
          },
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(DatapathError)
        expect(err).toMatchObject({ code: 'INCOMPATIBLE_PIN' })
        expect(String((err as Error).message)).toMatch(
          new RegExp(
            `mb_lb_maglev_direct \\(maxEntries: pinned 2, needed ${maglevDirectTables ?? 4096}\\)`,
          ),
        )
      }
      // The pinned map and the running datapath are untouched.
      expect(dp.map('mb_lb_maglev_direct').info.maxEntries).toBe(2)
      expect(dp.map('mb_lb_maglev_direct').lookup(k32(1))).toEqual(before)
      // Bad sizes are refused before anything is opened.
      for (const bad of [0, 65537, 1.5, Number.NaN])
        await expect(
          Datapath.open({ pinRoot: pins.path, ...OPTIONS, maglevDirectTables: bad }),
        ).rejects.toMatchObject({ code: 'INVALID_VALUE', path: 'maglevDirectTables' })
    })

    it('the socket-LB object loads against the resized pinned table (setMaxEntries before its load)', async () => {
      const cg = tempCgroup()
      try {
        await dp.attachSocketLb(cg.path)
        expect(await dp.detachSocketLb(cg.path)).toBe(true)
      } finally {
        cg.remove()
      }
    })

    // ---- repair on reopen (syncDirectMirror, syncPolicyAny) ------------------------------------

    it('reopening from pins refills cleared slots of all three array mirrors and mb_policy_any', async () => {
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      const svc = dp.services.upsert({
        address: '10.96.2.1',
        port: 80,
        backends: [1, 2, 3].map((b) => ({ address: `10.0.21.${b}`, port: 8080 })),
      })
      expect(svc.id).toBe(1)
      const beIds = svc.backends.map((b) => b.id)
      const anySlot = k32(policyAnySlot(EP.id, 1))
      const pairs = [
        ['mb_endpoints', 'mb_ep_direct', [EP.ifindex]],
        ['mb_lb4_backends', 'mb_lb4_be_direct', beIds],
        ['mb_lb_maglev', 'mb_lb_maglev_direct', [svc.id]],
      ] as const
      const want = new Map<string, Buffer | undefined>()
      for (const [hash, direct, keys] of pairs)
        for (const k of keys) {
          const v = dp.map(hash).lookup(k32(k))
          expect(v).toBeDefined()
          expect(dp.map(direct).lookup(k32(k))).toEqual(v)
          want.set(`${direct}/${k}`, v)
        }
      const anyWant = dp.map('mb_policy_any').lookup(anySlot)
      expect(anyWant).toEqual(Buffer.from([0, 0, 0, 0, 1, 0, 0, 0])) // {shorter 0, full 1}

      // Clear every slot by hand, as a crash between the two writes (or an older version) would.
      for (const [, direct, keys] of pairs)
        for (const k of keys)
          dp.map(direct).update(k32(k), Buffer.alloc(dp.map(direct).info.valueSize))
      dp.map('mb_policy_any').update(anySlot, Buffer.alloc(8))
      // The zeroed identity-0 summary hides the L4-only allow: the new connection is denied.
      expect((await run('from_container', tcp(EP.ip, 44000, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_SHOT,
      )

      await reopen()
      for (const [, direct, keys] of pairs)
        for (const k of keys)
          expect([direct, k, dp.map(direct).lookup(k32(k))]).toEqual([
            direct,
            k,
            want.get(`${direct}/${k}`),
          ])
      expect(dp.map('mb_policy_any').lookup(anySlot)).toEqual(anyWant)
      // And the programs of the new object use them: allowed again, Maglev's prediction holds.
      expect((await run('from_container', tcp(EP.ip, 44001, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_OK,
      )
      const state = dp.services.get('10.96.2.1', 80) as ServiceState
      const predict = predictor(state)
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 0, direction: 'egress', protocol: 6, port: 8080 },
            value: { deny: false },
          },
        ],
      })
      for (let i = 0; i < 10; i++) {
        const out = await run('from_container', tcp(EP.ip, 44100 + i, '10.96.2.1', 80))
        expect(out.pkt.daddr).toBe(predict(EP.ip, 44100 + i, 80))
      }
    })

    // ---- mb_policy_any ----------------------------------------------------------------------

    it('identity-0 (L4-only and wildcard) entries work through mb_policy_any, and a zeroed slot hides them until the pins are reopened', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.policyMap(EP.id).apply({
        upserts: [
          // L4-only allow: TCP 443 from anyone
          {
            key: { identity: 0, direction: 'ingress', protocol: 6, port: 443 },
            value: { deny: false },
          },
          // wildcard-port UDP from anyone
          {
            key: { identity: 0, direction: 'ingress', protocol: 17, port: 0, portPrefixLen: 0 },
            value: { deny: false },
          },
          // identity-0 deny of TCP 22 beats an identity allow
          {
            key: { identity: 0, direction: 'ingress', protocol: 6, port: 22 },
            value: { deny: true },
          },
          {
            key: { identity: 2000, direction: 'ingress', protocol: 6, port: 22 },
            value: { deny: false },
          },
        ],
      })
      const slot = k32(policyAnySlot(EP.id, 0))
      expect(dp.map('mb_policy_any').lookup(slot)).toEqual(Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]))
      const udp = (sport: number): PacketSpec => ({
        saddr: '10.0.9.9',
        daddr: EP.ip,
        sport,
        dport: 5353,
        protocol: 'UDP',
      })
      const check = async (base: number) => ({
        l4only: (await run('to_container', tcp('10.0.9.9', base, EP.ip, 443))).retval,
        otherPort: (await run('to_container', tcp('10.0.9.9', base + 1, EP.ip, 444))).retval,
        wildcard: (await run('to_container', udp(base + 2))).retval,
        denied: (await run('to_container', tcp('10.0.2.5', base + 3, EP.ip, 22))).retval,
      })
      expect(await check(45000)).toEqual({
        l4only: TC_ACT_OK,
        otherPort: TC_ACT_SHOT,
        wildcard: TC_ACT_OK,
        denied: TC_ACT_SHOT,
      })
      const [verdict] = await waitEvents((e) => e.type === 5 && e.sport === 45000)
      expect(verdict).toMatchObject({ action: 1, matchType: 3 }) // allowed, L4_ONLY

      // The slot is the gate for every identity-0 entry: zeroed, they are all invisible
      // (allows become drops, and the identity-0 deny no longer beats the identity allow).
      dp.map('mb_policy_any').update(slot, Buffer.alloc(8))
      dp.ct.flush()
      expect(await check(45100)).toEqual({
        l4only: TC_ACT_SHOT,
        otherPort: TC_ACT_SHOT,
        wildcard: TC_ACT_SHOT,
        denied: TC_ACT_OK,
      })
      await reopen()
      dp.ct.flush()
      expect(dp.map('mb_policy_any').lookup(slot)).toEqual(Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]))
      expect(await check(45200)).toEqual({
        l4only: TC_ACT_OK,
        otherPort: TC_ACT_SHOT,
        wildcard: TC_ACT_OK,
        denied: TC_ACT_SHOT,
      })
      // Removing the entries empties the slot (and the allow goes with them).
      dp.policyMap(EP.id).clear()
      expect(dp.map('mb_policy_any').lookup(slot)).toEqual(Buffer.alloc(8))
      dp.ct.flush()
      expect((await run('to_container', tcp('10.0.9.9', 45300, EP.ip, 443))).retval).toBe(
        TC_ACT_SHOT,
      )
    })

    // ---- localCidr4 -------------------------------------------------------------------------

    it('localCidr4: an invalid CIDR is INVALID_VALUE naming localCidr4, and nothing is pinned', async () => {
      const empty = tempBpffsDir()
      try {
        for (const bad of [
          '10.0.1.0',
          '10.0.1.0/33',
          '10.0.1.300/24',
          '10.0.1.0/24 ',
          'fd00::/64',
          '',
          42,
        ]) {
          const err = await Datapath.open({
            pinRoot: empty.path,
            localCidr4: bad as string,
          }).then(
            async (other) => {
              await other.close()
              return undefined
            },
            (e: unknown) => e,
          )
          expect([bad, err]).toEqual([bad, expect.any(DatapathError)])
          expect(err).toMatchObject({ code: 'INVALID_VALUE', path: 'localCidr4' })
          expect((err as Error).message).toContain('CIDR')
        }
        expect(readdirSync(empty.path)).toEqual([])
      } finally {
        empty.remove()
      }
    })

    it('localCidr4: an endpoint outside the CIDR is refused (endpoint.ip) and nothing is written', () => {
      const outside = {
        id: 21,
        identity: 2100,
        ifindex: 998,
        ip: '10.0.2.21',
        mac: '02:00:00:00:02:15',
      }
      let err: unknown
      try {
        dp.endpoints.upsert(outside)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(DatapathError)
      expect(err).toMatchObject({ code: 'INVALID_VALUE', path: 'endpoint.ip' })
      expect((err as Error).message).toContain('10.0.1.0/24')
      expect((err as Error).message).toContain('10.0.2.21')
      expect(dp.endpoints.get(998)).toBeUndefined()
      expect(dp.endpoints.byIp('10.0.2.21')).toBeUndefined()
      expect(dp.map('mb_ep_direct').lookup(k32(998))).toEqual(Buffer.alloc(EP_SIZE))
      // The edges of the CIDR are inside.
      for (const ip of ['10.0.1.0', '10.0.1.255']) {
        dp.endpoints.upsert({ ...outside, ip })
        expect(dp.endpoints.get(998)?.ip).toBe(ip)
      }
      dp.endpoints.delete(998)
    })

    it('localCidr4: local delivery inside the CIDR still checks the destination ingress policy', async () => {
      dp.endpoints.upsert({
        id: 20,
        identity: 5000,
        ifindex: 999,
        ip: '10.0.1.20',
        mac: '02:00:00:00:01:14',
      })
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 5000, direction: 'egress', protocol: 6, port: 80 },
            value: { deny: false },
          },
        ],
      })
      // No ingress entry at the destination: denied (133), reported for endpoint 20.
      expect((await run('from_container', tcp(EP.ip, 46000, '10.0.1.20', 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      const [drop] = await waitEvents((e) => e.type === 1 && e.sport === 46000)
      expect(drop).toMatchObject({
        subtype: DropReason.POLICY,
        direction: 1,
        endpointId: 20,
        srcIdentity: EP.identity,
        dstIdentity: 5000,
      })
      dp.policyMap(20).apply({
        upserts: [
          {
            key: { identity: EP.identity, direction: 'ingress', protocol: 6, port: 80 },
            value: { deny: false },
          },
          {
            key: { identity: EP.identity, direction: 'ingress', protocol: 6, port: 81 },
            value: { deny: true },
          },
        ],
      })
      expect((await run('from_container', tcp(EP.ip, 46001, '10.0.1.20', 80))).retval).toBe(
        TC_ACT_OK,
      )
      dp.policyMap(EP.id).apply({
        upserts: [
          {
            key: { identity: 5000, direction: 'egress', protocol: 6, port: 81 },
            value: { deny: false },
          },
        ],
      })
      expect((await run('from_container', tcp(EP.ip, 46002, '10.0.1.20', 81))).retval).toBe(
        TC_ACT_SHOT,
      )
      const [deny] = await waitEvents((e) => e.type === 1 && e.sport === 46002)
      expect(deny).toMatchObject({
        subtype: DropReason.POLICY_DENY,
        direction: 1,
        endpointId: 20,
        dstIdentity: 5000,
      })
    })

    it('localCidr4: outside the CIDR the local-endpoint lookup is skipped (a hand-written mb_lxc4 entry is ignored, the ipcache identity counts); inside it is used', async () => {
      const lxc = (ip: string, rec: EndpointRecord) =>
        dp.map('mb_lxc4').update(ipv4Codec.encode(ip), EndpointMap.encode(rec))
      const stray = (ip: string, id: number): EndpointRecord => ({
        id,
        identity: 5000,
        ifindex: 900 + id,
        ip,
        mac: '02:00:00:00:09:09',
      })
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      dp.ipcache.upsert('10.0.1.31/32', 2000)
      // Both addresses look like local endpoints of identity 5000 in mb_lxc4 (written by hand,
      // bypassing EndpointMap's CIDR check); the ipcache says 2000.
      lxc('10.0.2.31', stray('10.0.2.31', 21))
      lxc('10.0.1.31', stray('10.0.1.31', 22))
      try {
        dp.policyMap(EP.id).apply({
          upserts: [
            {
              key: { identity: 2000, direction: 'egress', protocol: 6, port: 80 },
              value: { deny: false },
            },
            {
              key: { identity: 2000, direction: 'ingress', protocol: 6, port: 8080 },
              value: { deny: false },
            },
          ],
        })
        // from-container: outside the CIDR the destination identity is the ipcache's.
        expect((await run('from_container', tcp(EP.ip, 47000, '10.0.2.31', 80))).retval).toBe(
          TC_ACT_OK,
        )
        const [allowed] = await waitEvents((e) => e.type === 5 && e.sport === 47000)
        expect(allowed).toMatchObject({ action: 1, dstIdentity: 2000 })
        // Inside the CIDR the mb_lxc4 entry is the destination: identity 5000, not allowed.
        expect((await run('from_container', tcp(EP.ip, 47001, '10.0.1.31', 80))).retval).toBe(
          TC_ACT_SHOT,
        )
        const [denied] = await waitEvents((e) => e.type === 1 && e.sport === 47001)
        expect(denied).toMatchObject({ subtype: DropReason.POLICY, dstIdentity: 5000 })
        // to-container: the source's identity the same way.
        expect((await run('to_container', tcp('10.0.2.31', 47002, EP.ip, 8080))).retval).toBe(
          TC_ACT_OK,
        )
        expect((await run('to_container', tcp('10.0.1.31', 47003, EP.ip, 8080))).retval).toBe(
          TC_ACT_SHOT,
        )
        const [inDenied] = await waitEvents((e) => e.type === 1 && e.sport === 47003)
        expect(inDenied).toMatchObject({ srcIdentity: 5000, dstIdentity: EP.identity })
      } finally {
        for (const ip of ['10.0.2.31', '10.0.1.31']) dp.map('mb_lxc4').delete(ipv4Codec.encode(ip))
        dp.ipcache.delete('10.0.2.0/24')
        dp.ipcache.delete('10.0.1.31/32')
      }
    })

    it('endpoints already pinned outside a new localCidr4 are refused at open (their ingress check would be skipped for local senders); nothing is changed', async () => {
      const name = uniqueName()
      await exec('ip', [
        'link',
        'add',
        'name',
        `${name}a`,
        'type',
        'veth',
        'peer',
        'name',
        `${name}b`,
      ])
      const own = tempBpffsDir()
      let first: Datapath | undefined
      let second: Datapath | undefined
      try {
        const ifindex = Number(readFileSync(`/sys/class/net/${name}a/ifindex`, 'utf8').trim())
        const B = { id: 40, identity: 4000, ifindex, ip: '10.0.2.40', mac: '02:00:00:00:02:28' }
        first = await Datapath.open({ pinRoot: own.path })
        first.endpoints.upsert(EP)
        first.endpoints.upsert(B) // no ingress entries: B denies everything
        first.policyMap(EP.id).apply({
          upserts: [
            {
              key: { identity: 0, direction: 'egress', protocol: 0, port: 0, portPrefixLen: 0 },
              value: { deny: false },
            },
          ],
        })
        const syn = buildPacket(tcp(EP.ip, 50000, B.ip, 80))
        // Without localCidr4: refused at the sender (B's ingress policy, drop 133).
        expect((await first.program('from_container').testRun({ data: syn })).retval).toBe(
          TC_ACT_SHOT,
        )
        await first.close()
        first = undefined
        await expect(
          Datapath.open({ pinRoot: own.path, localCidr4: '10.0.1.0/24' }),
        ).rejects.toMatchObject({
          code: 'INVALID_VALUE',
          path: 'localCidr4',
          message: expect.stringMatching(/40 \(10\.0\.2\.40\).*outside localCidr4/),
        })
        // Nothing was changed: opened without the option, B's ingress policy still holds.
        second = await Datapath.open({ pinRoot: own.path })
        expect((await second.program('from_container').testRun({ data: syn })).retval).toBe(
          TC_ACT_SHOT,
        )
      } finally {
        await first?.close()
        await second?.close()
        own.remove()
        await exec('ip', ['link', 'del', `${name}a`])
      }
    })

    // ---- a pure SYN skips conntrack -----------------------------------------------------------

    it('a retransmitted SYN meets the policy of now (dropped once its entry is gone), while the established connection keeps passing', async () => {
      dp.ipcache.upsert('10.0.2.0/24', 2000)
      const entry = {
        key: { identity: 2000, direction: 'egress' as const, protocol: 6, port: 80 },
        value: { deny: false },
      }
      dp.policyMap(EP.id).apply({ upserts: [entry] })
      const flow = { saddr: EP.ip, daddr: '10.0.2.5', sport: 48000, dport: 80, protocol: 6 }
      expect((await run('from_container', tcp(EP.ip, 48000, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_OK,
      )
      // A retransmission while still allowed: passes, and the entry is written afresh.
      expect((await run('from_container', tcp(EP.ip, 48000, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_OK,
      )
      expect(dp.ct.get(flow)?.packets).toBe(1n)
      expect(
        (await run('to_container', tcp('10.0.2.5', 80, EP.ip, 48000, TcpFlags.SYN | TcpFlags.ACK)))
          .retval,
      ).toBe(TC_ACT_OK)
      dp.policyMap(EP.id).apply({ deletes: [entry.key] })
      const before = drops(DropReason.POLICY, 'egress')
      expect((await run('from_container', tcp(EP.ip, 48000, '10.0.2.5', 80))).retval).toBe(
        TC_ACT_SHOT,
      )
      expect(drops(DropReason.POLICY, 'egress')).toBe(before + 1n)
      // The entry is still there, and the connection's other packets are established traffic.
      expect(dp.ct.get(flow)?.flagNames).toContain('SEEN_REPLY')
      for (const flags of [TcpFlags.ACK, TcpFlags.ACK | TcpFlags.PSH]) {
        expect((await run('from_container', tcp(EP.ip, 48000, '10.0.2.5', 80, flags))).retval).toBe(
          TC_ACT_OK,
        )
      }
      expect(
        (await run('to_container', tcp('10.0.2.5', 80, EP.ip, 48000, TcpFlags.ACK))).retval,
      ).toBe(TC_ACT_OK)
      // A SYN-ACK from the workload (it is the server) is not a pure SYN: conntrack applies.
      expect(
        (
          await run(
            'from_container',
            tcp(EP.ip, 48000, '10.0.2.5', 80, TcpFlags.SYN | TcpFlags.ACK),
          )
        ).retval,
      ).toBe(TC_ACT_OK)
    })

    it('a SYN on a closing entry (FIN both ways) writes a fresh entry: flags, counters and creation time reset', async () => {
      allowAll(EP.id)
      const flow = { saddr: EP.ip, daddr: '10.0.2.5', sport: 48100, dport: 80, protocol: 6 }
      const out = (flags: number) => run('from_container', tcp(EP.ip, 48100, '10.0.2.5', 80, flags))
      const back = (flags: number) => run('to_container', tcp('10.0.2.5', 80, EP.ip, 48100, flags))
      expect((await out(TcpFlags.SYN)).retval).toBe(TC_ACT_OK)
      expect((await back(TcpFlags.SYN | TcpFlags.ACK)).retval).toBe(TC_ACT_OK)
      expect((await out(TcpFlags.ACK)).retval).toBe(TC_ACT_OK)
      expect((await out(TcpFlags.FIN | TcpFlags.ACK)).retval).toBe(TC_ACT_OK)
      expect((await back(TcpFlags.FIN | TcpFlags.ACK)).retval).toBe(TC_ACT_OK)
      const closing = dp.ct.get(flow)
      expect(closing?.flagNames).toEqual(
        expect.arrayContaining(['TX_CLOSING', 'RX_CLOSING', 'SEEN_REPLY']),
      )
      expect(closing?.packets).toBe(5n)
      await new Promise((r) => setTimeout(r, 30)) // more than a tick of the coarse clock
      expect((await out(TcpFlags.SYN)).retval).toBe(TC_ACT_OK)
      const fresh = dp.ct.get(flow)
      expect(fresh?.flagNames).not.toContain('TX_CLOSING')
      expect(fresh?.flagNames).not.toContain('RX_CLOSING')
      expect(fresh?.flagNames).not.toContain('SEEN_REPLY')
      expect(fresh).toMatchObject({ packets: 1n, txFlagsSeen: TcpFlags.SYN, rxFlagsSeen: 0 })
      expect((fresh?.createdNs ?? 0n) > (closing?.createdNs ?? 0n)).toBe(true)
      // A new SYN's entry lives as an unanswered SYN (60 s), not as a closing one (10 s).
      expect((fresh?.expiresNs ?? 0n) - (fresh?.createdNs ?? 0n)).toBe(60_000_000_000n)
    })

    it('Maglev: a first SYN selects afresh (the service entry is not looked up), later packets keep the recorded backend', async () => {
      allowAll(EP.id)
      const backends = [1, 2, 3, 4].map((i) => ({ address: `10.0.22.${i}`, port: 8080 }))
      const svc = dp.services.upsert({ address: '10.96.3.1', port: 80, backends })
      const predict = predictor(svc)
      const sport = 49000
      const first = await run('from_container', tcp(EP.ip, sport, '10.96.3.1', 80))
      expect(first.pkt.daddr).toBe(predict(EP.ip, sport, 80))
      const svcTuple = {
        saddr: EP.ip,
        daddr: '10.96.3.1',
        sport,
        dport: 80,
        protocol: 6,
        service: true,
      }
      const recorded = dp.ct.get(svcTuple)?.backendId
      expect(svc.backends.find((b) => b.id === recorded)?.address).toBe(first.pkt.daddr)
      // Point the service entry at another backend (as if the table had changed since).
      const other = svc.backends.find((b) => b.address !== first.pkt.daddr) as {
        id: number
        address: string
      }
      const ctMap = dp.map('mb_ct4')
      let patched = 0
      for (const kb of ctMap.keys()) {
        const vb = ctMap.lookup(kb)
        if (!vb) continue
        const v = ctEntryCodec.decode(vb)
        if (v.backendId !== recorded || !(v.flags & CtFlag.SERVICE)) continue
        ctMap.update(kb, ctEntryCodec.encode({ ...v, backendId: other.id }))
        patched++
      }
      expect(patched).toBe(1)
      // A non-SYN packet of the flow follows the service entry...
      const ack = await run('from_container', tcp(EP.ip, sport, '10.96.3.1', 80, TcpFlags.ACK))
      expect(ack.pkt.daddr).toBe(other.address)
      // ...a (re)transmitted first SYN does not: it selects by Maglev and rewrites the entry.
      const syn = await run('from_container', tcp(EP.ip, sport, '10.96.3.1', 80))
      expect(syn.pkt.daddr).toBe(first.pkt.daddr)
      expect(dp.ct.get(svcTuple)?.backendId).toBe(recorded)
    })

    it('random selection: repeated SYNs of one flow keep the backend the first one chose (service entry honoured)', async () => {
      allowAll(EP.id)
      const backends = [1, 2, 3, 4, 5].map((i) => ({ address: `10.0.23.${i}`, port: 8080 }))
      dp.services.upsert({ address: '10.96.4.1', port: 80, algorithm: 'random', backends })
      const firsts = new Set<string>()
      for (let flow = 0; flow < 4; flow++) {
        const sport = 49100 + flow
        const first = (await run('from_container', tcp(EP.ip, sport, '10.96.4.1', 80))).pkt.daddr
        firsts.add(first)
        for (let i = 0; i < 15; i++) {
          const again = await run('from_container', tcp(EP.ip, sport, '10.96.4.1', 80))
          expect([sport, i, again.pkt.daddr]).toEqual([sport, i, first])
        }
      }
      // New flows still spread (the selection itself is random).
      for (let i = 0; i < 40 && firsts.size < 2; i++)
        firsts.add((await run('from_container', tcp(EP.ip, 49200 + i, '10.96.4.1', 80))).pkt.daddr)
      expect(firsts.size).toBeGreaterThan(1)
    })

    // ---- conntrack clock ----------------------------------------------------------------------

    it('conntrack stamps entries with the coarse monotonic clock: created within a tick of process.hrtime, expires = created + timeout, and GC keeps live entries', async () => {
      allowAll(EP.id)
      const TICK = 10_000_000n // one jiffy at HZ=100, the coarsest the kernel runs
      const t0 = monotonicNowNs()
      await run('from_container', {
        saddr: EP.ip,
        sport: 7100,
        daddr: '10.0.2.5',
        dport: 53,
        protocol: 'UDP',
      })
      await run('from_container', tcp(EP.ip, 7101, '10.0.2.5', 80))
      const t1 = monotonicNowNs()
      const udp = dp.ct.get({
        saddr: EP.ip,
        daddr: '10.0.2.5',
        sport: 7100,
        dport: 53,
        protocol: 17,
      })
      const syn = dp.ct.get({
        saddr: EP.ip,
        daddr: '10.0.2.5',
        sport: 7101,
        dport: 80,
        protocol: 6,
      })
      for (const [e, timeout] of [
        [udp, 60_000_000_000n],
        [syn, 60_000_000_000n],
      ] as const) {
        expect(e).toBeDefined()
        const created = e?.createdNs ?? 0n
        const expires = e?.expiresNs ?? 0n
        expect(created >= t0 - TICK && created <= t1).toBe(true)
        expect(expires - created).toBe(timeout)
        expect(expires >= t0 + timeout - TICK && expires <= t1 + timeout).toBe(true)
      }
      // The coarse clock shows: it reads the time of the last tick, so an entry is usually
      // stamped *before* the precise time read just ahead of its run (a precise clock never
      // is). One such entry among 20 is proof enough, and no entry is ever stamped after.
      let early = 0
      for (let i = 0; i < 20; i++) {
        const before = monotonicNowNs()
        await run('from_container', {
          saddr: EP.ip,
          sport: 7200 + i,
          daddr: '10.0.2.5',
          dport: 53,
          protocol: 'UDP',
        })
        const after = monotonicNowNs()
        const e = dp.ct.get({
          saddr: EP.ip,
          daddr: '10.0.2.5',
          sport: 7200 + i,
          dport: 53,
          protocol: 17,
        })
        const created = e?.createdNs ?? 0n
        expect(created <= after && created >= before - TICK).toBe(true)
        if (created < before) early++
      }
      expect(early).toBeGreaterThan(0)
      // GC at now (user space's precise clock, at most a tick ahead) deletes neither.
      const gc = dp.gc()
      expect(gc.ct.deleted).toBe(0)
      expect(
        dp.ct.get({ saddr: EP.ip, daddr: '10.0.2.5', sport: 7100, dport: 53, protocol: 17 }),
      ).toBeDefined()
      // A reply refreshes the deadline from the same clock.
      await new Promise((r) => setTimeout(r, 30))
      const t2 = monotonicNowNs()
      await run('to_container', tcp('10.0.2.5', 80, EP.ip, 7101, TcpFlags.SYN | TcpFlags.ACK))
      const t3 = monotonicNowNs()
      const answered = dp.ct.get({
        saddr: EP.ip,
        daddr: '10.0.2.5',
        sport: 7101,
        dport: 80,
        protocol: 6,
      })
      const tcpTimeout = 21_600_000_000_000n
      const exp = answered?.expiresNs ?? 0n
      expect(exp >= t2 + tcpTimeout - TICK && exp <= t3 + tcpTimeout).toBe(true)
    })
  },
)
