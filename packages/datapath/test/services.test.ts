import { buildLookupTable, flowHash } from '@membrane/maglev'
import { u32 as u32Codec } from '@membrane/types'
import { describe, expect, it } from 'vitest'
import {
  lb4BackendCodec,
  lb4KeyCodec,
  lb4ServiceCodec,
  lbSlotKeyCodec,
  MAGLEV_TABLE_SIZE,
  ServiceMaps,
} from '../src'
import { flowHash4 } from '../src/hash'
import { FakeMap } from './_fake-map'

function maps() {
  return {
    services: new FakeMap({ keySize: 8, valueSize: 8 }),
    backends: new FakeMap({ keySize: 4, valueSize: 8 }),
    slots: new FakeMap({ keySize: 4, valueSize: 4 }),
    maglev: new FakeMap({ keySize: 4, valueSize: MAGLEV_TABLE_SIZE * 4 }),
  }
}

const three = [
  { address: '10.0.1.1', port: 8080 },
  { address: '10.0.1.2', port: 8080 },
  { address: '10.0.1.3', port: 8080 },
]

describe('ServiceMaps', () => {
  it('writes service, backends, slots and the Maglev table @membrane/maglev builds', () => {
    const m = maps()
    const s = new ServiceMaps(m).upsert({ address: '10.96.0.10', port: 80, backends: three })
    expect(s.id).toBe(1)
    const svc = lb4ServiceCodec.decode(
      m.services.lookup(
        lb4KeyCodec.encode({ address: '10.96.0.10', dport: 80, proto: 6, scope: 0 }),
      ) as Buffer,
    )
    expect(svc).toEqual({ count: 3, revNatIndex: 1, algorithm: 2, flags: 0 })
    for (let slot = 1; slot <= 3; slot++) {
      const id = u32Codec.decode(
        m.slots.lookup(lbSlotKeyCodec.encode({ revNatIndex: 1, slot })) as Buffer,
      )
      const be = lb4BackendCodec.decode(m.backends.lookup(u32Codec.encode(id)) as Buffer)
      expect(be).toEqual({ address: three[slot - 1]?.address, port: 8080, proto: 6, flags: 0 })
    }
    const expected = buildLookupTable(
      s.backends.map((b) => ({
        id: b.id,
        address: b.address,
        port: b.port,
        protocol: 'TCP' as const,
      })),
      { tableSize: MAGLEV_TABLE_SIZE },
    )
    expect(new ServiceMaps(m).maglevTable(1)).toEqual(expected)
  })

  it('a removed backend drains: out of slots and table, still in the backends map until GC', () => {
    const m = maps()
    const sm = new ServiceMaps(m)
    const s1 = sm.upsert({ address: '10.96.0.10', port: 80, backends: three })
    const gone = s1.backends[1]?.id as number
    const s2 = sm.upsert({
      address: '10.96.0.10',
      port: 80,
      backends: [three[0], three[2]] as typeof three,
    })
    expect(s2.backends.map((b) => b.id)).not.toContain(gone)
    expect([...(sm.maglevTable(s2.id) ?? [])]).not.toContain(gone)
    expect(m.slots.store.size).toBe(2)
    const be = lb4BackendCodec.decode(m.backends.lookup(u32Codec.encode(gone)) as Buffer)
    expect(be.flags).toBe(1) // DRAINING
    expect(sm.gcBackends(new Set([gone]))).toEqual([]) // a connection still uses it
    expect(sm.gcBackends(new Set())).toEqual([gone])
    expect(m.backends.lookup(u32Codec.encode(gone))).toBeUndefined()
  })

  it('shares backend ids between services and recovers its state from the maps', () => {
    const m = maps()
    const sm = new ServiceMaps(m)
    const a = sm.upsert({ address: '10.96.0.10', port: 80, backends: three })
    const b = sm.upsert({
      address: '10.96.0.11',
      port: 80,
      algorithm: 'random',
      backends: three.slice(0, 2),
    })
    expect(b.id).toBe(2)
    expect(b.backends.map((x) => x.id)).toEqual(a.backends.slice(0, 2).map((x) => x.id))
    expect(m.maglev.store.size).toBe(1) // random service has no table
    const again = new ServiceMaps(m)
    expect(again.list().map((s) => [s.id, s.algorithm, s.backends.length])).toEqual([
      [1, 'maglev', 3],
      [2, 'random', 2],
    ])
    // Unchanged upsert after recovery: the table is not rewritten.
    const writes = m.maglev.updates
    again.upsert({ address: '10.96.0.10', port: 80, backends: three })
    expect(m.maglev.updates).toBe(writes)
    expect(again.delete('10.96.0.10', 80)).toBe(true)
    expect(m.services.store.size).toBe(1)
  })

  it('rejects bad input without writing', () => {
    const m = maps()
    const sm = new ServiceMaps(m)
    expect(() =>
      sm.upsert({ address: '10.96.0.10', port: 80, backends: [{ address: 'x', port: 1 }] }),
    ).toThrowError(/service\.backends\[0\]\.address: expected an IPv4 address/)
    expect(() => sm.upsert({ address: '10.96.0.10', port: 0, backends: [] })).toThrowError(
      /service\.port/,
    )
    expect(m.services.store.size + m.backends.store.size).toBe(0)
  })

  it('flowHash4 is @membrane/maglev flowHash (the slot hash of lib/lb.h)', () => {
    expect(flowHash4({ saddr: '10.0.0.1', sport: 12345, dport: 80 })).toBe(
      flowHash({ saddr: '10.0.0.1', sport: 12345, dport: 80, protocol: 'TCP' }),
    )
  })
})
