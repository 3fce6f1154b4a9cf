import { defineConfig, type Options } from 'tsup'

/**
 * The one tsup configuration every publishable package uses: ESM + CJS + .d.ts from the
 * package's `src/` entry points, dependencies left external.
 */
export function membranePackage(
  entry: Record<string, string> = { index: 'src/index.ts' },
  extra: Partial<Options> = {},
) {
  return defineConfig({
    entry,
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    platform: 'node',
    splitting: false,
    treeshake: true,
    ...extra,
  })
}
