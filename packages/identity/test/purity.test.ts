import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const src = fileURLToPath(new URL('../src', import.meta.url))

/** Every file the core entry (src/index.ts) reaches through relative imports. */
function reachable(entry: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  const visit = (file: string) => {
    if (out.has(file)) return
    const text = readFileSync(file, 'utf8')
    const specs = [...text.matchAll(/^(?:import|export)[^'"]*from\s+'([^']+)'/gm)].map(
      (m) => m[1] as string,
    )
    out.set(file, specs)
    for (const s of specs) if (s.startsWith('.')) visit(`${join(file, '..', s)}.ts`)
  }
  visit(join(src, entry))
  return out
}

describe('the core stays pure', () => {
  it('imports nothing but its own files (no node:, no etcd3, no gRPC)', () => {
    const files = reachable('index.ts')
    expect(files.size).toBeGreaterThan(5)
    for (const [file, specs] of files) {
      // @membrane/types is pure too (its own test checks it).
      for (const s of specs)
        expect(s.startsWith('.') || s === '@membrane/types', `${file} imports ${s}`).toBe(true)
      expect(file).not.toMatch(/_etcd/)
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '')
      expect(/\b(Buffer|process|require)\s*[.(]/.test(text), `${file} uses a Node global`).toBe(
        false,
      )
    }
  })

  it('keeps etcd behind the subpath', () => {
    const etcd = reachable('etcd.ts')
    expect([...etcd.values()].flat()).toContain('etcd3')
    expect(readdirSync(join(src, '_etcd')).length).toBeGreaterThan(0)
  })
})
