import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import {
  DEFAULT_BURST_NS,
  DEFAULT_HORIZON_NS,
  THROTTLE_DIRECTION,
  THROTTLE_MAX_ENTRIES,
  THROTTLE_MODE,
} from '../src/index'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const header = readFileSync(`${root}bpf-src/lib/edt.h`, 'utf8')
const events = readFileSync(`${root}bpf-src/lib/events.h`, 'utf8')

function define(text: string, name: string): bigint {
  const m = new RegExp(`#define\\s+${name}\\s+(\\d+)`).exec(text)
  if (!m?.[1]) throw new Error(`${name} is not defined`)
  return BigInt(m[1])
}

it('constants match lib/edt.h and lib/events.h', () => {
  expect(define(header, 'MB_THROTTLE_MAX_ENTRIES')).toBe(BigInt(THROTTLE_MAX_ENTRIES))
  expect(define(header, 'MB_EDT_DEFAULT_HORIZON_NS')).toBe(DEFAULT_HORIZON_NS)
  expect(define(header, 'MB_TB_DEFAULT_BURST_NS')).toBe(DEFAULT_BURST_NS)
  expect(define(header, 'MB_THROTTLE_MODE_EDT')).toBe(BigInt(THROTTLE_MODE.edt))
  expect(define(header, 'MB_THROTTLE_MODE_POLICE')).toBe(BigInt(THROTTLE_MODE.police))
  expect(define(events, 'MB_DIR_INGRESS')).toBe(BigInt(THROTTLE_DIRECTION.ingress))
  expect(define(events, 'MB_DIR_EGRESS')).toBe(BigInt(THROTTLE_DIRECTION.egress))
})

// The throttle structs' sizes and offsets are checked against the compiled object's BTF with
// every other struct codec of the repository: packages/datapath/test/btf-layouts.test.ts.
