/** ProxyMap: the lookup picks mb_proxy4 or mb_proxy6 by the client's address family. */

import { parseIp } from '@membrane/types'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ProxyMap,
  proxy4KeyCodec,
  proxy4ValueCodec,
  proxy6KeyCodec,
  proxy6ValueCodec,
} from '../src'

const parseIpv6 = (a: string) =>
  parseIp(a)?.family === 6 ? Buffer.from((parseIp(a) as { bytes: Uint8Array }).bytes) : undefined

import { FakeMap } from './_fake-map'

function maps() {
  const map4 = new FakeMap({ type: 'lru_hash', keySize: 8, valueSize: 20 })
  const map6 = new FakeMap({ type: 'lru_hash', keySize: 20, valueSize: 32 })
  return { map4, map6, proxy: new ProxyMap(map4, map6) }
}

const VALUE = { srcIdentity: 1000, dstIdentity: 2000, endpointId: 7, direction: 1 }

describe('ProxyMap', () => {
  it('IPv4 clients (also as ::ffff:a.b.c.d) are read from mb_proxy4, IPv6 ones from mb_proxy6', () => {
    const { map4, map6, proxy } = maps()
    map4.update(
      proxy4KeyCodec.encode({ clientIp: '10.0.1.10', clientPort: 40000, proto: 6 }),
      proxy4ValueCodec.encode({ origDaddr: '10.0.2.5', origDport: 80, ...VALUE }),
    )
    map6.update(
      proxy6KeyCodec.encode({ clientIp: 'fd00:1::10', clientPort: 40000, proto: 6 }),
      proxy6ValueCodec.encode({ origDaddr: 'fd00:2::5', origDport: 8080, ...VALUE, direction: 0 }),
    )
    const v4 = {
      address: '10.0.2.5',
      port: 80,
      srcIdentity: 1000,
      dstIdentity: 2000,
      endpointId: 7,
      direction: 'egress',
    }
    expect(proxy.lookup('10.0.1.10', 40000)).toEqual(v4)
    expect(proxy.lookup('::ffff:10.0.1.10', 40000, 'TCP')).toEqual(v4)
    expect(proxy.lookup('::FFFF:10.0.1.10', 40000, 6)).toEqual(v4)
    expect(proxy.lookup('fd00:1::10', 40000)).toEqual({
      address: 'fd00:2::5',
      port: 8080,
      srcIdentity: 1000,
      dstIdentity: 2000,
      endpointId: 7,
      direction: 'ingress',
    })
    // The same address written differently is the same key.
    expect(proxy.lookup('fd00:1:0:0:0:0:0:10', 40000)?.port).toBe(8080)
    // Other port, protocol or family: nothing.
    expect(proxy.lookup('fd00:1::10', 40001)).toBeUndefined()
    expect(proxy.lookup('fd00:1::10', 40000, 'UDP')).toBeUndefined()
    expect(proxy.lookup('fd00:1::10', 40000, 'SCTP' as 'TCP')).toBeUndefined()
    expect(proxy.lookup('not-an-address', 40000)).toBeUndefined()
  })

  it('without mb_proxy6 (older objects) IPv6 clients have no origin', () => {
    const map4 = new FakeMap({ type: 'lru_hash', keySize: 8, valueSize: 20 })
    expect(new ProxyMap(map4).lookup('fd00:1::10', 40000)).toBeUndefined()
  })

  it('any IPv6 record written the way the datapath writes it is found by its client (property)', () => {
    const v6 = fc.ipV6().filter((a) => !/^::ffff:\d/i.test(a) && parseIpv6(a) !== undefined)
    fc.assert(
      fc.property(
        v6,
        fc.nat(0xffff),
        fc.constantFrom(6, 17),
        v6,
        fc.nat(0xffff),
        (client, port, proto, dst, dport) => {
          const { map6, proxy } = maps()
          // The datapath writes the 16 address bytes; the key codec must produce the same.
          const key = Buffer.alloc(20)
          ;(parseIpv6(client) as Buffer).copy(key, 0)
          key.writeUInt16BE(port, 16)
          key[18] = proto
          map6.update(key, proxy6ValueCodec.encode({ origDaddr: dst, origDport: dport, ...VALUE }))
          const got = proxy.lookup(client, port, proto)
          expect(got?.port).toBe(dport)
          expect(parseIpv6(got?.address as string)).toEqual(parseIpv6(dst))
        },
      ),
      { numRuns: 200 },
    )
  })
})
