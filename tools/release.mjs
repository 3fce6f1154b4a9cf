#!/usr/bin/env node
// Publish every publishable package whose version is not on the registry yet.
//
//   node tools/release.mjs [--registry URL] [--tag TAG] [--dry-run] [--no-build]
//
// The second half of the release flow (docs/RELEASING.md): `npx changeset version` bumps the
// versions, sibling ranges and changelogs; this script builds, packs each package the way
// tools/pack.mjs stages it (prebuilt addon, BPF objects, LICENSE, no workspace-only export
// condition) and runs `npm publish <tarball>` for it, dependencies before dependents, so a
// failure never leaves a published package whose sibling dependency is missing. Versions the
// registry already has are skipped, so a re-run after a failure publishes the rest.
// Authentication is npm's own (an .npmrc token for the registry).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { packAll, publishable } from './pack.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function fail(message) {
  process.stderr.write(`release: ${message}\n`)
  process.exit(1)
}

/** Package directory names ordered so that each comes after its @membrane dependencies. */
export function publishOrder(names) {
  const manifests = new Map(
    names.map((n) => [
      n,
      JSON.parse(readFileSync(join(root, 'packages', n, 'package.json'), 'utf8')),
    ]),
  )
  const byName = new Map([...manifests].map(([dir, m]) => [m.name, dir]))
  const order = []
  const state = new Map()
  const visit = (dir) => {
    if (state.get(dir) === 'done') return
    if (state.get(dir) === 'visiting') fail(`dependency cycle through ${dir}`)
    state.set(dir, 'visiting')
    const m = manifests.get(dir)
    for (const dep of Object.keys({ ...m.dependencies, ...m.peerDependencies })) {
      const sibling = byName.get(dep)
      if (sibling) visit(sibling)
    }
    state.set(dir, 'done')
    order.push(dir)
  }
  for (const n of names) visit(n)
  return order
}

function published(name, version, registry) {
  const r = spawnSync('npm', ['view', `${name}@${version}`, 'version', '--registry', registry], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return r.status === 0 && r.stdout.trim() === version
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2)
  let registry = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim()
  let tag = 'latest'
  let dryRun = false
  let build = true
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--registry') registry = argv[++i] ?? fail('--registry needs a URL')
    else if (a === '--tag') tag = argv[++i] ?? fail('--tag needs a name')
    else if (a === '--dry-run') dryRun = true
    else if (a === '--no-build') build = false
    else fail(`unknown argument ${a}`)
  }
  const out = mkdtempSync(join(tmpdir(), 'membrane-release-'))
  try {
    const order = publishOrder(publishable())
    const records = packAll({ out, build, names: order })
    let count = 0
    for (const r of records) {
      if (published(r.name, r.version, registry)) {
        process.stdout.write(`release: ${r.name}@${r.version} is already on ${registry}\n`)
        continue
      }
      const args = ['publish', r.file, '--registry', registry, '--tag', tag, '--access', 'public']
      if (dryRun) args.push('--dry-run')
      const p = spawnSync('npm', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
      if (p.status !== 0) fail(`npm publish ${r.name}@${r.version} failed:\n${p.stderr.trim()}`)
      count += 1
      process.stdout.write(
        `release: ${dryRun ? 'would publish' : 'published'} ${r.name}@${r.version} (${r.size} B) to ${registry}\n`,
      )
    }
    process.stdout.write(`release: ${count} package(s) ${dryRun ? 'to publish' : 'published'}\n`)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}
