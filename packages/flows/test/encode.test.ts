import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fastEncodeFramedResponse } from '../src/_encode'
import { shared as share } from '../src/_shared'
import { decodeFlow, decodeFlowsResponse, encodeFlow, encodeFlowReference } from '../src/proto'
import type { Endpoint, Flow } from '../src/types'

const u32 = fc.integer({ min: 1, max: 0xffffffff })
const small = fc.integer({ min: 1, max: 200 })
const text = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' })
const longText = fc.string({ minLength: 100, maxLength: 400 })

const endpointArb: fc.Arbitrary<Endpoint> = fc.record(
  {
    ID: u32,
    identity: u32,
    namespace: text,
    labels: fc.array(fc.oneof(text, longText), { maxLength: 6 }),
    podName: text,
    workloads: fc.array(fc.record({ name: text, kind: text }), { minLength: 1, maxLength: 2 }),
    clusterName: text,
  },
  { requiredKeys: [] },
)
const policyArb = fc.record(
  {
    name: text,
    namespace: text,
    labels: fc.array(text, { minLength: 1, maxLength: 3 }),
    revision: u32,
    kind: text,
  },
  { requiredKeys: ['name'] },
)
const policiesArb = fc.array(policyArb, { minLength: 1, maxLength: 3 })
const portsArb = fc.record({
  sourcePort: fc.integer({ min: 1, max: 65535 }),
  destinationPort: fc.integer({ min: 1, max: 65535 }),
})
const l4Arb = fc.oneof(
  fc.record({
    TCP: fc.record({
      sourcePort: fc.integer({ min: 1, max: 65535 }),
      destinationPort: fc.integer({ min: 1, max: 65535 }),
      flags: fc.record(
        { SYN: fc.constant(true), ACK: fc.constant(true), NS: fc.constant(true) },
        { requiredKeys: [] },
      ),
    }),
  }),
  fc.record({ UDP: portsArb }),
  fc.record({ SCTP: portsArb }),
  fc.record({ ICMPv4: fc.record({ type: small, code: small }) }),
  fc.record({ ICMPv6: fc.record({ type: small, code: small }) }),
)
const l7Arb = fc
  .record(
    {
      type: fc.constantFrom(1, 2, 3),
      latencyNs: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    },
    { requiredKeys: [] },
  )
  .chain((base) =>
    fc
      .oneof(
        fc.record({
          http: fc.record(
            {
              code: small,
              method: text,
              url: longText,
              protocol: text,
              headers: fc.array(fc.record({ key: text, value: text }), {
                minLength: 1,
                maxLength: 3,
              }),
            },
            { requiredKeys: [] },
          ),
        }),
        fc.record({
          dns: fc.record(
            {
              query: text,
              ips: fc.array(text, { minLength: 1 }),
              ttl: u32,
              cnames: fc.array(text, { minLength: 1 }),
              observationSource: text,
              rcode: small,
              qtypes: fc.array(text, { minLength: 1 }),
              rrtypes: fc.array(text, { minLength: 1 }),
            },
            { requiredKeys: [] },
          ),
        }),
        fc.record({
          kafka: fc.record(
            {
              errorCode: fc.integer({ min: -100, max: 100 }).filter((x) => x !== 0),
              apiVersion: small,
              apiKey: text,
              correlationId: u32.map((x) => x & 0x7fffffff).filter((x) => x !== 0),
              topic: text,
            },
            { requiredKeys: [] },
          ),
        }),
      )
      .map((r) => ({ ...base, ...r })),
  )

const flowArb: fc.Arbitrary<Flow> = fc
  .record(
    {
      time: fc.record({
        seconds: fc.integer({ min: 1, max: 2 ** 40 }),
        nanos: fc.integer({ min: 1, max: 999_999_999 }),
      }),
      uuid: text,
      dropReason: small,
      ethernet: fc.record({ source: text, destination: text }),
      IP: fc.record({ source: text, destination: text, ipVersion: fc.constantFrom(1, 2) }),
      l4: l4Arb,
      source: endpointArb,
      destination: endpointArb,
      nodeName: text,
      nodeLabels: fc.array(text, { minLength: 1, maxLength: 3 }),
      egressAllowedBy: policiesArb,
      ingressAllowedBy: policiesArb,
      egressDeniedBy: policiesArb,
      ingressDeniedBy: policiesArb,
      policyLog: fc.array(text, { minLength: 1, maxLength: 2 }),
      sourceNames: fc.array(text, { minLength: 1, maxLength: 3 }),
      destinationNames: fc.array(text, { minLength: 1, maxLength: 3 }),
      l7: l7Arb,
      eventType: fc.record({ type: small, subType: small }),
      sourceService: fc.record({ name: text, namespace: text }),
      destinationService: fc.record({ name: text, namespace: text }),
      trafficDirection: fc.constantFrom(1, 2),
      policyMatchType: small,
      traceObservationPoint: fc.constantFrom(1, 5, 101),
      dropReasonDesc: fc.constantFrom(133, 181),
      isReply: fc.record({ value: fc.boolean() }),
      interface: fc.record({ index: u32, name: text }),
      proxyPort: fc.integer({ min: 1, max: 65535 }),
      sockXlatePoint: fc.constantFrom(1, 2, 3, 4),
      socketCookie: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }).map(String),
    },
    { requiredKeys: [] },
  )
  .map((r) => ({ verdict: 2, Type: 1, ...r }) as Flow)

describe('fast Flow encoder', () => {
  it('decodes (with protobufjs) to the same Flow as the protobufjs encoder (fast-check)', () => {
    fc.assert(
      fc.property(flowArb, (flow) => {
        const fast = decodeFlow(encodeFlow(flow))
        const ref = decodeFlow(encodeFlowReference(flow))
        expect(fast).toEqual(ref)
      }),
      { numRuns: 400 },
    )
  })

  it('reuses the bytes of shared endpoints correctly, short and long', () => {
    fc.assert(
      fc.property(flowArb, endpointArb, endpointArb, (flow, a, b) => {
        const shared = { ...flow, source: share(a), destination: share(b) }
        const ref = decodeFlow(encodeFlowReference(shared))
        expect(decodeFlow(encodeFlow(shared))).toEqual(ref) // fills the cache
        expect(decodeFlow(encodeFlow(shared))).toEqual(ref) // served from the cache
      }),
      { numRuns: 300 },
    )
  })

  it('frames GetFlowsResponse with a correct gRPC header', () => {
    fc.assert(
      fc.property(flowArb, text, (flow, nodeName) => {
        const framed = fastEncodeFramedResponse({ flow, nodeName, time: flow.time })
        expect(framed[0]).toBe(0)
        expect(framed.readUInt32BE(1)).toBe(framed.length - 5)
        const r = decodeFlowsResponse(framed.subarray(5))
        expect(r.nodeName).toBe(nodeName)
        expect(r.flow).toEqual(decodeFlow(encodeFlowReference(flow)))
      }),
      { numRuns: 200 },
    )
  })
})
