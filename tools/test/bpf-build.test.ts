import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeKernel } from '@membrane/test-utils'
import { afterAll, expect, it } from 'vitest'

const tool = fileURLToPath(new URL('../bpf-build.mjs', import.meta.url))
const sample = fileURLToPath(new URL('../../bpf-src/tests/count_packets.c', import.meta.url))

function build(
  src: string,
  out: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tool, '--src', src, '--out', out], (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

describeKernel('tools/bpf-build.mjs', ['btf', 'clang', 'bin:bpftool'], () => {
  const dir = mkdtempSync(join(tmpdir(), 'membrane-bpf-build-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('compiles a BPF C file into an object, then finds it up to date', async () => {
    const src = join(dir, 'good')
    mkdirSync(join(src, 'tests'), { recursive: true })
    copyFileSync(sample, join(src, 'tests', 'count_packets.c'))
    const out = join(src, 'build')
    const first = await build(src, out)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(existsSync(join(out, 'tests', 'count_packets.o'))).toBe(true)
    expect(existsSync(join(out, 'vmlinux.h'))).toBe(true)
    const second = await build(src, out)
    expect(second.code).toBe(0)
    expect(second.stdout).toMatch(/1 BPF object\(s\) up to date/)
  })

  it("a broken BPF C file fails the build with clang's message, not a stack trace", async () => {
    const src = join(dir, 'broken')
    mkdirSync(src, { recursive: true })
    writeFileSync(
      join(src, 'broken.c'),
      '// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)\n#include "vmlinux.h"\nint f(void) { return undeclared_thing; }\n',
    )
    const r = await build(src, join(src, 'build'))
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/broken\.c failed to compile/)
    expect(r.stderr).toMatch(
      /broken\.c:3:\d+: error: use of undeclared identifier 'undeclared_thing'/,
    )
    expect(r.stderr).not.toMatch(/\n\s+at .*\.m?js:\d+/)
    expect(existsSync(join(src, 'build', 'broken.o'))).toBe(false)
  })
})
