/**
 * Test/bench helper: a real BPF producer for the flows pipeline. Compiles test/bpf/emit_events.c
 * (which uses bpf-src/lib/events.h, so the ring buffer and loss counter are the datapath's own),
 * loads it, and emits events with BPF_PROG_TEST_RUN.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type BpfMap, BpfObject, type BpfProgram } from '@membrane/bpf-loader-napi'
import { run } from '@membrane/test-utils'

const here = fileURLToPath(new URL('.', import.meta.url))
const repo = resolve(here, '../../..')

export interface Emitter {
  ring: BpfMap
  /** Sum over CPUs of mb_events_lost. */
  lost(): bigint
  /** Emit `repeat` copies of the template event (ktime and source port set by the program). */
  emit(template: Buffer, repeat: number): Promise<void>
  close(): void
}

export async function openEmitter(): Promise<Emitter> {
  const dir = mkdtempSync(join(tmpdir(), 'mb-flows-emit-'))
  const obj = join(dir, 'emit_events.o')
  try {
    await run('clang-19', [
      '-target',
      'bpf',
      '-O2',
      '-g',
      '-D__TARGET_ARCH_x86',
      '-mcpu=v3',
      '-I',
      join(repo, 'bpf-src/build'),
      '-I',
      join(repo, 'bpf-src'),
      '-I',
      join(repo, 'bpf-src/include'),
      '-c',
      join(here, 'bpf/emit_events.c'),
      '-o',
      obj,
    ])
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const bpf = BpfObject.open(obj)
  try {
    await bpf.load()
  } catch (e) {
    bpf.close()
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const prog: BpfProgram = bpf.program('emit_event')
  const ring = bpf.map('mb_events')
  const lostMap = bpf.map('mb_events_lost')
  const zero = Buffer.alloc(4)
  return {
    ring,
    lost: () => (lostMap.lookupPerCpu(zero) ?? []).reduce((a, b) => a + b.readBigUInt64LE(0), 0n),
    emit: async (template, repeat) => {
      await prog.testRun({ data: template, repeat })
    },
    close: () => {
      bpf.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
