import { describe, expect, it } from 'vitest'
import { eventLabel } from '../src/names'
import { starWarsFlows } from './_star-wars'

describe('eventLabel', () => {
  it('tells apart every kind of event of the Star Wars scenario (flows recorded from a real run)', () => {
    const flows = starWarsFlows()
    const seen = new Map<string, number>()
    for (const f of flows) seen.set(eventLabel(f), (seen.get(eventLabel(f)) ?? 0) + 1)
    expect(Object.fromEntries(seen)).toEqual({
      'policy verdict (egress)': 7,
      'policy verdict (ingress)': 8,
      'trace (from-endpoint)': 3,
      drop: 2,
      'trace (to-proxy)': 2,
      'L7 request': 2,
      'trace (to-endpoint)': 1,
      'L7 response': 1,
    })
    // The xwing's dropped SYN: a policy verdict and a drop, each named for what it is.
    const dropped = flows.filter((f) => f.verdict === 2 && f.Type === 1).map(eventLabel)
    expect(dropped).toEqual([
      'policy verdict (ingress)',
      'drop',
      'policy verdict (ingress)',
      'drop',
    ])
  })

  it('names sock traces and events it does not know', () => {
    expect(eventLabel({ verdict: 1, Type: 3, eventType: { type: 7, subType: 0 } })).toBe(
      'socket translation',
    )
    expect(eventLabel({ verdict: 1, Type: 1, eventType: { type: 99, subType: 0 } })).toBe(
      'unknown event',
    )
    expect(eventLabel({ verdict: 1, Type: 2, l7: { type: 3 } })).toBe('L7 record')
  })
})
