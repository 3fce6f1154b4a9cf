import { spawnSync } from 'node:child_process'
import { describeKernel } from '@membrane/test-utils'
import { describe, expect, it } from 'vitest'
import { eventToFlow } from '../src/convert'
import { decodeEvent, EventType, encodeEvent } from '../src/event'
import {
  decodeFlow,
  decodeFlowsResponse,
  encodeFlow,
  encodeFlowReference,
  encodeFlowsResponse,
  PROTO_DIR,
  PROTO_FILES,
  protoRoot,
} from '../src/proto'
import { type Flow, LostEventSource } from '../src/types'

function sampleFlow(): Flow {
  const flow = eventToFlow(
    decodeEvent(
      encodeEvent({
        type: EventType.DROP,
        subtype: 181,
        direction: 2,
        protocol: 6,
        tcpFlags: 0x12,
        sport: 33000,
        dport: 443,
        saddr: '10.1.2.3',
        daddr: '192.0.2.7',
        srcIdentity: 4242,
        dstIdentity: 2,
        endpointId: 17,
        ktimeNs: 1_000_000_123,
      }),
    ),
    {
      nodeName: 'node-1',
      clock: {
        toTimestamp: () => ({ seconds: 1_700_000_000, nanos: 123 }),
        now: () => ({ seconds: 0, nanos: 0 }),
      },
    },
  )
  if (!flow) throw new Error('no flow')
  return flow
}

describe('Flow protobuf', () => {
  it('encodes and decodes a flow losslessly (first encode fills the shared parts, second reuses them)', () => {
    const flow = sampleFlow()
    expect(decodeFlow(encodeFlow(flow))).toEqual(flow)
    expect(Buffer.from(encodeFlow(sampleFlow())).equals(Buffer.from(encodeFlow(flow)))).toBe(true)
    expect(decodeFlow(encodeFlow(sampleFlow()))).toEqual(decodeFlow(encodeFlowReference(flow)))
  })

  it('uses Hubble field numbers (checked on the loaded schema)', () => {
    const t = protoRoot().lookupType('flow.Flow')
    const numbers = Object.fromEntries(Object.values(t.fields).map((f) => [f.name, f.id]))
    expect(numbers).toMatchObject({
      time: 1,
      verdict: 2,
      dropReason: 3,
      ethernet: 4,
      IP: 5,
      l4: 6,
      source: 8,
      destination: 9,
      Type: 10,
      nodeName: 11,
      sourceNames: 13,
      destinationNames: 14,
      l7: 15,
      eventType: 19,
      sourceService: 20,
      destinationService: 21,
      trafficDirection: 22,
      policyMatchType: 23,
      traceObservationPoint: 24,
      dropReasonDesc: 25,
      isReply: 26,
      interface: 28,
      proxyPort: 29,
      sockXlatePoint: 31,
      socketCookie: 32,
      uuid: 34,
    })
  })

  it('GetFlowsResponse around cached flow bytes, and a lost-events response', () => {
    const flow = sampleFlow()
    const bytes = encodeFlowsResponse({ flowBytes: encodeFlow(flow) }, 'node-1', flow.time)
    expect(decodeFlowsResponse(bytes)).toEqual({ flow, nodeName: 'node-1', time: flow.time })
    const lost = encodeFlowsResponse(
      { lost: { source: LostEventSource.HUBBLE_RING_BUFFER, numEventsLost: 12 } },
      'node-1',
      undefined,
    )
    expect(decodeFlowsResponse(lost)).toEqual({
      nodeName: 'node-1',
      lostEvents: { source: LostEventSource.HUBBLE_RING_BUFFER, numEventsLost: 12 },
    })
  })
})

describeKernel('protoc --decode reads our bytes', ['bin:protoc'], () => {
  it('decodes a serialized Flow with the expected field values', () => {
    const bytes = encodeFlow(sampleFlow())
    const r = spawnSync(
      'protoc',
      ['-I', PROTO_DIR, '-I', '/usr/include', '--decode=flow.Flow', PROTO_FILES.flow],
      { input: Buffer.from(bytes), encoding: 'utf8' },
    )
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const text = r.stdout
    expect(text).toContain('verdict: DROPPED')
    expect(text).toContain('drop_reason_desc: POLICY_DENY')
    expect(text).toContain('drop_reason: 181')
    expect(text).toMatch(/time \{\s+seconds: 1700000000\s+nanos: 123\s+\}/)
    expect(text).toMatch(
      /IP \{\s+source: "10.1.2.3"\s+destination: "192.0.2.7"\s+ipVersion: IPv4\s+\}/,
    )
    expect(text).toMatch(
      /TCP \{\s+source_port: 33000\s+destination_port: 443\s+flags \{\s+SYN: true\s+ACK: true\s+\}/,
    )
    expect(text).toMatch(/source \{\s+ID: 17\s+identity: 4242\s+\}/)
    expect(text).toContain('Type: L3_L4')
    expect(text).toContain('node_name: "node-1"')
    expect(text).toContain('traffic_direction: EGRESS')
    expect(text).toMatch(/event_type \{\s+type: 1\s+sub_type: 181\s+\}/)
    expect(text).toMatch(/is_reply \{\s+\}/)
  })

  it('decodes by raw field numbers (no schema) as Hubble numbers them', () => {
    const r = spawnSync('protoc', ['--decode_raw'], {
      input: Buffer.from(encodeFlow(sampleFlow())),
      encoding: 'utf8',
    })
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^2: 2$/m) // verdict = DROPPED
    expect(r.stdout).toMatch(/^25: 181$/m) // drop_reason_desc
    expect(r.stdout).toMatch(/^10: 1$/m) // Type = L3_L4
    expect(r.stdout).toMatch(/^11: "node-1"$/m) // node_name
    expect(r.stdout).toMatch(/^22: 2$/m) // traffic_direction = EGRESS
  })
})
