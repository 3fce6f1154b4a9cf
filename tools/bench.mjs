#!/usr/bin/env node
// The bench harness: run every package's bench/*.ts (or those of the packages named on the
// command line) and print one JSON line per figure.
//
//   npm run bench                 # all packages
//   npm run bench -- maglev       # one package (several names allowed)
//   npm run bench -- maglev/build # one bench file of a package
//
// Bench files print figures with reportFigure() from @membrane/test-utils; the harness adds
// `package` and `bench` to each line. Anything that is not a JSON object on stdout goes to
// stderr, so stdout stays machine-readable.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const tsx = require.resolve('tsx')

function benchFiles(pkg) {
  const dir = join(root, 'packages', pkg, 'bench')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.startsWith('_') && !f.endsWith('.d.ts'))
    .sort()
    .map((f) => join(dir, f))
}

const all = readdirSync(join(root, 'packages')).sort()
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const selected = []
for (const w of wanted.length ? wanted : all) {
  const [pkg, file] = w.replace(/^@membrane\//, '').split('/')
  if (!all.includes(pkg)) {
    process.stderr.write(`bench: no package named ${pkg} (packages: ${all.join(', ')})\n`)
    process.exit(2)
  }
  const files = benchFiles(pkg).filter((f) => !file || basename(f, '.ts') === file)
  if (wanted.length && files.length === 0) {
    process.stderr.write(`bench: ${w} has no bench/${file ?? '*'}.ts\n`)
    process.exit(2)
  }
  for (const f of files) selected.push({ pkg, file: f })
}

function runOne({ pkg, file }) {
  return new Promise((resolveRun) => {
    const bench = basename(file, '.ts')
    process.stderr.write(`bench: ${pkg}/${bench}\n`)
    const child = spawn(
      process.execPath,
      ['--conditions=@membrane/source', '--expose-gc', '--import', tsx, file],
      {
        cwd: join(root, 'packages', pkg),
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, MEMBRANE_BENCH: '1' },
      },
    )
    const lines = createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      let figure
      try {
        figure = JSON.parse(line)
      } catch {
        figure = undefined
      }
      if (figure && typeof figure === 'object' && !Array.isArray(figure) && 'name' in figure) {
        process.stdout.write(`${JSON.stringify({ package: pkg, bench, ...figure })}\n`)
      } else {
        process.stderr.write(`${line}\n`)
      }
    })
    child.on('close', (code, signal) => {
      if (code !== 0)
        process.stderr.write(`bench: ${pkg}/${bench} failed (${signal ?? `exit ${code}`})\n`)
      resolveRun(code === 0)
    })
  })
}

let ok = true
for (const item of selected) ok = (await runOne(item)) && ok
process.exit(ok ? 0 : 1)
