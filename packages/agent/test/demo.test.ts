import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describeKernel, run } from '@membrane/test-utils'
import { expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..', '..')

interface Step {
  step: number
  from: string
  request: string
  result: 'allowed' | 'denied'
  detail: { expected: string; enforced: boolean; outcome: string; note?: string }
}

describeKernel(
  'the Star Wars demo (npm run demo -- --json)',
  ['root', 'netns', 'bpf', 'tc'],
  () => {
    it('runs every step for real and every enforced step gives the expected result', async () => {
      const { stdout } = await run(process.execPath, [join(root, 'tools', 'demo.mjs'), '--json'])
      const lines = stdout.trim().split('\n')
      expect(lines).toHaveLength(1) // --json prints exactly one line
      const { steps } = JSON.parse(lines[0]!) as { steps: Step[] }
      expect(steps.map((s) => [s.step, s.from, s.request])).toEqual([
        [1, 'tiefighter', 'POST /v1/request-landing'],
        [1, 'xwing', 'POST /v1/request-landing'],
        [2, 'tiefighter', 'POST /v1/request-landing'],
        [2, 'xwing', 'POST /v1/request-landing'],
        [3, 'tiefighter', 'POST /v1/request-landing'],
        [3, 'tiefighter', 'PUT /v1/exhaust-port'],
      ])
      // Without policy both ships land; the L3/L4 step is enforced by the datapath here.
      expect(steps[0]!.result).toBe('allowed')
      expect(steps[1]!.result).toBe('allowed')
      // Every component is in this repository now: every step must be enforced for real.
      for (const s of steps) {
        const what = `${s.step} ${s.from} ${s.request}: ${s.detail.note ?? ''}`
        expect(s.detail.enforced, what).toBe(true)
        expect(s.result, what).toBe(s.detail.expected)
      }
      expect(steps[3]!.detail.outcome).toBe('no answer (dropped)')
      expect(steps[5]!.detail.outcome).toMatch(/^403 Access denied/)
    }, 120_000)
  },
)

describeKernel(
  'the Star Wars demo with the L3/L4 policy in audit mode (--audit)',
  ['root', 'netns', 'bpf', 'tc'],
  () => {
    it('the xwing lands, and its flow is an AUDIT naming the policy that would have dropped it', async () => {
      const { stdout } = await run(process.execPath, [
        join(root, 'tools', 'demo.mjs'),
        '--json',
        '--audit',
      ])
      const { steps, audits } = JSON.parse(stdout.trim().split('\n').pop()!) as {
        steps: Step[]
        audits: Array<{ from: string; to: string; wouldBeDeniedBy: string[] }>
      }
      const step2 = steps.filter((s) => s.step === 2)
      expect(step2.map((s) => [s.from, s.result])).toEqual([
        ['tiefighter', 'allowed'],
        ['xwing', 'allowed'],
      ])
      expect(step2.every((s) => s.detail.enforced)).toBe(true)
      expect(step2[1]!.detail.outcome).toMatch(/^200/)
      // The would-be drop, reported with the policy's name; the tiefighter's flows are no audit.
      expect(audits.length).toBeGreaterThan(0)
      expect(audits.every((a) => a.from === 'xwing')).toBe(true)
      expect(audits[0]!.wouldBeDeniedBy).toEqual(['default/rule1'])
      // Step 3 (the L7 policy, enforcing) still denies the exhaust port.
      expect(steps.find((s) => s.step === 3 && s.request.startsWith('PUT'))!.result).toBe('denied')
    }, 120_000)
  },
)

describeKernel('the Star Wars demo on Ctrl-C', ['root', 'netns', 'bpf', 'tc'], () => {
  it('cleans up everything it made when interrupted mid-run', async () => {
    const child = spawn(process.execPath, [join(root, 'tools', 'demo.mjs')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    const prefix = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not reach step 1: ${out}`)), 60_000)
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString()
        const m = /prefix (\w+)\)/.exec(out)
        if (m && out.includes('Step 1')) {
          clearTimeout(timer)
          resolve(m[1]!)
        }
      })
    })
    const ns = await run('ip', ['netns', 'list'])
    expect(ns.stdout).toContain(`${prefix}_default_tiefighter`)
    child.kill('SIGINT')
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
    expect(code).toBe(130)
    expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(`${prefix}_`)
    expect((await run('ip', ['-o', 'link', 'show'])).stdout).not.toContain(`${prefix}_host`)
  }, 120_000)
})
