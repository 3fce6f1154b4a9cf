import { describe, expect, it } from 'vitest'
import { buildServiceMap, edgeClass, renderServiceMapSvg } from '../src/servicemap'
import { type Flow, Verdict } from '../src/types'

function flow(
  src: [string, string] | 'world',
  dst: [string, string],
  port: number,
  verdict: number,
  reply = false,
): Flow {
  const ep = (x: [string, string] | 'world') =>
    x === 'world'
      ? { identity: 2, labels: ['reserved:world'] }
      : { namespace: x[0], podName: `${x[1]}-7d9f8b6c5d-abcde`, labels: [`k8s:app=${x[1]}`] }
  const f: Flow = {
    verdict: verdict as Flow['verdict'],
    Type: 1,
    IP: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 1 },
    l4: { TCP: { sourcePort: 40000, destinationPort: port } },
    source: ep(src),
    destination: ep(dst),
    isReply: { value: reply },
  }
  if (reply) {
    ;[f.source, f.destination] = [f.destination, f.source]
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
    flow('world', ['default', 'deathstar'], 80, Verdict.DROPPED),
  ]

  it('aggregates by workload (app label), folds replies into the request edge', () => {
    const map = buildServiceMap(flows)
    expect(map.nodes.map((n) => n.id)).toEqual([
      'default/deathstar',
      'default/tiefighter',
      'default/xwing',
      'kube-system/coredns',
      'reserved:world',
    ])
    const e = (from: string, to: string) => map.edges.find((x) => x.from === from && x.to === to)
    expect(e('default/tiefighter', 'default/deathstar')).toMatchObject({
      port: 'TCP/80',
      allowed: 2,
      denied: 0,
    })
    expect(edgeClass(e('default/xwing', 'default/deathstar') as never)).toBe('denied')
    expect(edgeClass(e('reserved:world', 'default/deathstar') as never)).toBe('mixed')
    expect(edgeClass(e('default/deathstar', 'kube-system/coredns') as never)).toBe('allowed')
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
})
