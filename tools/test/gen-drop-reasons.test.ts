import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { HEADER, OUTPUT, parseDropReasons, renderDropReasons } from '../gen-drop-reasons.mjs'

/** @membrane/types' drop reasons are generated from bpf-src; drift fails here. */
describe('tools/gen-drop-reasons.mjs', () => {
  it('the generated table is up to date with bpf-src/lib/drop_reasons.h', () => {
    expect(readFileSync(OUTPUT, 'utf8')).toBe(renderDropReasons(readFileSync(HEADER, 'utf8')))
  })

  it('the generator refuses a line it cannot read', () => {
    expect(() => parseDropReasons('#define DROP_X 5\n')).toThrow(/cannot read/)
    expect(parseDropReasons('#define DROP_A -130 /* a */\n#define DROP_B\t-131\n')).toEqual([
      ['A', 130, 'a'],
      ['B', 131, ''],
    ])
  })
})
