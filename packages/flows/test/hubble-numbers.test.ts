import { describe, expect, it } from 'vitest'
import { dropReasonName } from '../src/drop-reasons'
import { observationPointName } from '../src/names'
import { protoRoot } from '../src/proto'
import { HUBBLE_ENUMS, HUBBLE_FIELDS } from './_hubble-api'

// Our .proto against Hubble's facts (./_hubble-api.ts): every field we declare exists in Hubble
// with the same number and shape; FlowFilter declares every field Hubble has (each is honoured
// or refused by name, see hubble-client.test.ts); every enum value Hubble names, we name alike.

// protobufjs camel-cases names; map them back (flow.IP spells its field `ipVersion` in the .proto).
const snake = (message: string, camel: string) =>
  (message === 'flow.IP' && camel === 'ipVersion') || /^[A-Z]/.test(camel)
    ? camel
    : camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()

const ours = protoRoot()
const shared = Object.keys(HUBBLE_FIELDS).filter((name) => {
  try {
    ours.lookupType(name)
    return true
  } catch {
    return false
  }
})

describe("our .proto agrees with Hubble's numbers", () => {
  it('covers the messages clients use', () => {
    for (const m of [
      'flow.Flow',
      'flow.FlowFilter',
      'flow.Policy',
      'flow.AgentEvent',
      'observer.GetFlowsRequest',
      'observer.GetAgentEventsResponse',
      'observer.GetNamespacesResponse',
      'observer.ServerStatusResponse',
    ])
      expect(shared).toContain(m)
  })

  it.each(shared)('%s: every field we declare is Hubble’s, same number and shape', (name) => {
    const facts = new Map(HUBBLE_FIELDS[name]?.map((f) => [f.name, f]))
    for (const f of ours.lookupType(name).fieldsArray) {
      const fact = facts.get(snake(name, f.name))
      expect({ field: f.name, id: fact?.id, repeated: fact?.repeated }).toEqual({
        field: f.name,
        id: f.id,
        repeated: f.repeated,
      })
    }
  })

  it('flow.FlowFilter declares every field Hubble has', () => {
    const declared = ours.lookupType('flow.FlowFilter').fieldsArray.map((f) => f.id)
    for (const f of HUBBLE_FIELDS['flow.FlowFilter'] ?? [])
      expect({ [f.name]: declared.includes(f.id) }).toEqual({ [f.name]: true })
  })

  it('Flow fields Membrane adds after the facts are the last ones declared (new fields at the end)', () => {
    const ids = ours.lookupType('flow.Flow').fieldsArray.map((f) => f.id)
    expect(ids.slice(-6)).toEqual([37, 21001, 21002, 21004, 21005, 21006])
  })

  it.each(Object.entries(HUBBLE_ENUMS).filter(([n]) => shared.includes(n) || ours.lookup(n)))(
    '%s: every value Hubble names has the same number in ours',
    (name, values) => {
      const e = ours.lookupEnum(name)
      for (const [k, v] of Object.entries(values)) expect({ [k]: e.values[k] }).toEqual({ [k]: v })
    },
  )

  it('every Hubble DropReason and TraceObservationPoint has its name in flows', () => {
    for (const [k, v] of Object.entries(HUBBLE_ENUMS['flow.DropReason'] ?? {}))
      expect({ [v]: dropReasonName(v) }).toEqual({ [v]: k })
    for (const [k, v] of Object.entries(HUBBLE_ENUMS['flow.TraceObservationPoint'] ?? {}))
      expect({ [v]: observationPointName(v) }).toEqual({ [v]: k })
  })
})
