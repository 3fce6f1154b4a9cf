#!/usr/bin/env node
// Build the project's native addons (every packages/*/binding.gyp) with node-gyp, explicitly:
// npm 11 holds back install scripts, so nothing here relies on an install hook.
//
//   node tools/native-build.mjs [--force]
//
// A stamp (hash of binding.gyp, the C/C++ sources, node's version and the libbpf headers) in
// build/ makes a second run a no-op.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const force = process.argv.includes('--force')

// Several processes (engineers, test runs) may build at once; node-gyp rebuild wipes build/
// first, so concurrent runs clobber each other. Serialize them under flock(1).
if (!process.env.MEMBRANE_NATIVE_LOCKED && existsSync('/usr/bin/flock')) {
  const r = spawnSync(
    '/usr/bin/flock',
    [
      '/tmp/membrane-native.lock',
      process.execPath,
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, MEMBRANE_NATIVE_LOCKED: '1' } },
  )
  process.exit(r.status ?? 1)
}

function files(dir) {
  if (!existsSync(dir)) return []
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...files(p))
    else if (/\.(cc|cpp|c|h|hpp|gyp|gypi)$/.test(entry.name)) out.push(p)
  }
  return out.sort()
}

function stampOf(pkgDir) {
  const h = createHash('sha256')
  h.update(process.version)
  for (const f of [
    join(pkgDir, 'binding.gyp'),
    ...files(join(pkgDir, 'src')),
    ...files(join(pkgDir, 'native')),
  ]) {
    h.update(f).update(readFileSync(f))
  }
  for (const f of ['/usr/include/bpf/libbpf_version.h', '/usr/lib/x86_64-linux-gnu/libbpf.so']) {
    if (existsSync(f)) h.update(f).update(String(statSync(f).size))
  }
  return h.digest('hex')
}

const nodeGyp = join(root, 'node_modules', '.bin', 'node-gyp')
let failed = false
for (const name of readdirSync(join(root, 'packages')).sort()) {
  const pkgDir = join(root, 'packages', name)
  if (!existsSync(join(pkgDir, 'binding.gyp'))) continue
  const stampFile = join(pkgDir, 'build', '.membrane-native.sha256')
  const stamp = stampOf(pkgDir)
  if (!force && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    process.stdout.write(`native-build: ${name} up to date\n`)
    continue
  }
  if (!existsSync(nodeGyp)) {
    process.stderr.write('native-build: node-gyp is not installed; run npm ci first\n')
    process.exit(1)
  }
  // `build` alone (not rebuild) keeps the previous .node in place until make replaces it, so
  // tests running meanwhile still find an addon, and a compile error leaves the last good one.
  // The gyp Makefile regenerates itself when binding.gyp changes. --force, or no Makefile yet,
  // starts from a clean tree.
  const verb = force || !existsSync(join(pkgDir, 'build', 'Makefile')) ? 'rebuild' : 'build'
  process.stdout.write(`native-build: building ${name} (node-gyp ${verb})\n`)
  const args = [verb, '--jobs=max']
  // No internet for header downloads: use the headers installed next to this node when npm
  // has not already said where they are (npm sets npm_config_nodedir from .npmrc).
  const localHeaders = resolve(dirname(process.execPath), '..')
  if (
    !process.env.npm_config_nodedir &&
    existsSync(join(localHeaders, 'include', 'node', 'node_api.h'))
  ) {
    args.push(`--nodedir=${localHeaders}`)
  }
  const r = spawnSync(nodeGyp, args, {
    cwd: pkgDir,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  if (r.status !== 0) {
    process.stderr.write(`native-build: ${name} failed to build (see the compiler output above)\n`)
    failed = true
    continue
  }
  writeFileSync(stampFile, stamp)
}
process.exit(failed ? 1 : 0)
