#!/usr/bin/env node
// The `membrane` command. Inside the workspace (the TypeScript source is there) it runs the
// source through tsx, so it never depends on stale or missing builds of the sibling packages;
// an installed package (only dist/ and bin/ are published) runs the built CLI.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const built = join(here, '..', 'dist', 'bin.js')
const source = join(here, '..', 'src', 'bin.ts')
if (!existsSync(source)) {
  await import(built)
} else {
  const child = spawn(
    process.execPath,
    ['--conditions=@membrane/source', '--import', 'tsx', source, ...process.argv.slice(2)],
    { stdio: 'inherit' },
  )
  // Forward termination signals so `kill <pid>` stops the agent, not only this wrapper.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)))
}
