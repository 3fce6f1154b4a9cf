/**
 * The HTTP proxy's records name the policies that decided (policy attribution), with both
 * engines: the policy of the matching rule on an allow, every policy with L7 rules on the port
 * on a denial — what `policy trace` names (@membrane/policy's l7Attribution).
 */
import type { L7Policy } from '@membrane/policy'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  HttpProxy,
  type L7ProxyRecord,
  StaticOriginResolver,
  staticPolicySource,
} from '../src/index'
import { rawExchange, startUpstream, type Upstream } from './_http'

const A = 'CiliumNetworkPolicy/default/rule-a'
const B = 'CiliumNetworkPolicy/default/rule-b'
const POLICY: L7Policy = {
  parser: 'http',
  wildcard: false,
  rules: [
    {
      id: `${A}:spec.ingress[0]`,
      rules: { parser: 'http', http: [{ method: 'GET', path: '/a' }] },
    },
    {
      id: `${B}:spec.ingress[0]`,
      rules: { parser: 'http', http: [{ method: 'GET', path: '/b' }] },
    },
  ],
  policies: [A, B],
}

describe('HTTP records carry the deciding policies', () => {
  let upstream: Upstream
  const proxies: Record<'fast' | 'node', HttpProxy> = {} as never
  const records: Record<'fast' | 'node', L7ProxyRecord[]> = { fast: [], node: [] }

  beforeAll(async () => {
    upstream = await startUpstream()
    for (const engine of ['fast', 'node'] as const) {
      proxies[engine] = new HttpProxy({
        engine,
        origins: new StaticOriginResolver({
          fallback: {
            address: '127.0.0.1',
            port: upstream.port,
            srcIdentity: 1,
            dstIdentity: 2,
            endpointId: 1,
            direction: 'ingress',
          },
        }),
        policy: staticPolicySource(POLICY),
        markSockets: false,
        onRecord: (r) => records[engine].push(r),
      })
      await proxies[engine].listen({ host: '127.0.0.1' })
    }
  })

  afterAll(async () => {
    await proxies.fast?.close()
    await proxies.node?.close()
    await upstream?.close()
  })

  for (const engine of ['fast', 'node'] as const) {
    it(`${engine}: allowed by rule-b's rule names rule-b; a denial names both`, async () => {
      const get = (path: string) =>
        rawExchange(
          proxies[engine].port,
          `GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`,
        )
      expect((await get('/b')).slice(9, 12)).toBe('200')
      expect((await get('/c')).slice(9, 12)).toBe('403')
      const requests = records[engine].filter((r) => r.type === 'request')
      expect(requests.map((r) => [r.verdict, r.policies])).toEqual([
        ['forwarded', [B]],
        ['denied', [A, B]],
      ])
    })
  }
})
