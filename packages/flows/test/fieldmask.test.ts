import { describe, expect, it } from 'vitest'
import { compileFieldMask } from '../src/fieldmask'
import { FilterError } from '../src/filter'
import { type Flow, FlowType, Verdict } from '../src/types'

const flow: Flow = {
  verdict: Verdict.DROPPED,
  Type: FlowType.L3_L4,
  uuid: 'u',
  source: { identity: 5, podName: 'a', labels: ['k8s:app=a'] },
  destination: { identity: 6, podName: 'b' },
  l4: { TCP: { sourcePort: 1, destinationPort: 2 } },
}

describe('field_mask', () => {
  it('keeps only the named paths (proto names), a shorter path winning', () => {
    const m = compileFieldMask(['source.pod_name', 'destination', 'destination.identity', 'uuid'])
    expect(m?.apply(flow)).toEqual({
      uuid: 'u',
      source: { podName: 'a' },
      destination: { identity: 6, podName: 'b' },
    })
  })

  it('an empty mask means the whole flow', () => {
    expect(compileFieldMask([])).toBeUndefined()
  })

  it('refuses unknown fields and paths through repeated or scalar fields, naming each', () => {
    const bad = ['source.nope', 'source.workloads.name', 'verdict.x', 'l4.TCP.source_port']
    let err: unknown
    try {
      compileFieldMask(bad)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FilterError)
    const msg = (err as Error).message
    for (const p of bad.slice(0, 3)) expect(msg).toContain(`'${p}'`)
    expect(msg).not.toContain("'l4.TCP.source_port'")
  })
})
