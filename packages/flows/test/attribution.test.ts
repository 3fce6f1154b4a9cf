/**
 * Policy attribution in flows: the rule-set id of a datapath verdict and the policy refs of an
 * L7 record become Hubble's *_allowed_by / *_denied_by fields, on the wire too, and count in
 * hubble_policy_verdicts_total.
 */
import { spawnSync } from 'node:child_process'
import { describeKernel } from '@membrane/test-utils'
import { describe, expect, it } from 'vitest'
import { eventToFlow } from '../src/convert'
import type { Enricher } from '../src/enrich'
import { decodeEvent, EventFlag, EventType, encodeEvent, PolicyAction } from '../src/event'
import { formatResponse } from '../src/format'
import { l7RecordToFlow } from '../src/l7'
import { FlowMetrics } from '../src/metrics'
import { FlowObserver } from '../src/observer'
import { decodeFlow, encodeFlow, encodeFlowReference } from '../src/proto'
import { type Policy, Verdict } from '../src/types'

const policy = (name: string, namespace = 'default'): Policy =>
  Object.freeze({
    name,
    namespace,
    labels: [
      'k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy',
      `k8s:io.cilium.k8s.policy.name=${name}`,
      `k8s:io.cilium.k8s.policy.namespace=${namespace}`,
    ],
    revision: 7,
    kind: 'CiliumNetworkPolicy',
  })

const ALLOW_WEB = [policy('allow-web')]
const DENY_ALL = [policy('deny-8081')]
const AUDIT = [policy('audit-l4', 'prod')]
const DEFAULT_DENY: Record<string, Policy[]> = { '2/1': [policy('l3-only')] }
const BY_REF: Record<string, Policy> = {
  'CiliumNetworkPolicy/default/rule1': policy('rule1'),
}

const enricher: Enricher = {
  policiesOf: (ruleSet, endpointId, direction) =>
    ruleSet === 11
      ? ALLOW_WEB
      : ruleSet === 13
        ? DENY_ALL
        : ruleSet === 14
          ? AUDIT
          : ruleSet === 0
            ? DEFAULT_DENY[`${endpointId}/${direction}`]
            : undefined,
  policiesByRef: (refs) => refs.map((r) => BY_REF[r]).filter((p): p is Policy => !!p),
}

const base = {
  protocol: 6,
  saddr: '10.0.0.1',
  daddr: '10.0.0.2',
  sport: 4000,
  dport: 80,
  len: 60,
  endpointId: 2,
}

const flowOf = (ev: Parameters<typeof encodeEvent>[0]) => {
  const f = eventToFlow(decodeEvent(encodeEvent({ ...base, ...ev })), { enricher })
  if (!f) throw new Error('no flow')
  return f
}

describe('datapath verdicts name their policies', () => {
  it('an allowed egress verdict: egress_allowed_by', () => {
    const f = flowOf({
      type: EventType.POLICY_VERDICT,
      action: PolicyAction.ALLOWED,
      matchType: 1,
      direction: 2,
      ruleSet: 11,
    })
    expect(f.verdict).toBe(Verdict.FORWARDED)
    expect(f.egressAllowedBy).toEqual(ALLOW_WEB)
    expect(f.egressDeniedBy ?? f.ingressAllowedBy ?? f.ingressDeniedBy).toBeUndefined()
  })

  it('a deny drop (181) at ingress: ingress_denied_by', () => {
    const f = flowOf({ type: EventType.DROP, subtype: 181, direction: 1, ruleSet: 13 })
    expect(f.verdict).toBe(Verdict.DROPPED)
    expect(f.ingressDeniedBy).toEqual(DENY_ALL)
  })

  it('a default-deny drop (133, rule set 0): the policies that put the endpoint in default deny', () => {
    const f = flowOf({ type: EventType.DROP, subtype: 133, direction: 1, ruleSet: 0 })
    expect(f.ingressDeniedBy).toEqual(DEFAULT_DENY['2/1'])
    // Another endpoint, not in default deny through a known policy: nothing named.
    const g = flowOf({ type: EventType.DROP, subtype: 133, direction: 1, endpointId: 3 })
    expect(g.ingressDeniedBy).toBeUndefined()
  })

  it('an audit verdict: AUDIT, and denied_by names what would have denied it', () => {
    const f = flowOf({
      type: EventType.POLICY_VERDICT,
      action: PolicyAction.ALLOWED,
      flags: EventFlag.AUDIT,
      matchType: 1,
      direction: 1,
      ruleSet: 14,
    })
    expect(f.verdict).toBe(Verdict.AUDIT)
    expect(f.ingressDeniedBy).toEqual(AUDIT)
    expect(f.ingressAllowedBy).toBeUndefined()
  })

  it('trace events and non-policy drops name no policy', () => {
    expect(
      flowOf({ type: EventType.TRACE, subtype: 0, direction: 1, ruleSet: 11 }),
    ).not.toHaveProperty('ingressAllowedBy')
    expect(
      flowOf({ type: EventType.DROP, subtype: 132, direction: 2, ruleSet: 11 }),
    ).not.toHaveProperty('egressDeniedBy')
  })

  it('the fields survive the wire: fast encoder = reference encoder, and decode back', () => {
    const f = flowOf({
      type: EventType.POLICY_VERDICT,
      action: PolicyAction.ALLOWED,
      matchType: 1,
      direction: 2,
      ruleSet: 11,
    })
    const back = decodeFlow(encodeFlow(f))
    expect(back.egressAllowedBy).toEqual(ALLOW_WEB)
    expect(decodeFlow(encodeFlowReference(f)).egressAllowedBy).toEqual(ALLOW_WEB)
    const d = flowOf({ type: EventType.DROP, subtype: 181, direction: 1, ruleSet: 13 })
    expect(decodeFlow(encodeFlow(d)).ingressDeniedBy).toEqual(DENY_ALL)
  })
})

