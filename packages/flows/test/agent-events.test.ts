import { describe, expect, it } from 'vitest'
import { type AgentEvent, AgentEventType } from '../src/agent-events'
import { FlowObserver } from '../src/observer'

const ep = (id: number): AgentEvent => ({
  type: AgentEventType.ENDPOINT_CREATED,
  endpointUpdate: { id, podName: `p${id}`, namespace: 'ns' },
})

async function ids(it: AsyncIterable<{ agentEvent?: AgentEvent }>, max = 100) {
  const out: number[] = []
  for await (const e of it) {
    out.push(e.agentEvent?.endpointUpdate?.id ?? -1)
    if (out.length >= max) break
  }
  return out
}

describe('GetAgentEvents reading (number, first, follow, since, ring capacity)', () => {
  it('last N, first N, all', async () => {
    const o = new FlowObserver({ nodeName: 'n' })
    for (const i of [1, 2, 3]) o.publishAgentEvent(ep(i))
    expect(await ids(o.getAgentEvents({ number: 2 }))).toEqual([2, 3])
    expect(await ids(o.getAgentEvents({ number: 1, first: true }))).toEqual([1])
    expect(await ids(o.getAgentEvents({}))).toEqual([1, 2, 3])
  })

  it('follow delivers events published after the call, and stops on abort', async () => {
    const o = new FlowObserver({ nodeName: 'n' })
    o.publishAgentEvent(ep(1))
    const ac = new AbortController()
    const got = ids(o.getAgentEvents({ follow: true }, ac.signal), 2)
    setTimeout(() => {
      o.publishAgentEvent(ep(2))
      o.publishAgentEvent(ep(3))
    }, 20)
    expect(await got).toEqual([2, 3])
    ac.abort()
  })

  it('since skips older events; the ring keeps only the newest', async () => {
    const o = new FlowObserver({ nodeName: 'n', agentEventCapacity: 2 })
    for (const i of [1, 2, 3]) o.publishAgentEvent(ep(i))
    expect(await ids(o.getAgentEvents({}))).toEqual([2, 3])
    const future = { seconds: Math.floor(Date.now() / 1000) + 3600, nanos: 0 }
    expect(await ids(o.getAgentEvents({ since: future }))).toEqual([])
  })
})
