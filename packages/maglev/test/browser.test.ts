// The core must run in a browser: bundle it for the browser platform (a Node built-in import
// fails the build) and run the bundle in a bare V8 context that has no process, Buffer or
// require — only what a browser page has that we use (TextEncoder).
import { fileURLToPath } from 'node:url'
import { createContext, runInContext } from 'node:vm'
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'
import { buildLookupTable, flowHash } from '../src/index'

describe('browser build', () => {
  it('bundles for the browser without Node built-ins and computes the same table there', async () => {
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
      bundle: true,
      platform: 'browser',
      // Sibling packages (@membrane/types) from their TypeScript source, as the tests resolve them.
      conditions: ['@membrane/source'],
      format: 'iife',
      globalName: 'maglev',
      write: false,
      logLevel: 'silent',
    })
    const code = result.outputFiles[0]!.text
    expect(code).not.toMatch(/require\(|node:/)

    const sandbox: Record<string, unknown> = { TextEncoder }
    createContext(sandbox)
    const backends = [
      { id: 7, address: '10.0.0.1', port: 80, weight: 3 },
      { id: 8, address: '2001:db8::2', port: 80 },
    ]
    runInContext(code, sandbox)
    const out = runInContext(
      `({ noNode: typeof process === 'undefined' && typeof Buffer === 'undefined' && typeof require === 'undefined',
          table: Array.from(maglev.buildLookupTable(${JSON.stringify(backends)}, { tableSize: 1021 })),
          hash: maglev.flowHash({ saddr: '10.9.8.7', sport: 1234, dport: 80 }) })`,
      sandbox,
    ) as { noNode: boolean; table: number[]; hash: number }
    expect(out.noNode).toBe(true)
    expect(out.table).toEqual([...buildLookupTable(backends, { tableSize: 1021 })])
    expect(out.hash).toBe(flowHash({ saddr: '10.9.8.7', sport: 1234, dport: 80 }))
  })
})