describe('observe prints them', () => {
  it('compact, table and dict formats name the deciding policies', () => {
    const f = flowOf({ type: EventType.DROP, subtype: 181, direction: 1, ruleSet: 13 })
    const nodeName = 'n1'
    expect(formatResponse({ flow: f, nodeName }, 'compact')).toMatch(
      /\[denied by default\/deny-8081\]$/,
    )
    expect(formatResponse({ flow: f, nodeName }, 'table')).toContain('denied by default/deny-8081')
    expect(formatResponse({ flow: f, nodeName }, 'dict')).toContain(
      'POLICIES: denied by default/deny-8081',
    )
    const a = flowOf({
      type: EventType.POLICY_VERDICT,
      action: PolicyAction.ALLOWED,
      flags: EventFlag.AUDIT,
      matchType: 1,
      direction: 1,
      ruleSet: 14,
    })
    expect(formatResponse({ flow: a, nodeName }, 'compact')).toContain(
      '[would be denied by prod/audit-l4]',
    )
    const json = formatResponse({ flow: a, nodeName }, 'json')
    expect(JSON.parse(json).flow.ingress_denied_by[0]).toMatchObject({
      name: 'audit-l4',
      namespace: 'prod',
      revision: '7',
    })
  })
})

describe('L7 records name their policies', () => {
  const rec = {
    source: { ip: '10.0.0.1', port: 4000 },
    destination: { ip: '10.0.0.2', port: 80 },
    http: { method: 'POST', url: '/v1/request-landing', protocol: 'HTTP/1.1' },
    policies: ['CiliumNetworkPolicy/default/rule1'],
  }
  it('allowed at ingress: ingress_allowed_by; denied at egress: egress_denied_by', () => {
    expect(l7RecordToFlow(rec, { enricher }).ingressAllowedBy).toEqual([
      BY_REF['CiliumNetworkPolicy/default/rule1'],
    ])
    const denied = l7RecordToFlow(
      { ...rec, verdict: 'denied', trafficDirection: 'egress' },
      { enricher },
    )
    expect(denied.egressDeniedBy).toEqual([BY_REF['CiliumNetworkPolicy/default/rule1']])
  })
})

function observed(): FlowMetrics {
  const metrics = new FlowMetrics()
  const observer = new FlowObserver({ nodeName: 'n1', sinks: [metrics], enricher })
  const ev = (e: Parameters<typeof encodeEvent>[0]) =>
    observer.ingestEvent(encodeEvent({ ...base, ...e }))
  ev({
    type: EventType.POLICY_VERDICT,
    action: PolicyAction.ALLOWED,
    matchType: 1,
    direction: 2,
    ruleSet: 11,
  })
  ev({
    type: EventType.POLICY_VERDICT,
    action: PolicyAction.ALLOWED,
    matchType: 1,
    direction: 2,
    ruleSet: 11,
  })
  ev({ type: EventType.POLICY_VERDICT, action: PolicyAction.DENIED, matchType: 0, direction: 1 })
  ev({
    type: EventType.POLICY_VERDICT,
    action: PolicyAction.ALLOWED,
    flags: EventFlag.AUDIT,
    matchType: 3,
    direction: 1,
    ruleSet: 14,
  })
  // From the host identity: not counted (as Hubble).
  ev({
    type: EventType.POLICY_VERDICT,
    action: PolicyAction.ALLOWED,
    matchType: 1,
    direction: 1,
    srcIdentity: 1,
  })
  observer.ingestL7({
    source: { ip: '10.0.0.1', port: 4000 },
    destination: { ip: '10.0.0.2', port: 80 },
    verdict: 'denied',
    http: { method: 'PUT', url: '/', protocol: 'HTTP/1.1' },
    policies: ['CiliumNetworkPolicy/default/rule1'],
  })
  return metrics
}

describe('hubble_policy_verdicts_total', () => {
  it('counts verdicts by direction, match, action and deciding policy', async () => {
    const text = await observed().metrics()
    const lines = text.split('\n').filter((l) => l.startsWith('hubble_policy_verdicts_total{'))
    expect(lines.sort()).toEqual(
      [
        'hubble_policy_verdicts_total{direction="egress",match="l3-l4",action="forwarded",policy="default/allow-web"} 2',
        'hubble_policy_verdicts_total{direction="ingress",match="none",action="dropped",policy="default/l3-only"} 1',
        'hubble_policy_verdicts_total{direction="ingress",match="l4-only",action="audit",policy="prod/audit-l4"} 1',
        'hubble_policy_verdicts_total{direction="ingress",match="l7/http",action="dropped",policy="default/rule1"} 1',
      ].sort(),
    )
  })
})

describeKernel('hubble_policy_verdicts_total passes promtool', ['bin:promtool'], () => {
  it('promtool check metrics accepts the exposition text', async () => {
    const body = await observed().metrics()
    expect(body).toContain('hubble_policy_verdicts_total{')
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })
    expect(`${r.stdout}${r.stderr}`).toBe('')
    expect(r.status).toBe(0)
  })
})
