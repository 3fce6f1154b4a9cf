#!/usr/bin/env node
// Pack every publishable package the way it is published: `npm pack` of a staged copy.
//
//   node tools/pack.mjs [--out DIR] [--no-build] [--json] [package-dir-name...]
//
// Staging is what makes the tarball usable outside this repository:
// - builds first (nx build, cached; the native addon and the BPF objects, stamped), unless
//   --no-build;
// - copies the package's `files`, README.md and the repository's LICENSE;
// - adds the build products a package needs at run time (ARTIFACTS below): the prebuilt
//   linux-x64 glibc addon into @membrane/bpf-loader-napi's prebuilds/, the CO-RE BPF objects
//   (with their GPL-2.0/BSD-2-Clause licence texts) into the packages that load them;
// - writes package.json without what only the workspace uses: the `@membrane/source` export
//   condition (it points at src/, which is not published), devDependencies and the build
//   scripts.
// The tarballs land in --out (default dist-packages/); the script prints one line per tarball,
// or with --json an array of { name, version, file, size, unpackedSize, entryCount, files }.
import { execFileSync, spawnSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Build products copied into a package at pack time: [from (repo-relative), to (package-relative)]. */
export const ARTIFACTS = {
  'bpf-loader-napi': [
    // node-gyp-build's layout: prebuilds/<platform>-<arch>/<name>.<tags>.node
    [
      'packages/bpf-loader-napi/build/Release/membrane_bpf.node',
      'prebuilds/linux-x64/membrane_bpf.napi.glibc.node',
    ],
  ],
  datapath: [
    ['bpf-src/build/endpoint.o', 'bpf/endpoint.o'],
    ['bpf-src/build/sock.o', 'bpf/sock.o'],
    ['bpf-src/LICENSE', 'bpf/LICENSE'],
    ['bpf-src/LICENSES', 'bpf/LICENSES'],
  ],
  bandwidth: [
    ['bpf-src/build/bandwidth.o', 'bpf/bandwidth.o'],
    ['bpf-src/LICENSE', 'bpf/LICENSE'],
    ['bpf-src/LICENSES', 'bpf/LICENSES'],
  ],
}

function fail(message) {
  process.stderr.write(`pack: ${message}\n`)
  process.exit(1)
}

/** Publishable packages (not private), by directory name, in dependency-agnostic order. */
export function publishable() {
  return readdirSync(join(root, 'packages'))
    .filter((d) => existsSync(join(root, 'packages', d, 'package.json')))
    .filter((d) => !readJson(join(root, 'packages', d, 'package.json')).private)
    .sort()
}

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'))
}

/** exports without the workspace-only `@membrane/source` condition. */
export function stripSourceCondition(value) {
  if (Array.isArray(value)) return value.map(stripSourceCondition)
  if (value === null || typeof value !== 'object') return value
  const out = {}
  for (const [k, v] of Object.entries(value)) {
    if (k === '@membrane/source') continue
    out[k] = stripSourceCondition(v)
  }
  return out
}

/** The package.json that is published. */
export function publishedManifest(manifest) {
  const out = { ...manifest, exports: stripSourceCondition(manifest.exports) }
  delete out.devDependencies
  if (out.scripts) {
    const scripts = { ...out.scripts }
    for (const k of ['build', 'typecheck', 'build:native', 'test']) delete scripts[k]
    if (Object.keys(scripts).length > 0) out.scripts = scripts
    else delete out.scripts
  }
  return out
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], ...opts })
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`)
}

function build(names) {
  run(process.execPath, [join(root, 'tools/native-build.mjs')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  run(process.execPath, [join(root, 'tools/bpf-build.mjs'), '--quiet'])
  run(
    join(root, 'node_modules/.bin/nx'),
    [
      'run-many',
      '-t',
      'build',
      '--output-style=static',
      `--projects=${names.map((n) => `@membrane/${n}`).join(',')}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
}

/**
 * Debug info out of shipped binaries: DWARF from the BPF objects (`-g` keeps .BTF and .BTF.ext,
 * which CO-RE relocation and map layouts need: 1.1 MB -> 0.36 MB for endpoint.o), symbols
 * nothing links against from the addon.
 */
function strip(file) {
  const flags = file.endsWith('.o') ? ['-g'] : file.endsWith('.node') ? ['--strip-unneeded'] : null
  if (flags) run(LLVM_STRIP, [...flags, file])
}

