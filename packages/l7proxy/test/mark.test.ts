/**
 * Upstream sockets carry SO_MARK from their SYN on (so the destination's datapath never sees
 * an unmarked packet of a proxied connection and does not redirect it again).
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { describeKernel, TestNetwork } from '@membrane/test-utils'
import { proxyMark as upstreamMark } from '@membrane/types'
import { afterAll, expect, it } from 'vitest'
import { upstreamMarkFor } from '../src/index'

const FIXTURE = fileURLToPath(new URL('./fixtures/mark-check.ts', import.meta.url))
const TSX = createRequire(import.meta.url).resolve('tsx')

it('upstreamMarkFor marks identities of 16 bits and falls back to world', () => {
  expect(upstreamMarkFor(12345)).toBe(0x30390a00)
  // CIDR identities do not fit: world, never a truncated (other) identity.
  expect(upstreamMarkFor((1 << 24) | 5)).toBe(upstreamMark(2))
  expect(upstreamMarkFor(1001)).toBe(upstreamMark(1001))
})

describeKernel('connectMarked', ['root', 'netns'], () => {
  const net = new TestNetwork()
  afterAll(() => net.cleanup())

  it('marks the SYN: the accepted socket inherits the mark (tcp_fwmark_accept)', async () => {
    const ns = await net.namespace()
    const mark = upstreamMark(4242)
    const { stdout } = await ns.exec(process.execPath, [
      '--conditions=@membrane/source',
      '--import',
      TSX,
      FIXTURE,
      String(mark),
    ])
    expect(JSON.parse(stdout.trim())).toEqual({ accepted: mark, client: mark })
  })
})
