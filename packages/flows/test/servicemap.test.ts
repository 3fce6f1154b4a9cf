import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { buildServiceMap, edgeClass, renderServiceMapSvg } from '../src/servicemap'
import { type Flow, TraceObservationPoint, Verdict } from '../src/types'
import { starWarsFlows } from './_star-wars'

type Who = [string, string] | 'world'

const ep = (x: Who) =>
  x === 'world'
    ? { identity: 2, labels: ['reserved:world'] }
    : { namespace: x[0], podName: `${x[1]}-7d9f8b6c5d-abcde`, labels: [`k8s:app=${x[1]}`] }

function flow(src: Who, dst: [string, string], port: number, verdict: number, reply = false): Flow {
  const f: Flow = {
    verdict: verdict as Flow['verdict'],
    Type: 1,
    IP: {
      source: `10.0.0.${src === 'world' ? 99 : src[1].length}`,
      destination: '10.0.0.2',
      ipVersion: 1,
    },
    l4: { TCP: { sourcePort: 40000, destinationPort: port } },
    source: ep(src),
    destination: ep(dst),
    isReply: { value: reply },
  }
  if (reply) {
    ;[f.source, f.destination] = [f.destination, f.source]
    f.IP = { source: f.IP!.destination, destination: f.IP!.source, ipVersion: 1 }
    f.l4 = { TCP: { sourcePort: port, destinationPort: 40000 } }
  }
  return f
}

