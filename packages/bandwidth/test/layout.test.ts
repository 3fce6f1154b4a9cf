import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describeKernel, runSync } from '@membrane/test-utils'
import { expect, it } from 'vitest'
import {
  DEFAULT_BURST_NS,
  DEFAULT_HORIZON_NS,
  THROTTLE_DIRECTION,
  THROTTLE_KEY_LAYOUT,
  THROTTLE_KEY_SIZE,
  THROTTLE_MAX_ENTRIES,
  THROTTLE_MODE,
  THROTTLE_VALUE_LAYOUT,
  THROTTLE_VALUE_SIZE,
} from '../src/index'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const object = `${root}bpf-src/build/bandwidth.o`
const header = readFileSync(`${root}bpf-src/lib/edt.h`, 'utf8')
const events = readFileSync(`${root}bpf-src/lib/events.h`, 'utf8')

interface BtfMember {
  name: string
  bits_offset: number
}
interface BtfType {
  kind: string
  name?: string
  size?: number
  members?: BtfMember[]
}

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

describeKernel('throttle map layout vs the compiled object BTF', ['bin:bpftool'], () => {
  it('every member offset and struct size matches', () => {
    if (!existsSync(object)) throw new Error(`${object} is missing: run npm run build:bpf`)
    const { stdout } = runSync('bpftool', ['-j', 'btf', 'dump', 'file', object])
    const types = (JSON.parse(stdout) as { types: BtfType[] }).types
    const struct = (name: string) => {
      const t = types.find((x) => x.kind === 'STRUCT' && x.name === name)
      if (!t?.members) throw new Error(`struct ${name} not in ${object}`)
      return {
        size: t.size,
        offsets: Object.fromEntries(t.members.map((m) => [m.name, m.bits_offset / 8])),
      }
    }
    expect(struct('mb_throttle_key')).toEqual({
      size: THROTTLE_KEY_SIZE,
      offsets: THROTTLE_KEY_LAYOUT,
    })
    expect(struct('mb_throttle_val')).toEqual({
      size: THROTTLE_VALUE_SIZE,
      offsets: THROTTLE_VALUE_LAYOUT,
    })
  })
})
