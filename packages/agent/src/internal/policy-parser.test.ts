import { afterEach, describe, expect, it } from 'vitest'
import { bigPolicyText } from '../../bench/_fixture'
import { refusal } from '../../test/helpers'
import { PolicyParser } from './policy-parser'

const parsers: PolicyParser[] = []
function parser(limits: ConstructorParameters<typeof PolicyParser>[0]): PolicyParser {
  const p = new PolicyParser(limits)
  parsers.push(p)
  return p
}
afterEach(async () => {
  await Promise.all(parsers.splice(0).map((p) => p.close()))
})

describe('PolicyParser limits (a real worker thread)', () => {
  it('a parse past timeoutMs ends the worker with TOO_LARGE', async () => {
    // (No follow-up parse here: a fresh worker's first job may itself take 20 ms on a loaded
    // machine. Recovery on a fresh worker is shown below, under a generous time limit.)
    const p = parser({ timeoutMs: 20 })
    const e = await refusal(p.parse(bigPolicyText(2_000_000), 'slow.yaml'))
    expect(e.code).toBe('TOO_LARGE')
    expect(e.message).toMatch(/^slow\.yaml: parsing took longer than 20 ms/)
  })

  it('a parse past maxMemoryMb ends the worker with TOO_LARGE; the next job gets a fresh one', async () => {
    const p = parser({ timeoutMs: 120_000, maxMemoryMb: 16 })
    const e = await refusal(p.parse(bigPolicyText(3_500_000), 'huge.yaml'))
    expect(e.code).toBe('TOO_LARGE')
    expect(e.message).toMatch(/^huge\.yaml: parsing needed more than 16 MB/)
    const small = await p.parse(bigPolicyText(1), 'small.yaml')
    expect(small.docs.length).toBe(1)
  })
})
