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
    // No source maps: src/ is not published, and maps carrying sourcesContent were over half of
    // every tarball. dist/ is unminified ESM/CJS, so stack traces stay readable.
    sourcemap: false,
    target: 'node20',
    platform: 'node',
    splitting: false,
    treeshake: true,
    ...extra,
  })
}
