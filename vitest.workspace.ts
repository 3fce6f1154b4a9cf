/**
 * The one list of test projects. `vitest.config.ts` imports it (Vitest 4 reads projects from
 * its config), so adding a package to the test run means adding one line here.
 *
 * Every project extends the root config, which resolves sibling packages from source through
 * the `@membrane/source` export condition: no build is needed before testing.
 */
import { fileURLToPath } from 'node:url'
import type { TestProjectInlineConfiguration } from 'vitest/config'

function project(name: string, root: string): TestProjectInlineConfiguration {
  return {
    extends: true,
    test: {
      name,
      root: fileURLToPath(new URL(root, import.meta.url)),
      include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'tests/**/*.test.ts'],
    },
  }
}

const pkg = (name: string) => project(name, `packages/${name}`)

export const projects: TestProjectInlineConfiguration[] = [
  project('tools', 'tools'),
  pkg('test-utils'),
  pkg('types'),
  pkg('bpf-loader-napi'),
  pkg('maglev'),
  pkg('policy'),
  pkg('identity'),
  pkg('cluster'),
  pkg('bandwidth'),
  pkg('datapath'),
  pkg('flows'),
  pkg('l7proxy'),
  pkg('agent'),
]

export default projects