describe('service map', () => {
  const flows = [
    flow(['default', 'xwing'], ['default', 'deathstar'], 80, Verdict.DROPPED),
    flow(['default', 'tiefighter'], ['default', 'deathstar'], 80, Verdict.FORWARDED),
    flow(['default', 'tiefighter'], ['default', 'deathstar'], 80, Verdict.FORWARDED, true),
    flow(['default', 'deathstar'], ['kube-system', 'coredns'], 53, Verdict.FORWARDED),
    flow('world', ['default', 'deathstar'], 80, Verdict.FORWARDED),
    {
      ...flow('world', ['default', 'deathstar'], 80, Verdict.DROPPED),
      l4: { TCP: { sourcePort: 40001, destinationPort: 80 } },
    },
  ]

  it('aggregates by workload (app label), folds replies into the request connection', () => {
    const map = buildServiceMap(flows)
    expect(map.nodes.map((n) => n.id)).toEqual([
      'default/deathstar',
      'default/tiefighter',
      'default/xwing',
      'kube-system/coredns',
      'reserved:world',
    ])
    const e = (from: string, to: string) => map.edges.find((x) => x.from === from && x.to === to)
    // The request and its reply are one connection.
    expect(e('default/tiefighter', 'default/deathstar')).toMatchObject({
      ports: ['TCP/80'],
      allowed: 1,
      denied: 0,
    })
    expect(edgeClass(e('default/xwing', 'default/deathstar')!)).toBe('denied')
    expect(edgeClass(e('reserved:world', 'default/deathstar')!)).toBe('mixed')
    expect(edgeClass(e('default/deathstar', 'kube-system/coredns')!)).toBe('allowed')
  })

  it('renders an SVG with one group per node and edge, colours by verdict, callers left of callees', () => {
    const svg = renderServiceMapSvg(flows, { title: 'star <wars> & co' })
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trim().endsWith('</svg>')).toBe(true)
    expect(svg.match(/<g class="node /g)).toHaveLength(5)
    expect(svg.match(/<g class="edge /g)).toHaveLength(4)
    expect(svg).toContain('star &lt;wars&gt; &amp; co')
    expect(svg).toMatch(/class="edge denied"[^>]*data-from="default\/xwing"/)
    expect(svg).toContain('stroke="#c62828"')
    const x = (id: string) =>
      Number(new RegExp(`data-id="${id}"><title>[^<]*</title><rect x="(\\d+)"`).exec(svg)?.[1])
    expect(x('default/xwing')).toBeLessThan(x('default/deathstar'))
    expect(x('default/deathstar')).toBeLessThan(x('kube-system/coredns'))
  })

  it('handles an empty input and cycles', () => {
    expect(renderServiceMapSvg([])).toContain('</svg>')
    const cyc = [
      flow(['a', 'x'], ['a', 'y'], 1, Verdict.FORWARDED),
      flow(['a', 'y'], ['a', 'x'], 2, Verdict.FORWARDED),
      flow(['a', 'x'], ['a', 'x'], 3, Verdict.FORWARDED),
    ]
    const svg = renderServiceMapSvg(cyc)
    expect(svg.match(/<g class="edge /g)).toHaveLength(3)
  })

  it('colours audit verdicts apart and names the deciding policies (or says none is known)', () => {
    const named = { name: 'rule1', namespace: 'default', kind: 'CiliumNetworkPolicy' }
    const rule = { ...named, labels: ['k8s:io.cilium.k8s.policy.name=rule1'], revision: 2 }
    const audited = {
      ...flow(['default', 'xwing'], ['default', 'deathstar'], 80, Verdict.AUDIT),
      ingressDeniedBy: [rule],
    }
    const plain = flow(['default', 'tiefighter'], ['default', 'deathstar'], 80, Verdict.FORWARDED)
    const map = buildServiceMap([audited, plain])
    const [tie, xw] = map.edges
    expect(xw).toMatchObject({ from: 'default/xwing', audited: 1, unattributed: 0 })
    expect(xw!.policies).toEqual([{ verdict: 'audit', ...named }])
    expect(edgeClass(xw!)).toBe('audit')
    expect(tie).toMatchObject({ allowed: 1, unattributed: 1, policies: [] })
    const svg = renderServiceMapSvg(map)
    expect(svg).toMatch(
      /<g class="edge audit" data-from="default\/xwing"[^>]*><title>[^<]*audited by CiliumNetworkPolicy default\/rule1/,
    )
    expect(svg).toMatch(
      /<g class="edge allowed" data-from="default\/tiefighter"[^>]*><title>[^<]*policy unknown/,
    )
    expect(svg).toContain('stroke="#f9a825"')
  })
})

describe('service map of the Star Wars scenario (flows recorded from a real run)', () => {
  const map = buildServiceMap(starWarsFlows())

  it('draws one edge per ship to the deathstar service, no node for the proxy hop', () => {
    expect(map.nodes.map((n) => [n.id, n.kind])).toEqual([
      ['default/tiefighter', 'workload'],
      ['default/xwing', 'workload'],
      ['service:default/deathstar', 'service'],
    ])
    expect(map.edges.map((e) => [e.from, e.to])).toEqual([
      ['default/tiefighter', 'service:default/deathstar'],
      ['default/xwing', 'service:default/deathstar'],
    ])
  })

  it('counts connections, not events: the dropped SYN (trace, verdicts, drops, retry) is one denial', () => {
    const [tie, xw] = map.edges
    expect(xw).toMatchObject({ ports: ['TCP/80'], allowed: 1, denied: 1, audited: 0, l7: [] })
    expect(edgeClass(xw!)).toBe('mixed')
    // Four requests, four connections: step 1, step 2, step 3 POST, step 3 PUT.
    expect(tie).toMatchObject({ ports: ['TCP/80'], allowed: 4, denied: 0, audited: 0 })
    expect(edgeClass(tie!)).toBe('allowed')
  })

  it('puts the L7 verdicts on the edge the proxy serves', () => {
    expect(map.edges[0]!.l7).toEqual([
      { protocol: 'HTTP', request: 'POST /v1/request-landing', allowed: 1, denied: 0, audited: 0 },
      { protocol: 'HTTP', request: 'PUT /v1/exhaust-port', allowed: 0, denied: 1, audited: 0 },
    ])
    const svg = renderServiceMapSvg(map)
    expect(svg).toMatch(
      /<text class="l7 allowed" data-request="POST \/v1\/request-landing"[^>]*>POST \/v1\/request-landing 1 allowed</,
    )
    expect(svg).toMatch(
      /<text class="l7 denied" data-request="PUT \/v1\/exhaust-port"[^>]*>PUT \/v1\/exhaust-port 1 denied</,
    )
    expect(svg).not.toContain('host')
  })
})

describe('service map counting (property)', () => {
  const client = {
    namespace: 'default',
    podName: 'xwing',
    identity: 258,
    labels: ['k8s:app=xwing'],
  }
  const server = {
    namespace: 'default',
    podName: 'deathstar-1',
    identity: 256,
    labels: ['k8s:app=deathstar'],
  }
  /** The events the datapath reports for one packet of connection `port` (and its reply). */
  const event = (
    port: number,
    kind: 'trace' | 'egress' | 'ingress' | 'drop' | 'reply',
    verdict: number,
  ): Flow => {
    const reply = kind === 'reply'
    const f: Flow = {
      verdict: verdict as Flow['verdict'],
      Type: 1,
      IP: reply
        ? { source: '10.0.0.2', destination: '10.0.0.5', ipVersion: 1 }
        : { source: '10.0.0.5', destination: '10.0.0.2', ipVersion: 1 },
      l4: {
        TCP: reply
          ? { sourcePort: 80, destinationPort: port }
          : { sourcePort: port, destinationPort: 80 },
      },
      source: reply ? server : client,
      destination: reply ? client : server,
      isReply: { value: reply },
      eventType: {
        type: kind === 'trace' || kind === 'reply' ? 4 : kind === 'drop' ? 1 : 5,
        subType: 0,
      },
      ...(kind === 'trace' ? { traceObservationPoint: TraceObservationPoint.FROM_ENDPOINT } : {}),
      ...(kind === 'egress' || kind === 'ingress'
        ? { trafficDirection: kind === 'egress' ? 2 : 1 }
        : {}),
    }
    return f
  }
  const conn = fc.record({
    denied: fc.boolean(),
    audit: fc.boolean(),
    retries: fc.integer({ min: 1, max: 3 }),
  })

  it('any interleaving of the trace/verdict/drop events of N connections counts N connections', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1024, max: 65535 }), { minLength: 1, maxLength: 6 }),
        fc.array(conn, { minLength: 6, maxLength: 6 }),
        fc.infiniteStream(fc.nat()),
        (ports, kinds, picks) => {
          const events: Flow[] = []
          let want = { allowed: 0, denied: 0, audited: 0 }
          for (const [i, port] of ports.entries()) {
            const k = kinds[i]!
            for (let r = 0; r < k.retries; r++) {
              events.push(event(port, 'trace', Verdict.FORWARDED))
              events.push(event(port, 'egress', Verdict.FORWARDED))
              if (k.denied) {
                events.push(event(port, 'ingress', Verdict.DROPPED))
                events.push(event(port, 'drop', Verdict.DROPPED))
              } else if (k.audit) {
                events.push(event(port, 'ingress', Verdict.AUDIT))
                events.push(event(port, 'reply', Verdict.FORWARDED))
              } else {
                events.push(event(port, 'ingress', Verdict.FORWARDED))
                events.push(event(port, 'reply', Verdict.FORWARDED))
              }
            }
            const c = k.denied ? 'denied' : k.audit ? 'audited' : 'allowed'
            want = { ...want, [c]: want[c] + 1 }
          }
          // A random interleaving (Fisher-Yates driven by the stream).
          const it = picks[Symbol.iterator]()
          for (let i = events.length - 1; i > 0; i--) {
            const j = (it.next().value as number) % (i + 1)
            ;[events[i], events[j]] = [events[j]!, events[i]!]
          }
          const map = buildServiceMap(events)
          expect(map.edges).toHaveLength(1)
          expect(map.edges[0]).toMatchObject(want)
          expect(map.edges[0]!.unattributed).toBe(ports.length)
        },
      ),
    )
  })

  it('a connection decided by a named policy is attributed whatever the order of its events', () => {
    const named = { name: 'rule1', namespace: 'default', kind: 'CiliumNetworkPolicy' }
    const rule = [{ ...named, labels: [], revision: 1 }]
    fc.assert(
      fc.property(fc.boolean(), fc.infiniteStream(fc.nat()), (denied, picks) => {
        const v = denied ? Verdict.DROPPED : Verdict.FORWARDED
        const events: Flow[] = [
          event(4000, 'trace', Verdict.FORWARDED),
          {
            ...event(4000, 'ingress', v),
            ...(denied ? { ingressDeniedBy: rule } : { ingressAllowedBy: rule }),
          },
          denied ? event(4000, 'drop', v) : event(4000, 'reply', v),
        ]
        const it = picks[Symbol.iterator]()
        for (let i = events.length - 1; i > 0; i--) {
          const j = (it.next().value as number) % (i + 1)
          ;[events[i], events[j]] = [events[j]!, events[i]!]
        }
        const [e] = buildServiceMap(events).edges
        expect(e).toMatchObject({
          allowed: denied ? 0 : 1,
          denied: denied ? 1 : 0,
          unattributed: 0,
        })
        expect(e!.policies).toEqual([{ verdict: denied ? 'denied' : 'allowed', ...named }])
      }),
    )
  })
})
