import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FlowObserver, REDACTED, redactFlow } from '../src/index'
import type { Flow } from '../src/types'

const record = {
  source: { ip: '10.0.0.1', port: 40000 },
  destination: { ip: '10.0.0.2', port: 80 },
  http: {
    method: 'GET',
    url: 'http://alice:s3cret@deathstar/v1/plans?token=abc123&x=1#top',
    headers: [
      { key: 'Authorization', value: 'Bearer abc123' },
      { key: 'Cookie', value: 'session=42' },
      { key: 'Accept', value: 'text/plain' },
    ],
  },
}

describe('L7 flow redaction', () => {
  it('is on by default: no query, no URL password, no credential headers', () => {
    const f = new FlowObserver({ nodeName: 'n' }).ingestL7(structuredClone(record))
    expect(f.l7?.http?.url).toBe(`http://alice:${REDACTED}@deathstar/v1/plans#top`)
    expect(f.l7?.http?.headers).toEqual([
      { key: 'Authorization', value: REDACTED },
      { key: 'Cookie', value: REDACTED },
      { key: 'Accept', value: 'text/plain' },
    ])
    expect(JSON.stringify(f)).not.toMatch(/abc123|s3cret|session=42/)
  })
  it('keeps everything when turned off', () => {
    const f = new FlowObserver({ nodeName: 'n', redact: { enabled: false } }).ingestL7(
      structuredClone(record),
    )
    expect(f.l7?.http).toMatchObject(record.http)
  })
  it('follows an allow list or a deny list of headers, any case', () => {
    const allow = new FlowObserver({ redact: { httpHeadersAllow: ['accept'] } }).ingestL7(
      structuredClone(record),
    )
    expect(allow.l7?.http?.headers?.map((h) => h.value)).toEqual([REDACTED, REDACTED, 'text/plain'])
    const deny = new FlowObserver({ redact: { httpHeadersDeny: ['ACCEPT'] } }).ingestL7(
      structuredClone(record),
    )
    expect(deny.l7?.http?.headers?.map((h) => h.value)).toEqual([
      'Bearer abc123',
      'session=42',
      REDACTED,
    ])
  })
  it('never leaves a query value in any URL', () => {
    fc.assert(
      fc.property(
        fc.webUrl({ withQueryParameters: true, withFragments: true }),
        fc.stringMatching(/^[A-Za-z0-9]{12}$/),
        (url, secret) => {
          const u = new URL(url)
          u.searchParams.set('token', secret)
          const flow = { l7: { http: { url: u.toString() } } } as Flow
          const out = redactFlow(flow).l7?.http?.url ?? ''
          expect(out).not.toContain(secret)
          expect(out.split('#')[0]).not.toContain('?')
          expect(out.startsWith(`${u.protocol}//`)).toBe(true)
        },
      ),
    )
  })
})
