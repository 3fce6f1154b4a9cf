import { spawnSync } from 'node:child_process'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EventType, encodeEvent, PolicyAction } from '../src/event'
import { FlowMetrics, type MetricsServer, serveMetrics } from '../src/metrics'
import { FlowObserver } from '../src/observer'
import { LostEventSource } from '../src/types'

function fill(): { metrics: FlowMetrics; observer: FlowObserver } {
  const metrics = new FlowMetrics()
  const observer = new FlowObserver({ nodeName: 'n1', sinks: [metrics] })
  const base = {
    protocol: 6,
    saddr: '10.0.0.1',
    daddr: '10.0.0.2',
    sport: 4000,
    dport: 80,
    len: 100,
  }
  observer.ingestEvent(
    encodeEvent({ ...base, type: EventType.DROP, subtype: 133, direction: 1, tcpFlags: 2 }),
  )
  observer.ingestEvent(
    encodeEvent({ ...base, type: EventType.DROP, subtype: 133, direction: 1, tcpFlags: 2 }),
  )
  observer.ingestEvent(
    encodeEvent({ ...base, type: EventType.DROP, subtype: 181, direction: 2, protocol: 17 }),
  )
  observer.ingestEvent(
    encodeEvent({ ...base, type: EventType.TRACE, subtype: 0, direction: 1, tcpFlags: 0x12 }),
  )
  observer.ingestEvent(
    encodeEvent({
      ...base,
      type: EventType.POLICY_VERDICT,
      action: PolicyAction.ALLOWED,
      matchType: 1,
      direction: 1,
    }),
  )
  observer.ingestL7({
    source: { ip: '10.0.0.1', port: 4000 },
    destination: { ip: '10.0.0.2', port: 80 },
    http: { method: 'GET', url: '/', protocol: 'HTTP/1.1' },
  })
  observer.ingestL7({
    type: 'response',
    source: { ip: '10.0.0.1', port: 4000 },
    destination: { ip: '10.0.0.2', port: 80 },
    http: { method: 'GET', url: '/', code: 200 },
    latencyNs: 3_000_000,
  })
  observer.ingestL7({
    type: 'response',
    source: { ip: '10.0.0.1', port: 5353 },
    destination: { ip: '10.0.0.53', port: 53 },
    dns: { query: 'a.example.', qtypes: ['A'], ips: ['192.0.2.1'], rcode: 0 },
  })
  observer.reportLost(LostEventSource.PERF_EVENT_RING_BUFFER, 3)
  metrics.setEndpointCount(4)
  metrics.setIdentityCount(7, 'cluster_local')
  metrics.setPolicyCount(2)
  metrics.recordMapOp('mb_policy_42', 'update', true)
  metrics.setMapPressure('mb_ct4', 0.25)
  return { metrics, observer }
}