const LLVM_STRIP = process.env.MEMBRANE_LLVM_STRIP ?? 'llvm-strip-19'

/** Stage one package into `stage` and return its published manifest. */
export function stagePackage(name, stage) {
  const dir = join(root, 'packages', name)
  const manifest = readJson(join(dir, 'package.json'))
  mkdirSync(stage, { recursive: true })
  for (const entry of manifest.files ?? []) {
    const from = join(dir, entry)
    if (existsSync(from)) cpSync(from, join(stage, entry), { recursive: true })
  }
  if (!existsSync(join(dir, 'dist')))
    fail(`${name}: no dist/ (build it: npx nx build @membrane/${name})`)
  for (const extra of ['README.md', 'CHANGELOG.md']) {
    if (existsSync(join(dir, extra))) cpSync(join(dir, extra), join(stage, extra))
  }
  cpSync(join(root, 'LICENSE'), join(stage, 'LICENSE'))
  for (const [from, to] of ARTIFACTS[name] ?? []) {
    const src = join(root, from)
    if (!existsSync(src)) fail(`${name}: ${from} is missing (run bash tools/setup.sh)`)
    mkdirSync(dirname(join(stage, to)), { recursive: true })
    cpSync(src, join(stage, to), { recursive: true })
    strip(join(stage, to))
  }
  const published = publishedManifest(manifest)
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)
  return published
}

/**
 * Pack `names` (package directory names) into `out`. Returns one record per tarball.
 * @param {{ out: string, build?: boolean, names?: string[] }} options
 */
export function packAll({ out, build: doBuild = true, names = publishable() }) {
  mkdirSync(out, { recursive: true })
  const stageRoot = mkdtempSync(join(tmpdir(), 'membrane-pack-'))
  const records = []
  // One build-and-stage at a time per checkout: tsup cleans dist/ before writing it, so a
  // second pack (another test file, another terminal) could otherwise copy a half-built dist/.
  const unlock = lock(join(root, 'node_modules', '.membrane-pack.lock'))
  try {
    if (doBuild) build(names)
    for (const name of names) {
      const stage = join(stageRoot, name)
      stagePackage(name, stage)
      const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], {
        cwd: stage,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const [r] = JSON.parse(json)
      records.push({
        name: r.name,
        version: r.version,
        file: join(out, r.filename),
        size: r.size,
        unpackedSize: r.unpackedSize,
        entryCount: r.entryCount,
        files: r.files.map((f) => f.path),
      })
    }
  } finally {
    unlock()
    rmSync(stageRoot, { recursive: true, force: true })
  }
  return records
}

/**
 * A lock between processes: a directory made atomically, holding the owner's pid; a lock whose
 * owner is gone is taken over. Returns the release function.
 */
function lock(dir) {
  const wait = new Int32Array(new SharedArrayBuffer(4))
  for (;;) {
    try {
      mkdirSync(dir)
      writeFileSync(join(dir, 'pid'), String(process.pid))
      return () => rmSync(dir, { recursive: true, force: true })
    } catch (error) {
      if (error.code !== 'EEXIST') throw error
      let owner = 0
      try {
        owner = Number(readFileSync(join(dir, 'pid'), 'utf8'))
      } catch {
        // being created or removed right now, or its owner died before writing the pid
        owner = ageMs(dir) > 10_000 ? -1 : 0
      }
      if (owner === -1 || (owner > 0 && !alive(owner)))
        rmSync(dir, { recursive: true, force: true })
      else Atomics.wait(wait, 0, 0, 200)
    }
  }
}

function ageMs(path) {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return 0
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2)
  let out = join(root, 'dist-packages')
  let doBuild = true
  let json = false
  const names = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--out') out = resolve(argv[++i] ?? fail('--out needs a directory'))
    else if (a === '--no-build') doBuild = false
    else if (a === '--json') json = true
    else if (a.startsWith('-')) fail(`unknown option ${a}`)
    else names.push(a)
  }
  const known = publishable()
  for (const n of names)
    if (!known.includes(n)) fail(`no publishable package ${n} (known: ${known.join(', ')})`)
  const records = packAll({ out, build: doBuild, names: names.length ? names : known })
  if (json) process.stdout.write(`${JSON.stringify(records, null, 2)}\n`)
  else
    for (const r of records)
      process.stdout.write(
        `${r.file}  ${r.size} B packed, ${r.unpackedSize} B unpacked, ${r.entryCount} files\n`,
      )
}
