#!/usr/bin/env node
// `npm run demo`: the Star Wars demo (examples/star-wars), run by the reference agent.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const entry = join(root, 'examples', 'star-wars', 'src', 'main.ts')
if (!existsSync(entry)) {
  process.stderr.write(
    'membrane demo: the Star Wars demo ships with @membrane/agent, which has not landed yet.\n',
  )
  process.exit(1)
}
const r = spawnSync(
  process.execPath,
  ['--conditions=@membrane/source', '--import', 'tsx', entry, ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: 'inherit',
  },
)
process.exit(r.status ?? 1)
