import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { dropReasonDescription, dropReasonName, knownDropReasons } from '../src/drop-reasons'

// bpf-src/lib/drop_reasons.h is the one source of the numbers; this table only adds Hubble's
// names and descriptions, so every reason the datapath can emit must have both.
const header = readFileSync(
  fileURLToPath(new URL('../../../bpf-src/lib/drop_reasons.h', import.meta.url)),
  'utf8',
)
const fromHeader = [...header.matchAll(/^#define\s+DROP_(\w+)\s+-(\d+)/gm)].map((m) => ({
  name: m[1] as string,
  reason: Number(m[2]),
}))

describe('drop reasons against bpf-src/lib/drop_reasons.h', () => {
  it('reads the header', () => {
    expect(fromHeader.length).toBeGreaterThan(20)
    expect(fromHeader.find((r) => r.name === 'POLICY')?.reason).toBe(133)
  })

  it.each(fromHeader)('DROP_$name (-$reason) has a Hubble name and a description', ({ reason }) => {
    expect(knownDropReasons()).toContain(reason)
    expect(dropReasonName(reason)).not.toMatch(/^DROP_REASON_/)
    expect(dropReasonDescription(reason)).not.toMatch(/^Unknown drop reason/)
  })
})

describe('flow.proto DropReason and the names table agree', () => {
  it('every enum value of flow.proto has the same name here, and every Hubble name there', async () => {
    const { protoRoot } = await import('../src/proto')
    const values = protoRoot().lookupEnum('flow.DropReason').values
    for (const [name, n] of Object.entries(values))
      expect({ [n]: dropReasonName(n) }).toEqual({ [n]: name })
    // every named reason is in the enum, except our own (159, not in Hubble's enum)
    for (const n of knownDropReasons())
      if (n !== 159) expect({ [n]: Object.values(values).includes(n) }).toEqual({ [n]: true })
  })
})
