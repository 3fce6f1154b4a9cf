#!/usr/bin/env node
// `npm run demo`: the Star Wars demo (examples/star-wars), run by the reference agent.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const entry = join(root, 'examples', 'star-wars', 'src', 'main.ts')
if (!existsSync(entry)) {
  process.stderr.write('membrane demo: examples/star-wars/src/main.ts is missing.\n')
  process.exit(1)
}
const child = spawn(
  process.execPath,
  ['--conditions=@membrane/source', '--import', 'tsx', entry, ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit' },
)
// Forward Ctrl-C / kill to the demo so it cleans up (namespaces, programs, pins) before exiting.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 130 : 1)))
