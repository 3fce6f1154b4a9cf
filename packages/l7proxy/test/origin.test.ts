/** datapathOriginResolver hands the datapath the client address it recorded. */

import { unmapIp } from '@membrane/types'
import { describe, expect, it } from 'vitest'
import { datapathOriginResolver, type ProxyOrigin } from '../src'

const ORIGIN: ProxyOrigin = {
  address: 'fd00:2::5',
  port: 8080,
  srcIdentity: 1000,
  dstIdentity: 2000,
  endpointId: 7,
  direction: 'egress',
}

describe('datapathOriginResolver', () => {
  it('passes IPv6 peers through and unmaps IPv4-mapped ones', () => {
    const asked: [string, number, unknown][] = []
    const resolver = datapathOriginResolver({
      lookupProxyOrigin: (ip, port, protocol) => {
        asked.push([ip, port, protocol])
        return ip === 'fd00:1::10' ? ORIGIN : undefined
      },
    })
    expect(resolver.resolve({ address: 'fd00:1::10', port: 40000, protocol: 'TCP' })).toEqual(
      ORIGIN,
    )
    expect(resolver.resolve({ address: '::ffff:10.0.1.10', port: 40001, protocol: 'UDP' })).toBe(
      undefined,
    )
    expect(asked).toEqual([
      ['fd00:1::10', 40000, 'TCP'],
      ['10.0.1.10', 40001, 'UDP'],
    ])
    // An IPv6 address ending in a dotted quad that is not IPv4-mapped stays as it is.
    expect(unmapIp('64:ff9b::10.0.0.1')).toBe('64:ff9b::10.0.0.1')
  })
})
