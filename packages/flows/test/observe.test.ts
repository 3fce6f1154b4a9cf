import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MonotonicClock } from '../src/convert'
import { StaticEnricher } from '../src/enrich'
import { EventType, encodeEvent } from '../src/event'
import { compactLine, flowToJSON } from '../src/format'
import { parseObserveArgs, runObserve } from '../src/observe'
import { FlowObserver } from '../src/observer'
import { type ObserverServer, startObserverServer } from '../src/server'
import { IPVersion, TrafficDirection, Verdict } from '../src/types'

const clock: MonotonicClock = {
  toTimestamp: (ns) => ({ seconds: 1_763_750_000 + Math.floor(ns / 1e9), nanos: ns % 1e9 }),
  now: () => ({ seconds: 1_763_750_000, nanos: 0 }),
}

function capture() {
  const s = new PassThrough()
  let text = ''
  s.on('data', (d) => {
    text += String(d)
  })
  return { stream: s, text: () => text }
}

describe('parseObserveArgs (hubble observe flags)', () => {
  it('sided flags make a source filter and a destination filter; others go to both', () => {
    const o = parseObserveArgs([
      '--pod',
      'default/xwing',
      '--port',
      '80',
      '--verdict',
      'DROPPED',
      '-o',
      'json',
    ])
    expect(o.output).toBe('json')
    expect(o.request).toEqual({
      number: 20,
      whitelist: [
        { sourcePod: ['default/xwing'], sourcePort: ['80'], verdict: [Verdict.DROPPED] },
        { destinationPod: ['default/xwing'], destinationPort: ['80'], verdict: [Verdict.DROPPED] },
      ],
    })
  })

  it('--from/--to, --not, --type, --follow, --since', () => {
    const o = parseObserveArgs(
      [
        '--from-label',
        'app=xwing',
        '--to-namespace',
        'default',
        '--not',
        '--http-method',
        'GET',
        '-t',
        'trace:to-endpoint',
        '-f',
        '--since',
        '5m',
        '--traffic-direction',
        'ingress',
      ],
      1_000_000,
    )
    expect(o.request.follow).toBe(true)
    expect(o.request.number).toBeUndefined()
    expect(o.request.since).toEqual({ seconds: 700, nanos: 0 })
    expect(o.request.whitelist).toEqual([
      {
        sourceLabel: ['app=xwing'],
        destinationPod: ['default/'],
        eventType: [{ type: EventType.TRACE, matchSubType: true, subType: 0 }],
        trafficDirection: [TrafficDirection.INGRESS],
      },
    ])
    expect(o.request.blacklist).toEqual([{ httpMethod: ['GET'] }])
  })

  it('--drop-reason-desc, --http-url, --node-label (Hubble filter fields 33, 31, 36)', () => {
    const o = parseObserveArgs([
      '--drop-reason-desc',
      'policy_denied',
      '--drop-reason-desc',
      '181',
      '--http-url',
      '/v1/',
      '--node-label',
      'zone=east',
    ])
    expect(o.request.whitelist).toEqual([
      { dropReasonDesc: [133, 181], httpUrl: ['/v1/'], nodeLabels: ['zone=east'] },
    ])
    expect(() => parseObserveArgs(['--drop-reason-desc', 'NOPE'])).toThrow(
      /--drop-reason-desc: unknown drop reason 'NOPE'/,
    )
  })

  it('usage errors name the flag and value', () => {
    expect(() => parseObserveArgs(['--verdict', 'MAYBE'])).toThrow(
      /--verdict: unknown verdict 'MAYBE'/,
    )
    expect(() => parseObserveArgs(['--since', 'yesterday'])).toThrow(
      /--since: expected an RFC 3339 time/,
    )
    expect(() => parseObserveArgs(['--bogus'])).toThrow(/bogus/)
    expect(() => parseObserveArgs(['--first', '3', '--follow'])).toThrow(
      /--first cannot be combined with --follow/,
    )
    expect(() => parseObserveArgs(['--not'])).toThrow(/--not must be followed by a filter flag/)
  })
})

