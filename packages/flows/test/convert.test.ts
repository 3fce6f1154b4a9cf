import { describe, expect, it } from 'vitest'
import { eventToFlow, monotonicClock } from '../src/convert'
import { StaticEnricher } from '../src/enrich'
import {
  decodeEvent,
  EventFlag,
  EventType,
  encodeEvent,
  PolicyAction,
  TracePoint,
} from '../src/event'
import { FlowType, IPVersion, TraceObservationPoint, Verdict } from '../src/types'

function enricher(): StaticEnricher {
  const e = new StaticEnricher()
  e.identities.set(1234, ['k8s:app=xwing', 'k8s:io.kubernetes.pod.namespace=default'])
  e.endpoints.set('10.0.0.2', {
    endpointId: 9,
    identity: 5678,
    namespace: 'default',
    podName: 'deathstar-6fb5694d48-5hmds',
    labels: ['k8s:app=deathstar', 'k8s:class=deathstar'],
  })
  e.services.set(StaticEnricher.serviceKey('10.96.0.10', 80, 6), {
    name: 'deathstar',
    namespace: 'default',
  })
  e.names.set('10.0.0.2', ['deathstar.default.svc.cluster.local'])
  e.backends.set('10.0.0.2', { name: 'deathstar', namespace: 'default' })
  e.backends.set('10.0.0.1', { name: 'xwing', namespace: 'default' })
  e.interfaces.set(7, 'lxc1234')
  return e
}

const base = {
  protocol: 6,
  sport: 40000,
  dport: 80,
  saddr: '10.0.0.1',
  daddr: '10.0.0.2',
  srcIdentity: 1234,
  dstIdentity: 5678,
  ifindex: 7,
  endpointId: 9,
  len: 74,
}

