/**
 * Policy attribution and audit entries with real TCP traffic between network namespaces: the
 * rule-set id of the entry that decided goes into the verdict and drop events (0 when none
 * matched: default deny), and an audit entry lets the connection through with MB_EVF_AUDIT.
 */
import { describeKernel, TestNetwork, tempBpffsDir } from '@membrane/test-utils'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { Datapath } from '../src'
import { buildObjects } from './_btf'
import { decodeRawEvent, type RawEvent } from './_event'
import { client, startServer, type Workload, workload } from './_topology'

const EVENT_DROP = 1
const EVENT_VERDICT = 5
const EVF_AUDIT = 1 << 3
const ACTION_ALLOWED = 1
const ACTION_DENIED = 2
const ACTION_REDIRECTED = 3
const DIR_INGRESS = 1
const DIR_EGRESS = 2

describeKernel(
  'policy attribution and audit in the kernel, with real traffic',
  ['root', 'bpf', 'bpffs', 'netns', 'tc', 'clang'],
  () => {
    const net = new TestNetwork()
    let pins: { path: string; remove(): void }
    let dp: Datapath
    let a: Workload
    let b: Workload
    const events: RawEvent[] = []
    let sub: { close(): void } | undefined

    beforeAll(async () => {
      buildObjects()
      pins = tempBpffsDir()
      dp = await Datapath.open({ pinRoot: pins.path })
      a = await workload(net, '10.214.1.10', 1, 1001, dp)
      b = await workload(net, '10.214.2.10', 2, 1002, dp)
      await startServer(b, 'b', [8080, 8081, 8082, 8083, 8084])
      // a's egress towards b: 8080..8084 allowed (rule set 11) except 8084 (no entry).
      // b's ingress from a: 8080 allowed (12), 8081 denied (13), 8083 allowed but audited (14),
      // 8082 allowed by a wildcard-identity entry (15).
      dp.policyMap(a.id).apply({
        upserts: [
          {
            key: {
              identity: 1002,
              direction: 'egress',
              protocol: 6,
              port: 8080,
              portPrefixLen: 14,
            },
            value: { deny: false, ruleSet: 11 },
          },
          {
            key: { identity: 1002, direction: 'egress', protocol: 6, port: 8085 },
            value: { deny: false, ruleSet: 11 },
          },
        ],
      })
      dp.policyMap(b.id).apply({
        upserts: [
          {
            key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8080 },
            value: { deny: false, ruleSet: 12 },
          },
          {
            key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8081 },
            value: { deny: true, ruleSet: 13 },
          },
          {
            key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8083 },
            value: { deny: false, audit: true, ruleSet: 14 },
          },
          {
            key: { identity: 0, direction: 'ingress', protocol: 6, port: 8082 },
            value: { deny: false, ruleSet: 15 },
          },
          {
            // L7: redirected to a proxy port (nobody listens; the verdict is what counts).
            key: { identity: 1001, direction: 'ingress', protocol: 6, port: 8085 },
            value: { deny: false, proxyPort: 15999, l7Parser: 'http', ruleSet: 16 },
          },
        ],
      })
      sub = dp.events((r) => events.push(decodeRawEvent(r)))
    }, 120_000)

    afterAll(async () => {
      sub?.close()
      await net.cleanup()
      await dp?.close()
      pins?.remove()
    })

    beforeEach(() => {
      events.length = 0
    })

    const connect = (port: number, timeoutMs = 3000) =>
      client<{ replies: string[] }>(a, ['tcp', b.ip, String(port), '1', String(timeoutMs)])

    /** The events of the connection to `port` (its SYN: the first packet). */
    const about = async (port: number, want: (e: RawEvent[]) => boolean) => {
      for (let i = 0; i < 100; i++) {
        const mine = events.filter((e) => e.dport === port && e.daddr === b.ip)
        if (want(mine)) return mine
        await new Promise((r) => setTimeout(r, 20))
      }
      return events.filter((e) => e.dport === port && e.daddr === b.ip)
    }

    it('an allowed connection: egress and ingress verdicts carry their entries’ rule sets', async () => {
      expect((await connect(8080)).replies).toEqual(['b:8080'])
      const ev = await about(8080, (e) => e.filter((x) => x.type === EVENT_VERDICT).length >= 2)
      const verdicts = ev.filter((e) => e.type === EVENT_VERDICT)
      expect(verdicts.find((e) => e.direction === DIR_EGRESS)).toMatchObject({
        action: ACTION_ALLOWED,
        endpointId: a.id,
        ruleSet: 11,
      })
      expect(verdicts.find((e) => e.direction === DIR_INGRESS)).toMatchObject({
        action: ACTION_ALLOWED,
        endpointId: b.id,
        ruleSet: 12,
      })
      expect(verdicts.every((e) => (e.flags & EVF_AUDIT) === 0)).toBe(true)
    }, 30_000)

    it('a wildcard-identity allow names its own rule set', async () => {
      expect((await connect(8082)).replies).toEqual(['b:8082'])
      const ev = await about(8082, (e) => e.some((x) => x.direction === DIR_INGRESS))
      expect(ev.find((e) => e.type === EVENT_VERDICT && e.direction === DIR_INGRESS)).toMatchObject(
        { action: ACTION_ALLOWED, ruleSet: 15 },
      )
    }, 30_000)

    it('a deny entry: the ingress drop (181) names the deny entry’s rule set', async () => {
      expect((await connect(8081, 1000)).replies).toEqual(['ERR:TIMEOUT'])
      const ev = await about(8081, (e) => e.some((x) => x.type === EVENT_DROP))
      expect(ev.find((e) => e.type === EVENT_DROP)).toMatchObject({
        subtype: 181,
        direction: DIR_INGRESS,
        endpointId: b.id,
        ruleSet: 13,
      })
      expect(ev.find((e) => e.type === EVENT_VERDICT && e.direction === DIR_INGRESS)).toMatchObject(
        { action: ACTION_DENIED, ruleSet: 13 },
      )
    }, 30_000)

    it('default deny: no entry matches, the egress drop (133) carries rule set 0', async () => {
      expect((await connect(8084, 1000)).replies).toEqual(['ERR:TIMEOUT'])
      const ev = await about(8084, (e) => e.some((x) => x.type === EVENT_DROP))
      expect(ev.find((e) => e.type === EVENT_DROP)).toMatchObject({
        subtype: 133,
        direction: DIR_EGRESS,
        endpointId: a.id,
        ruleSet: 0,
      })
    }, 30_000)

    it('an audit entry: the connection passes, its ingress verdict says AUDIT with its rule set', async () => {
      expect((await connect(8083)).replies).toEqual(['b:8083'])
      const ev = await about(8083, (e) => e.some((x) => x.direction === DIR_INGRESS))
      const ingress = ev.find((e) => e.type === EVENT_VERDICT && e.direction === DIR_INGRESS)
      expect(ingress).toMatchObject({ action: ACTION_ALLOWED, ruleSet: 14 })
      expect((ingress?.flags ?? 0) & EVF_AUDIT).toBe(EVF_AUDIT)
      // The egress verdict of the same packet is not an audit.
      const egress = ev.find((e) => e.type === EVENT_VERDICT && e.direction === DIR_EGRESS)
      expect((egress?.flags ?? EVF_AUDIT) & EVF_AUDIT).toBe(0)
      expect(ev.some((e) => e.type === EVENT_DROP)).toBe(false)
    }, 30_000)

    it('an L7 entry: the redirect verdict (action REDIRECTED) carries its rule set', async () => {
      await connect(8085, 1000)
      const ev = await about(8085, (e) => e.some((x) => x.direction === DIR_INGRESS))
      expect(ev.find((e) => e.type === EVENT_VERDICT && e.direction === DIR_INGRESS)).toMatchObject(
        { action: ACTION_REDIRECTED, proxyPort: 15999, ruleSet: 16 },
      )
    }, 30_000)

    it('reads back the rule set and the audit flag of an entry', () => {
      const e = dp
        .policyMap(b.id)
        .get({ identity: 1001, direction: 'ingress', protocol: 6, port: 8083 })
      expect(e).toMatchObject({ deny: false, audit: true, ruleSet: 14 })
      const d = dp
        .policyMap(b.id)
        .get({ identity: 1001, direction: 'ingress', protocol: 6, port: 8081 })
      expect(d).toMatchObject({ deny: true, audit: false, ruleSet: 13 })
    })
  },
)