describe('runObserve against a real Observer server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-flows-observe-'))
  let observer: FlowObserver
  let server: ObserverServer
  beforeAll(async () => {
    const enricher = new StaticEnricher()
    enricher.endpoints.set('10.0.0.1', {
      namespace: 'default',
      podName: 'xwing-5f6d',
      labels: ['k8s:app=xwing'],
      identity: 1000,
    })
    enricher.endpoints.set('10.0.0.2', {
      namespace: 'default',
      podName: 'deathstar-6fb5694d48-5hmds',
      labels: ['k8s:app=deathstar'],
      identity: 2000,
    })
    observer = new FlowObserver({ nodeName: 'node-a', clock, enricher })
    const base = {
      protocol: 6,
      saddr: '10.0.0.1',
      daddr: '10.0.0.2',
      sport: 41000,
      dport: 80,
      srcIdentity: 1000,
      dstIdentity: 2000,
    }
    observer.ingestEvent(
      encodeEvent({ ...base, type: EventType.TRACE, subtype: 0, tcpFlags: 2, ktimeNs: 1e9 }),
    )
    observer.ingestEvent(
      encodeEvent({
        ...base,
        type: EventType.DROP,
        subtype: 133,
        direction: 1,
        tcpFlags: 2,
        ktimeNs: 2e9,
      }),
    )
    observer.ingestL7({
      time: { seconds: 1_763_750_003, nanos: 0 },
      source: { ip: '10.0.0.1', port: 41001 },
      destination: { ip: '10.0.0.2', port: 80 },
      http: { method: 'POST', url: 'http://deathstar/v1/request-landing', protocol: 'HTTP/1.1' },
    })
    server = await startObserverServer(observer, { address: `unix://${join(dir, 'o.sock')}` })
  })
  afterAll(async () => {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('compact output, no colour without a TTY', async () => {
    const out = capture()
    const code = await runObserve([], { target: server.target, stdout: out.stream, isTTY: false })
    expect(code).toBe(0)
    const lines = out.text().trim().split('\n')
    expect(lines).toEqual([
      'Nov 21 18:33:21.000: default/xwing-5f6d:41000 (ID:1000) -> default/deathstar-6fb5694d48-5hmds:80 (ID:2000) to-endpoint FORWARDED (TCP Flags: SYN)',
      'Nov 21 18:33:22.000: default/xwing-5f6d:41000 (ID:1000) -> default/deathstar-6fb5694d48-5hmds:80 (ID:2000) Policy denied DROPPED (TCP Flags: SYN)',
      'Nov 21 18:33:23.000: default/xwing-5f6d:41001 (ID:1000) -> default/deathstar-6fb5694d48-5hmds:80 (ID:2000) http-request FORWARDED (HTTP/1.1 POST http://deathstar/v1/request-landing)',
    ])
    expect(out.text()).not.toContain('\x1b[')
  })

  it('colour on a TTY; filters; table; json', async () => {
    const tty = capture()
    await runObserve(['--verdict', 'DROPPED'], {
      target: server.target,
      stdout: tty.stream,
      isTTY: true,
    })
    expect(tty.text()).toContain('\x1b[31mDROPPED\x1b[0m')
    expect(tty.text().trim().split('\n')).toHaveLength(1)

    const table = capture()
    await runObserve(['-o', 'table', '--protocol', 'http'], {
      target: server.target,
      stdout: table.stream,
    })
    const rows = table.text().trim().split('\n')
    expect(rows[0]).toMatch(/^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+SUMMARY$/)
    expect(rows).toHaveLength(2)
    expect(rows[1]).toContain('http-request')

    const json = capture()
    await runObserve(['-o', 'json', '--last', '1'], { target: server.target, stdout: json.stream })
    const obj = JSON.parse(json.text().trim())
    expect(obj).toMatchObject({
      node_name: 'node-a',
      time: '2025-11-21T18:33:23Z',
      flow: {
        verdict: 'FORWARDED',
        Type: 'L7',
        IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 'IPv4' },
        l4: { TCP: { source_port: 41001, destination_port: 80 } },
        source: { identity: 1000, pod_name: 'xwing-5f6d', namespace: 'default' },
        l7: {
          type: 'REQUEST',
          http: { method: 'POST', url: 'http://deathstar/v1/request-landing' },
        },
        event_type: { type: 129 },
        is_reply: false,
      },
    })
  })

  it('--graph writes a service map; server errors exit 1; usage errors exit 2', async () => {
    const svg = join(dir, 'map.svg')
    const err = capture()
    expect(
      await runObserve(['--graph', svg], {
        target: server.target,
        stdout: capture().stream,
        stderr: err.stream,
      }),
    ).toBe(0)
    const text = readFileSync(svg, 'utf8')
    expect(text).toContain('<svg')
    expect(text).toContain('default/xwing')
    expect(text).toContain('default/deathstar')
    // The SYN's trace (forwarded) and its drop are one connection, denied; the L7 request counts apart.
    expect(text).toMatch(/class="edge denied"[^>]*data-allowed="0" data-denied="1"/)
    expect(text).toContain('POST /v1/request-landing 1 allowed')
    const e1 = capture()
    expect(
      await runObserve(['--from-ip', '10.0.0.0/99'], {
        target: server.target,
        stdout: capture().stream,
        stderr: e1.stream,
      }),
    ).toBe(1)
    expect(e1.text()).toContain('sourceIp[0]')
    const e2 = capture()
    expect(
      await runObserve(['--output', 'yaml'], { target: server.target, stderr: e2.stream }),
    ).toBe(2)
    expect(e2.text()).toContain("--output: expected compact, dict, json or table, got 'yaml'")
    const dict = capture()
    expect(
      await runObserve(['-o', 'dict', '--last', '1', '-n', 'default'], {
        target: server.target,
        stdout: dict.stream,
      }),
    ).toBe(0)
    expect(dict.text()).toMatch(
      /^ {2}TIMESTAMP: Nov 21 18:33:23\.000\n {5}SOURCE: default\/xwing-5f6d:41001 \(ID:1000\)\n/,
    )
    expect(dict.text()).toContain('    VERDICT: FORWARDED\n')
    expect(dict.text().trim().endsWith('------------')).toBe(true)
  })

  it('stops quietly when its output goes away (like `| head`)', async () => {
    const out = new PassThrough()
    out.on('data', () =>
      out.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })),
    )
    const err = capture()
    const code = await runObserve(['-f', '--since', '2000-01-01T00:00:00Z'], {
      target: server.target,
      stdout: out,
      stderr: err.stream,
    })
    expect(code).toBe(0)
    expect(err.text()).toBe('')
  })

  it('--follow streams until the signal aborts', async () => {
    const out = capture()
    const ac = new AbortController()
    const run = runObserve(['-f', '--protocol', 'udp'], {
      target: server.target,
      stdout: out.stream,
      signal: ac.signal,
    })
    await new Promise((r) => setTimeout(r, 100))
    observer.ingestEvent(
      encodeEvent({
        type: EventType.TRACE,
        subtype: 3,
        protocol: 17,
        saddr: '10.0.0.1',
        daddr: '10.0.0.53',
        sport: 5000,
        dport: 53,
        ktimeNs: 5e9,
      }),
    )
    for (let i = 0; i < 50 && !out.text(); i++) await new Promise((r) => setTimeout(r, 20))
    ac.abort()
    expect(await run).toBe(0)
    expect(out.text()).toContain('10.0.0.53:53')
    expect(out.text()).toContain('to-stack FORWARDED (UDP)')
  })
})