describe('FlowMetrics', () => {
  it('counts drops by reason/direction, forwards, Hubble flow metrics, L7 and losses', async () => {
    const { metrics } = fill()
    const text = await metrics.metrics()
    expect(text).toContain(
      'membrane_drop_count_total{reason="Policy denied",direction="INGRESS"} 2',
    )
    expect(text).toContain(
      'membrane_drop_bytes_total{reason="Policy denied",direction="INGRESS"} 200',
    )
    expect(text).toContain(
      'membrane_drop_count_total{reason="Policy denied by denylist",direction="EGRESS"} 1',
    )
    expect(text).toContain('membrane_forward_count_total{direction="INGRESS"} 2')
    expect(text).toContain(
      'hubble_flows_processed_total{type="Drop",subtype="",verdict="DROPPED"} 3',
    )
    expect(text).toContain(
      'hubble_flows_processed_total{type="Trace",subtype="to-endpoint",verdict="FORWARDED"} 1',
    )
    expect(text).toContain(
      'hubble_flows_processed_total{type="L7",subtype="HTTP",verdict="FORWARDED"} 2',
    )
    expect(text).toContain('hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"} 2')
    expect(text).toContain('hubble_drop_total{reason="POLICY_DENY",protocol="UDP"} 1')
    expect(text).toContain('hubble_tcp_flags_total{flag="SYN",family="IPv4"} 2')
    expect(text).toContain('hubble_tcp_flags_total{flag="SYN-ACK",family="IPv4"} 1')
    expect(text).toContain(
      'hubble_http_requests_total{method="GET",protocol="HTTP/1.1",reporter="server"} 1',
    )
    expect(text).toContain(
      'hubble_http_responses_total{method="GET",status="200",reporter="server"} 1',
    )
    expect(text).toContain(
      'hubble_http_request_duration_seconds_count{method="GET",reporter="server"} 1',
    )
    expect(text).toContain(
      'hubble_dns_responses_total{rcode="No Error",qtypes="A",ips_returned="1"} 1',
    )
    expect(text).toContain('hubble_lost_events_total{source="PERF_EVENT_RING_BUFFER"} 3')
    expect(text).toContain('membrane_datapath_events_lost_total 3')
    expect(text).toContain(
      'membrane_policy_verdict_total{direction="ingress",match="l3-l4",action="allow"} 1',
    )
    expect(text).toContain('membrane_endpoints 4')
    expect(text).toContain('membrane_identities{type="cluster_local"} 7')
    expect(text).toContain(
      'membrane_bpf_map_ops_total{map_name="mb_policy_42",operation="update",outcome="success"} 1',
    )
    expect(text).toContain('membrane_bpf_map_pressure{map_name="mb_ct4"} 0.25')
  })

  it('takes the datapath counters from the datapath map when given (absolute, per scrape)', async () => {
    const metrics = new FlowMetrics()
    const observer = new FlowObserver({ sinks: [metrics] })
    let counters = [
      { reason: 0, direction: 'egress' as const, packets: 10n, bytes: 1000n },
      { reason: 133, direction: 'ingress' as const, packets: 3n, bytes: 180n },
    ]
    metrics.useDatapathCounters(() => counters)
    // events no longer count into these four (they would double count)
    observer.ingestEvent(
      encodeEvent({ type: EventType.DROP, subtype: 133, direction: 1, protocol: 6 }),
    )
    let text = await metrics.metrics()
    expect(text).toContain('membrane_forward_count_total{direction="EGRESS"} 10')
    expect(text).toContain('membrane_forward_bytes_total{direction="EGRESS"} 1000')
    expect(text).toContain(
      'membrane_drop_count_total{reason="Policy denied",direction="INGRESS"} 3',
    )
    expect(text).toContain(
      'membrane_drop_bytes_total{reason="Policy denied",direction="INGRESS"} 180',
    )
    expect(text).toContain('hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"} 1')
    counters = [{ reason: 133, direction: 'ingress', packets: 5n, bytes: 300n }]
    text = await metrics.metrics()
    expect(text).toContain(
      'membrane_drop_count_total{reason="Policy denied",direction="INGRESS"} 5',
    )
    expect(text).not.toContain('membrane_forward_count_total{')
  })

  it('runs collectors before a scrape', async () => {
    const metrics = new FlowMetrics()
    let n = 0
    metrics.addCollector(() => metrics.setEndpointCount(++n))
    await metrics.metrics()
    expect(await metrics.metrics()).toContain('membrane_endpoints 2')
  })
})

describeKernel('metrics endpoint passes promtool', ['bin:promtool'], () => {
  let server: MetricsServer
  let metrics: FlowMetrics
  beforeAll(async () => {
    metrics = fill().metrics
    server = await serveMetrics(metrics, { port: 0 })
  })
  afterAll(() => server.close())

  it('GET /metrics over HTTP is valid exposition format (promtool check metrics)', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/text\/plain/)
    const body = await res.text()
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })
    expect(`${r.stdout}${r.stderr}`).toBe('')
    expect(r.status).toBe(0)
    expect((await fetch(`http://127.0.0.1:${server.port}/nope`)).status).toBe(404)
  })

  it('promtool rejects broken exposition text (the check can fail)', () => {
    const r = spawnSync('promtool', ['check', 'metrics'], {
      input: '# TYPE x counter\nx{a="1" 3\n',
      encoding: 'utf8',
    })
    expect(r.status).not.toBe(0)
  })
})
