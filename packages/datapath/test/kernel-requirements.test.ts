import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { KERNEL_REQUIREMENTS, missingKernelFeature } from '../src/internal/kernel'

// The real kernel's answers are covered by every test that opens the datapath; here the probe
// is pointed at BTF files this test writes, to see each missing feature named.
describe('kernel requirements of the shipped objects', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-kreq-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const withKfunc = join(dir, 'with')
  writeFileSync(withKfunc, Buffer.from('\0int\0bpf_cast_to_kern_ctx\0sk_buff\0'))
  const withoutKfunc = join(dir, 'without')
  writeFileSync(withoutKfunc, Buffer.from('\0int\0bpf_cast_to_kern_ctx_other\0sk_buff\0'))
  const probe = (btfPath: string, ringbuf = true) => ({
    btfPath,
    probeMapType: (t: string) => t !== 'ringbuf' || ringbuf,
  })

  it('passes on a kernel with BTF, ring buffers and the kfunc', () => {
    expect(missingKernelFeature(probe(withKfunc))).toBeUndefined()
  })

  it('names kernel BTF (5.4) when /sys/kernel/btf/vmlinux is missing', () => {
    const m = missingKernelFeature(probe(join(dir, 'absent')))
    expect(m?.feature).toMatch(/kernel BTF/)
    expect(m?.minKernel).toBe('5.4')
  })

  it('names ring buffers (5.8) and the bpf_cast_to_kern_ctx kfunc (6.2)', () => {
    expect(missingKernelFeature(probe(withKfunc, false))?.minKernel).toBe('5.8')
    const m = missingKernelFeature(probe(withoutKfunc))
    expect(m?.feature).toMatch(/bpf_cast_to_kern_ctx/)
    expect(m?.minKernel).toBe('6.2')
  })

  it('the running kernel has every feature (this machine runs the datapath tests)', () => {
    expect(KERNEL_REQUIREMENTS.length).toBeGreaterThan(0)
    expect(
      missingKernelFeature({ btfPath: '/sys/kernel/btf/vmlinux', probeMapType: () => true })
        ?.feature,
    ).toBeUndefined()
  })
})