describe('formatting', () => {
  it('reply flows print with the arrow reversed; IPv6 in brackets', () => {
    const line = compactLine({
      verdict: Verdict.FORWARDED,
      Type: 1,
      time: { seconds: 0, nanos: 0 },
      IP: { source: 'fd00::2', destination: 'fd00::1', ipVersion: IPVersion.IPv6 },
      l4: { UDP: { sourcePort: 53, destinationPort: 5000 } },
      isReply: { value: true },
      eventType: { type: 4, subType: 0 },
      traceObservationPoint: 101,
    })
    expect(line).toBe(
      'Jan 01 00:00:00.000: [fd00::1]:5000 <- [fd00::2]:53 to-endpoint FORWARDED (UDP)',
    )
  })

  it('policy verdicts print ALLOWED / DENIED with the match type and direction', () => {
    const line = compactLine({
      verdict: Verdict.DROPPED,
      Type: 1,
      time: { seconds: 0, nanos: 0 },
      IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: IPVersion.IPv4 },
      l4: { TCP: { sourcePort: 1234, destinationPort: 80, flags: { SYN: true } } },
      eventType: { type: 5, subType: 0 },
      policyMatchType: 1,
      trafficDirection: TrafficDirection.INGRESS,
    })
    expect(line).toBe(
      'Jan 01 00:00:00.000: 10.0.0.1:1234 -> 10.0.0.2:80 policy-verdict:L3-L4 INGRESS DENIED (TCP Flags: SYN)',
    )
  })

  it('JSON uses proto field names, enum names and RFC 3339 times', () => {
    const j = flowToJSON({
      verdict: Verdict.DROPPED,
      Type: 1,
      time: { seconds: 1, nanos: 500 },
      dropReasonDesc: 181,
      socketCookie: '18446744073709551615',
    })
    expect(j).toMatchObject({
      verdict: 'DROPPED',
      drop_reason_desc: 'POLICY_DENY',
      time: '1970-01-01T00:00:01.0000005Z',
      socket_cookie: '18446744073709551615',
    })
  })
})