describe('eventToFlow', () => {
  it('drop event: DROPPED with reason 133, enriched endpoints, ports and flags', () => {
    const raw = encodeEvent({
      ...base,
      type: EventType.DROP,
      subtype: 133,
      direction: 1,
      tcpFlags: 0x02,
      smac: '02:00:00:00:00:01',
      dmac: '02:00:00:00:00:02',
    })
    const flow = eventToFlow(decodeEvent(raw), { enricher: enricher(), nodeName: 'node-a' })
    expect(flow).toMatchObject({
      verdict: Verdict.DROPPED,
      dropReason: 133,
      dropReasonDesc: 133,
      Type: FlowType.L3_L4,
      nodeName: 'node-a',
      eventType: { type: 1, subType: 133 },
      trafficDirection: 1,
      isReply: { value: false },
      ethernet: { source: '02:00:00:00:00:01', destination: '02:00:00:00:00:02' },
      IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: IPVersion.IPv4 },
      l4: { TCP: { sourcePort: 40000, destinationPort: 80, flags: { SYN: true } } },
      source: {
        identity: 1234,
        namespace: 'default',
        labels: ['k8s:app=xwing', 'k8s:io.kubernetes.pod.namespace=default'],
      },
      destination: {
        ID: 9,
        identity: 5678,
        namespace: 'default',
        podName: 'deathstar-6fb5694d48-5hmds',
        labels: ['k8s:app=deathstar', 'k8s:class=deathstar'],
      },
      destinationNames: ['deathstar.default.svc.cluster.local'],
      sourceService: { name: 'xwing', namespace: 'default' },
      destinationService: { name: 'deathstar', namespace: 'default' },
      interface: { index: 7, name: 'lxc1234' },
    })
    expect(flow?.l4?.TCP?.flags).toEqual({ SYN: true })
  })

  it('trace event: FORWARDED with the observation point (TO_LXC -> TO_ENDPOINT)', () => {
    const to = eventToFlow(
      decodeEvent(
        encodeEvent({
          ...base,
          type: EventType.TRACE,
          subtype: TracePoint.TO_LXC,
          flags: EventFlag.REPLY,
        }),
      ),
    )
    expect(to).toMatchObject({
      verdict: Verdict.FORWARDED,
      traceObservationPoint: TraceObservationPoint.TO_ENDPOINT,
      eventType: { type: 4, subType: 0 },
      isReply: { value: true },
    })
    const from = eventToFlow(
      decodeEvent(encodeEvent({ ...base, type: EventType.TRACE, subtype: TracePoint.FROM_LXC })),
    )
    expect(from?.traceObservationPoint).toBe(TraceObservationPoint.FROM_ENDPOINT)
    // the emitting endpoint is the source for from-lxc
    expect(from?.source?.ID).toBe(9)
    expect(from?.destination?.ID).toBeUndefined()
  })

  it('policy verdict: allowed / denied / redirected / audit, with match type', () => {
    const pv = (action: number, flags = 0, subtype = 0) =>
      eventToFlow(
        decodeEvent(
          encodeEvent({
            ...base,
            type: EventType.POLICY_VERDICT,
            action,
            flags,
            matchType: 1,
            direction: 1,
            proxyPort: 15001,
            subtype,
          }),
        ),
      )
    expect(pv(PolicyAction.ALLOWED)).toMatchObject({
      verdict: Verdict.FORWARDED,
      policyMatchType: 1,
      eventType: { type: 5, subType: 0 },
    })
    expect(pv(PolicyAction.DENIED)).toMatchObject({ verdict: Verdict.DROPPED, dropReasonDesc: 133 })
    expect(pv(PolicyAction.DENIED, 0, 181)).toMatchObject({
      verdict: Verdict.DROPPED,
      dropReasonDesc: 181,
    })
    expect(pv(PolicyAction.REDIRECTED)).toMatchObject({
      verdict: Verdict.REDIRECTED,
      proxyPort: 15001,
    })
    expect(pv(PolicyAction.DENIED, EventFlag.AUDIT)?.verdict).toBe(Verdict.AUDIT)
  })

  it('socket LB event: SOCK flow, TRANSLATED, cookie and service from the pre-NAT address', () => {
    const flow = eventToFlow(
      decodeEvent(
        encodeEvent({
          ...base,
          type: EventType.SOCK_LB,
          subtype: 2,
          flags: EventFlag.NAT,
          sockCookie: (1n << 60n) + 5n,
          origDaddr: '10.96.0.10',
          origDport: 80,
        }),
      ),
      { enricher: enricher() },
    )
    expect(flow).toMatchObject({
      Type: FlowType.SOCK,
      verdict: Verdict.TRANSLATED,
      sockXlatePoint: 2,
      socketCookie: ((1n << 60n) + 5n).toString(),
      destinationService: { name: 'deathstar', namespace: 'default' },
    })
  })

  it('IPv6 and ICMPv6', () => {
    const flow = eventToFlow(
      decodeEvent(
        encodeEvent({
          type: EventType.TRACE,
          subtype: TracePoint.TO_STACK,
          flags: EventFlag.IPV6,
          protocol: 58,
          icmpTypeCode: (128 << 8) | 0,
          saddr: 'fd00::1',
          daddr: 'fd00::2',
          srcIdentity: 2,
        }),
      ),
    )
    expect(flow?.IP).toEqual({
      source: 'fd00::1',
      destination: 'fd00::2',
      ipVersion: IPVersion.IPv6,
    })
    expect(flow?.l4).toEqual({ ICMPv6: { type: 128, code: 0 } })
    expect(flow?.source?.labels).toEqual(['reserved:world'])
  })

  it('unknown event types are not flows', () => {
    expect(eventToFlow(decodeEvent(encodeEvent({ type: 99 })))).toBeUndefined()
  })

  it('converts monotonic ns to wall time consistently with the wall clock', () => {
    const clock = monotonicClock()
    const nowMono = Number(process.hrtime.bigint())
    const ts = clock.toTimestamp(nowMono)
    const wall = ts.seconds * 1000 + ts.nanos / 1e6
    expect(Math.abs(wall - Date.now())).toBeLessThan(1000)
    expect(ts.nanos).toBeGreaterThanOrEqual(0)
    expect(ts.nanos).toBeLessThan(1e9)
    const later = clock.toTimestamp(nowMono + 1_500_000_000)
    expect((later.seconds - ts.seconds) * 1e9 + (later.nanos - ts.nanos)).toBe(1_500_000_000)
  })
})
