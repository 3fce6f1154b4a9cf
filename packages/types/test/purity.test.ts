import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const src = fileURLToPath(new URL('../src', import.meta.url))

it('src imports only its own files and uses no Node global (browser-safe, no dependencies)', () => {
  const files = readdirSync(src).filter((f) => f.endsWith('.ts'))
  expect(files.length).toBeGreaterThan(5)
  for (const f of files) {
    const text = readFileSync(join(src, f), 'utf8')
    for (const m of text.matchAll(/^(?:import|export)[^'"]*from\s+'([^']+)'/gm))
      expect(m[1]?.startsWith('./'), `${f} imports ${m[1]}`).toBe(true)
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    expect(/\b(Buffer|process|require)\s*[.(]/.test(code), `${f} uses a Node global`).toBe(false)
  }
  const manifest = JSON.parse(readFileSync(join(src, '../package.json'), 'utf8'))
  expect(manifest.dependencies ?? {}).toEqual({})
})
