#!/usr/bin/env node
// The `membrane` command. Runs the built CLI (dist/bin.js); inside the workspace, where nothing
// is built, runs the TypeScript source through tsx instead.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const built = join(here, '..', 'dist', 'bin.js')
if (existsSync(built)) {
  await import(built)
} else {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@membrane/source',
      '--import',
      'tsx',
      join(here, '..', 'src', 'bin.ts'),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  )
  // Forward termination signals so `kill <pid>` stops the agent, not only this wrapper.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)))
}
