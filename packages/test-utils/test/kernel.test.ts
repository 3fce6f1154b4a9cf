import { afterEach, describe, expect, it } from 'vitest'
import { requireKernel } from '../src/index'

describe('requireKernel', () => {
  const saved = process.env.MEMBRANE_REQUIRE_KERNEL
  afterEach(() => {
    if (saved === undefined) delete process.env.MEMBRANE_REQUIRE_KERNEL
    else process.env.MEMBRANE_REQUIRE_KERNEL = saved
  })

  it('reports a missing program with its name as the reason', () => {
    delete process.env.MEMBRANE_REQUIRE_KERNEL
    const check = requireKernel(['bin:membrane-no-such-tool'])
    expect(check).toEqual({
      ok: false,
      reason: expect.stringContaining('membrane-no-such-tool is not installed'),
    })
  })

  it('throws instead of skipping when MEMBRANE_REQUIRE_KERNEL=1', () => {
    process.env.MEMBRANE_REQUIRE_KERNEL = '1'
    expect(() => requireKernel(['bin:membrane-no-such-tool'])).toThrow(
      /MEMBRANE_REQUIRE_KERNEL=1 .*membrane-no-such-tool/,
    )
  })

  it('finds programs that are installed', () => {
    expect(requireKernel(['bin:node'])).toEqual({ ok: true })
  })
})
