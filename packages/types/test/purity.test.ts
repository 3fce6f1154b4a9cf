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

it('bundles for the browser and parses there (no process, Buffer or require)', async () => {
  const { build } = await import('esbuild')
  const { createContext, runInContext } = await import('node:vm')
  const result = await build({
    entryPoints: [join(src, 'index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    globalName: 'types',
    write: false,
    logLevel: 'silent',
  })
  const code = result.outputFiles[0]?.text ?? ''
  expect(code).not.toMatch(/require\(|node:/)
  const sandbox: Record<string, unknown> = {}
  createContext(sandbox)
  runInContext(code, sandbox)
  const out = runInContext(
    `({ noNode: typeof process === 'undefined' && typeof Buffer === 'undefined',
        ip: types.canonicalIp('2001:DB8:0::1'), cidr: types.parsePrefix('10.1.2.3/8').cidr,
        world: types.ReservedIdentity.WORLD, drop: types.dropReasonName(133) })`,
    sandbox,
  )
  expect(out).toEqual({
    noNode: true,
    ip: '2001:db8::1',
    cidr: '10.0.0.0/8',
    world: 2,
    drop: 'POLICY',
  })
})
