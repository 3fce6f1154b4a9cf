#!/usr/bin/env node
// Doc tests: every fenced code block of every README is executed (or checked) verbatim.
//
//   node tools/doctest.mjs                      # every README of the repository
//   node tools/doctest.mjs packages/policy      # one package's README (a directory or a file)
//   node tools/doctest.mjs --json ...           # one JSON report per README on stdout
//   node tools/doctest.mjs --package DIR FILE   # FILE documents the package in DIR (fixtures)
//   node tools/doctest.mjs --list               # the READMEs it checks
//
// A README documents one package: packages/<name>/README.md its package, examples/<x>/README.md
// its example, the root README the workspace. Its blocks run in order in one fresh temporary
// directory whose node_modules holds only that package and its dependencies, peer and optional
// dependencies (linked to the workspace; `@membrane/*` resolve to their TypeScript source through
// the `@membrane/source` condition, as tools/bench.mjs does), so an example that imports a
// devDependency fails here as it would in a user's project.
//
// - ts / typescript / js / javascript: written to a temporary file and run with Node + tsx.
//   Imports are checked first: only node: builtins, the package itself and its dependencies;
//   `using` declarations are refused (Node 20, which the packages support, cannot run them).
//   Once all blocks ran, the TypeScript ones are type-checked together with the repository's
//   strict settings, as a user's tsc would (an error names its README line).
// - sh / bash / shell: run with `bash -e -o pipefail` in that temporary directory, with the
//   packages' bins (node_modules/.bin) on PATH. A block made only of repository commands
//   (`npm install <pkg>`, `npm run <script>`, `npm start -w <ws>`, `npx vitest run --project <p>`,
//   `node tools/<file>`, `bash tools/<file>`) is checked instead of run: the package, script,
//   workspace, project, bench file or tool exists.
// - Anything else (yaml, json, c, plain text) must say what it is with a marker.
//
// Markers: HTML comments right before the block (blank lines allowed in between), one or several
// directives separated by `;`:
//   <!-- doctest: file NAME -->          write the block to NAME in the README's temporary directory
//   <!-- doctest: output -->             output shown to the reader, not a program
//   <!-- doctest: text -->               a diagram, a signature or a layout, not a program
//   <!-- doctest: skip (reason) -->      not executed; the reason is required and reported
//   <!-- doctest: exit N -->             the block is expected to exit with status N
//   <!-- doctest: kernel -->             needs root and the kernel: skipped (and reported) when not
//                                        root, unless MEMBRANE_REQUIRE_KERNEL=1
//   <!-- doctest: known-failure (reason) --> expected to fail today; passing is an error (remove
//                                        the marker)
//   <!-- doctest: timeout SECONDS -->    default 120
//   <!-- doctest: background -->         a daemon (a shell block): started, left running for the
//                                        blocks after it, stopped (SIGTERM) after the last one;
//                                        an early exit with an error status fails the block
//   <!-- doctest: repo -->               a shell block of repository commands that is safe and quick:
//                                        run at the repository root instead of only checked
//   <!-- doctest: stop-daemons -->       stop the background blocks (SIGTERM, as Ctrl-C would) before
//                                        running this one (a cleanup after the daemon)
import { spawn } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createRequire, isBuiltin } from 'node:module'
import { tmpdir } from 'node:os'
import { basename, dirname, isAbsolute, join, normalize, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const TSX = createRequire(import.meta.url).resolve('tsx')
const TSX_DIR = dirname(createRequire(import.meta.url).resolve('tsx/package.json'))
const TSC = join(
  dirname(createRequire(import.meta.url).resolve('typescript/package.json')),
  'bin',
  'tsc',
)

const RUN_LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'mts'])
const SHELL_LANGS = new Set(['sh', 'bash', 'shell'])

/** Every README of the repository: the root one, packages/*, examples/*. */
export function findReadmes(root = ROOT) {
  const out = [join(root, 'README.md')]
  for (const top of ['packages', 'examples']) {
    const dir = join(root, top)
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir).sort()) {
      const file = join(dir, name, 'README.md')
      if (existsSync(file)) out.push(file)
    }
  }
  return out
}

/**
 * The fenced code blocks of a markdown text, with their 1-based line, language and the markers
 * of the `<!-- doctest: ... -->` comments right before them.
 */
export function extractBlocks(markdown) {
  const lines = markdown.split('\n')
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)(.*)$/.exec(lines[i])
    if (!open) continue
    const [, indent, fence, lang] = open
    const body = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j])
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length) break
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j])
    }
    blocks.push({
      line: i + 1,
      lang: lang.toLowerCase(),
      code: `${body.join('\n')}\n`,
      ...markersBefore(lines, i),
    })
    i = j
  }
  return blocks
}

/** Parse the marker comments above line `index`; errors name the malformed directive. */
function markersBefore(lines, index) {
  const directives = []
  let k = index - 1
  while (k >= 0 && lines[k].trim() === '') k--
  for (; k >= 0; k--) {
    const m = /^\s*<!--\s*doctest:(.*?)-->\s*$/.exec(lines[k])
    if (!m) break
    directives.unshift(...splitDirectives(m[1]))
  }
  const markers = {}
  const errors = []
  for (const d of directives) {
    const m = /^([a-z-]+)\s*(.*)$/.exec(d)
    const name = m?.[1]
    const arg = (m?.[2] ?? '').trim()
    const reason = /^\((.+)\)$/.exec(arg)?.[1]?.trim()
    switch (name) {
      case 'file':
        if (!arg || isAbsolute(arg) || normalize(arg).startsWith('..'))
          errors.push(`marker "file" needs a relative file name, got "${arg}"`)
        else markers.file = arg
        break
      case 'output':
      case 'text':
        markers.output = true
        break
      case 'skip':
        if (!reason) errors.push('marker "skip" needs a reason in parentheses: skip (why)')
        else markers.skip = reason
        break
      case 'known-failure':
        if (!reason)
          errors.push('marker "known-failure" needs a reason in parentheses: known-failure (why)')
        else markers.knownFailure = reason
        break
      case 'exit':
        if (!/^\d+$/.test(arg)) errors.push(`marker "exit" needs a status number, got "${arg}"`)
        else markers.exit = Number(arg)
        break
      case 'timeout':
        if (!/^\d+$/.test(arg)) errors.push(`marker "timeout" needs seconds, got "${arg}"`)
        else markers.timeout = Number(arg)
        break
      case 'kernel':
        markers.kernel = true
        break
      case 'background':
        markers.background = true
        break
      case 'stop-daemons':
        markers.stopDaemons = true
        break
      case 'repo':
        markers.repo = true
        break
      default:
        errors.push(`unknown doctest marker "${d}"`)
    }
  }
  return { markers, markerErrors: errors }
}

function splitDirectives(text) {
  // `;` separates directives; parentheses (reasons) may contain anything but `)`.
  const out = []
  let depth = 0
  let cur = ''
  for (const ch of text) {
    if (ch === '(') depth++
    if (ch === ')') depth = Math.max(0, depth - 1)
    if (ch === ';' && depth === 0) {
      if (cur.trim()) out.push(cur.trim())
      cur = ''
    } else cur += ch
  }
  if (cur.trim()) out.push(cur.trim())
  return out
}

/** The module specifiers a JS/TS block imports (static, dynamic, require, re-exports). */
export function importSpecifiers(code) {
  const specs = new Set()
  const patterns = [
    /\bimport\s+(?:type\s+)?[\w*{}\s,$]*?\s*from\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bexport\s+(?:type\s+)?[\w*{}\s,$]*?\s*from\s*['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]
  for (const re of patterns) for (const m of code.matchAll(re)) specs.add(m[1])
  return [...specs]
}

/** `@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`. */
export function packageOf(specifier) {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}

/** Every package.json of the workspace by package name. */
export function workspacePackages(root = ROOT) {
  const out = new Map()
  for (const top of ['packages', 'examples']) {
    const dir = join(root, top)
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir)) {
      const file = join(dir, name, 'package.json')
      if (!existsSync(file)) continue
      const pkg = JSON.parse(readFileSync(file, 'utf8'))
      out.set(pkg.name, { dir: join(dir, name), pkg })
    }
  }
  return out
}

/**
 * What a README's examples may import: the documented package, its dependencies, peer and
 * optional dependencies. The root README documents the workspace: every published package.
 */
export function allowedPackages(packageDir, root = ROOT) {
  const ws = workspacePackages(root)
  if (resolve(packageDir) === resolve(root)) {
    return new Set([...ws].filter(([, { pkg }]) => !pkg.private).map(([name]) => name))
  }
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'))
  return new Set([
    pkg.name,
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
  ])
}

/** Problems with the imports of one block: not a dependency, unknown subpath, relative files. */
export function checkImports(code, allowed, root = ROOT, files = new Set()) {
  const ws = workspacePackages(root)
  const errors = []
  for (const spec of importSpecifiers(code)) {
    if (spec.startsWith('node:') || isBuiltin(spec)) continue
    if (spec.startsWith('.') || spec.startsWith('/')) {
      if (!files.has(normalize(spec))) {
        errors.push(
          `imports "${spec}", a file the README does not define (examples are self-contained)`,
        )
      }
      continue
    }
    const name = packageOf(spec)
    if (!allowed.has(name)) {
      errors.push(
        `imports "${spec}": ${name} is not a dependency or peer dependency of the documented package (allowed: node: builtins, ${[...allowed].join(', ')})`,
      )
      continue
    }
    const local = ws.get(name)
    if (local && spec !== name) {
      const sub = `./${spec.slice(name.length + 1)}`
      if (!Object.hasOwn(local.pkg.exports ?? {}, sub)) {
        errors.push(`imports "${spec}": ${name} exports no "${sub}"`)
      }
    }
  }
  if (/^\s*(?:export\s+)?(?:await\s+)?using\s+[\w$]+\s*=/m.test(code)) {
    errors.push(
      '`using` declarations need Node 24 (explicit resource management); the packages support Node 20: use try/finally and close()',
    )
  }
  return errors
}

/** Where a dependency lives: the workspace package, or node_modules seen from `fromDir` up. */
function dependencyDir(name, fromDir, ws) {
  const local = ws.get(name)
  if (local) return local.dir
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(join(candidate, 'package.json'))) return candidate
    if (dirname(dir) === dir) return undefined
  }
}

/** A node_modules with only `allowed` (linked), tsx for the bins, and .bin wrappers. */
function makeNodeModules(workDir, packageDir, allowed, root) {
  const ws = workspacePackages(root)
  const nm = join(workDir, 'node_modules')
  const bin = join(nm, '.bin')
  mkdirSync(bin, { recursive: true })
  for (const name of allowed) {
    const dir = dependencyDir(name, packageDir, ws)
    if (!dir) throw new Error(`dependency ${name} is not installed (run npm ci)`)
    mkdirSync(dirname(join(nm, name)), { recursive: true })
    symlinkSync(dir, join(nm, name), 'dir')
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    const bins = typeof pkg.bin === 'string' ? { [basename(pkg.name)]: pkg.bin } : (pkg.bin ?? {})
    for (const [command, target] of Object.entries(bins)) {
      // A bin built into dist/ runs from its TypeScript source in the workspace.
      const source = join(dir, target.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'))
      const file = target.startsWith('./dist/') && existsSync(source) ? source : join(dir, target)
      const wrapper = join(bin, command)
      writeFileSync(
        wrapper,
        `#!/bin/sh\nexec ${shellQuote(process.execPath)} --conditions=@membrane/source --import ${shellQuote(TSX)} ${shellQuote(file)} "$@"\n`,
      )
      chmodSync(wrapper, 0o755)
    }
  }
  // Bins of the workspace may preload tsx by name from the working directory.
  if (!allowed.has('tsx')) symlinkSync(TSX_DIR, join(nm, 'tsx'), 'dir')
}

function shellQuote(s) {
  return `'${s.replaceAll("'", "'\\''")}'`
}

// ---------------------------------------------------------------- repository commands

function vitestProjects(root) {
  const file = join(root, 'vitest.workspace.ts')
  if (!existsSync(file)) return new Set()
  const text = readFileSync(file, 'utf8')
  return new Set([...text.matchAll(/\b(?:pkg|project)\(\s*'([^']+)'/g)].map((m) => m[1]))
}

/** Split a command line into words (quotes kept simple), dropping a trailing comment. */
function words(line) {
  const out = []
  const re = /"([^"]*)"|'([^']*)'|(#.*$)|(\S+)/g
  for (const m of line.matchAll(re)) {
    if (m[3] !== undefined) break
    out.push(m[1] ?? m[2] ?? m[4])
  }
  return out
}

/**
 * Check one repository command line (npm/npx/node tools/bash tools). Returns undefined when
 * the line is not a repository command, else a list of problems (empty when it checks out).
 */
export function checkRepositoryCommand(line, root = ROOT) {
  const w = words(line)
  if (w.length === 0) return []
  const ws = workspacePackages(root)
  const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const errors = []
  const workspaceOf = (args) => {
    const i = args.findIndex((a) => a === '-w' || a === '--workspace')
    return i >= 0 ? args[i + 1] : undefined
  }
  const scriptsOf = (wsName) => {
    if (!wsName) return rootPkg.scripts ?? {}
    const found = ws.get(wsName) ?? [...ws.values()].find((p) => relative(root, p.dir) === wsName)
    if (!found) {
      errors.push(`no workspace named ${wsName}`)
      return undefined
    }
    return found.pkg.scripts ?? {}
  }
  if (w[0] === 'npm' && (w[1] === 'install' || w[1] === 'i' || w[1] === 'add')) {
    const names = w.slice(2).filter((a) => !a.startsWith('-'))
    if (names.length === 0) errors.push('npm install without a package name')
    for (const spec of names) {
      const name = spec.replace(/(.)@[^/]*$/, '$1')
      const local = ws.get(name)
      if (!local) errors.push(`npm install ${spec}: no workspace package is named ${name}`)
      else if (local.pkg.private) errors.push(`npm install ${spec}: ${name} is private`)
    }
    return errors
  }
  if (w[0] === 'npm' && ['run', 'run-script', 'start', 'test'].includes(w[1])) {
    const dash = w.indexOf('--')
    const args = dash >= 0 ? w.slice(2, dash) : w.slice(2)
    const rest = dash >= 0 ? w.slice(dash + 1) : []
    const script =
      w[1] === 'start' || w[1] === 'test'
        ? w[1]
        : args.find(
            (a, i) => !a.startsWith('-') && args[i - 1] !== '-w' && args[i - 1] !== '--workspace',
          )
    const scripts = scriptsOf(workspaceOf(args))
    if (!scripts) return errors
    if (!script) errors.push('npm run without a script name')
    else if (!Object.hasOwn(scripts, script)) errors.push(`npm script "${script}" does not exist`)
    if (script === 'bench' && !workspaceOf(args)) errors.push(...checkBenchArgs(rest, root))
    return errors
  }
  if (w[0] === 'npx' && w[1] === 'vitest') {
    const i = w.indexOf('--project')
    if (i >= 0) {
      const project = w[i + 1]
      const projects = vitestProjects(root)
      if (!projects.has(project)) errors.push(`no vitest project named ${project}`)
      else {
        const dir = project === 'tools' ? join(root, 'tools') : join(root, 'packages', project)
        for (const file of w
          .slice(2)
          .filter(
            (a, k) =>
              !a.startsWith('-') && w[k + 1] !== '--project' && a !== 'run' && a !== project,
          )) {
          if (!existsSync(join(dir, file)))
            errors.push(`${relative(root, join(dir, file))} does not exist`)
        }
      }
    }
    return errors
  }
  if ((w[0] === 'node' || w[0] === 'bash') && w[1]?.startsWith('tools/')) {
    if (!existsSync(join(root, w[1]))) errors.push(`${w[1]} does not exist`)
    if (w[1] === 'tools/bench.mjs') errors.push(...checkBenchArgs(w.slice(2), root))
    return errors
  }
  return undefined
}

function checkBenchArgs(args, root) {
  const errors = []
  for (const a of args.filter((x) => !x.startsWith('-'))) {
    const [pkg, file] = a.replace(/^@membrane\//, '').split('/')
    const dir = join(root, 'packages', pkg, 'bench')
    if (!existsSync(dir)) errors.push(`bench: packages/${pkg} has no bench/ directory`)
    else if (file && !existsSync(join(dir, `${file}.ts`)))
      errors.push(`bench: packages/${pkg}/bench/${file}.ts does not exist`)
  }
  return errors
}

/** The command lines of a shell block (continuations joined, comments and blanks dropped). */
function commandLines(code) {
  const out = []
  let cur = ''
  for (const raw of code.split('\n')) {
    const line = raw.replace(/\s+$/, '')
    if (cur === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue
    if (line.endsWith('\\')) cur += `${line.slice(0, -1)} `
    else {
      out.push(cur + line)
      cur = ''
    }
  }
  if (cur) out.push(cur)
  return out
}

// ---------------------------------------------------------------- running

/**
 * Spawn a block in its own process group, keeping the tail of its output. `ended` resolves
 * with its status; `stop()` ends the whole group (SIGTERM, SIGKILL after 10 s).
 */
function spawnBlock(command, args, { cwd, env }) {
  const child = spawn(command, args, {
    cwd,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const keep = (chunk) => {
    out = (out + chunk).slice(-100_000)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  let status
  const ended = new Promise((resolveEnd) => {
    child.on('close', (code, signal) => {
      status = { code: code ?? (signal ? 128 : 1), signal }
      resolveEnd(status)
    })
  })
  return {
    ended,
    output: () => out,
    /** How it had ended before this call (undefined: it was still running). */
    status: () => status,
    /** End the block's process group now (what it left running, or all of it on a timeout). */
    async stop() {
      killGroup(child.pid, 'SIGTERM')
      const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), 10_000)
      await ended
      clearTimeout(timer)
      killGroup(child.pid, 'SIGKILL')
    },
    /**
     * Stop a daemon like Ctrl-C stops a foreground command, but once: SIGTERM to the command
     * itself (bash -c execs a single command), then, after 15 s or once it ended, SIGKILL to
     * whatever is left of its group.
     */
    async stopDaemon() {
      if (!status) {
        try {
          process.kill(child.pid, 'SIGTERM')
        } catch {
          // already gone
        }
      }
      const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), 15_000)
      await ended
      clearTimeout(timer)
      killGroup(child.pid, 'SIGKILL')
    },
  }
}

async function runProcess(command, args, { cwd, env, timeoutMs }) {
  const run = spawnBlock(command, args, { cwd, env })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    void run.stop()
  }, timeoutMs)
  const { code, signal } = await run.ended
  clearTimeout(timer)
  await run.stop()
  return { code, signal, timedOut, output: run.output() }
}

/** Run a shell block (bash -e -o pipefail) from `cwd`; the script file lives in the temp dir. */
async function runShell(block, cwd, env, timeoutMs) {
  const dir = mkdtempSync(join(tmpdir(), 'membrane-doctest-sh-'))
  const script = join(dir, `block-${block.line}.sh`)
  writeFileSync(script, block.code)
  try {
    return await runProcess('bash', ['-e', '-o', 'pipefail', script], { cwd, env, timeoutMs })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal)
  } catch {
    // the group is gone
  }
}

function tail(text, lines = 40) {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

function packageDirOf(readme, root) {
  const dir = dirname(resolve(readme))
  return existsSync(join(dir, 'package.json')) ? dir : root
}

/**
 * Run (or check) every block of one README. Returns a report: counts per kind and the
 * failures, each with the README, the block's line and the error.
 */
export async function runReadme(readme, { packageDir, root = ROOT, keep = false } = {}) {
  const file = resolve(readme)
  const pkgDir = packageDir ? resolve(packageDir) : packageDirOf(file, root)
  const rel = relative(root, file) || file
  const blocks = extractBlocks(readFileSync(file, 'utf8'))
  const report = {
    readme: rel,
    blocks: blocks.length,
    executed: 0,
    checked: 0,
    files: 0,
    output: 0,
    skipped: [],
    knownFailures: [],
    failures: [],
    /** Wall time of each block that ran to completion. */
    seconds: [],
  }
  const fail = (block, error) => report.failures.push({ readme: rel, line: block.line, error })
  const allowed = allowedPackages(pkgDir, root)
  const workDir = mkdtempSync(join(tmpdir(), 'membrane-doctest-'))
  const definedFiles = new Set()
  const daemons = []
  /** The TypeScript blocks that ran: type-checked together once all blocks ran. */
  const typed = []
  /** Stop the background blocks started so far, newest first; an early failure fails its block. */
  const stopDaemons = async () => {
    for (const { block, run } of daemons.splice(0).reverse()) {
      const early = run.status()
      await run.stopDaemon()
      if (early && early.code !== 0) {
        fail(
          block,
          `the daemon exited early (${early.signal ?? `status ${early.code}`})\n${tail(run.output())}`,
        )
      }
    }
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const requireKernel = process.env.MEMBRANE_REQUIRE_KERNEL === '1'
  try {
    makeNodeModules(workDir, pkgDir, allowed, root)
    const env = {
      ...process.env,
      PATH: `${join(workDir, 'node_modules', '.bin')}:${process.env.PATH}`,
      FORCE_COLOR: '0',
    }
    delete env.NODE_OPTIONS
    for (const block of blocks) {
      const { markers, markerErrors } = block
      if (markerErrors.length) {
        for (const e of markerErrors) fail(block, e)
        continue
      }
      if (markers.skip) {
        report.skipped.push({ line: block.line, reason: markers.skip })
        continue
      }
      if (markers.file) {
        const target = join(workDir, markers.file)
        mkdirSync(dirname(target), { recursive: true })
        writeFileSync(target, block.code)
        definedFiles.add(normalize(`./${markers.file}`))
        report.files++
        continue
      }
      if (markers.output) {
        report.output++
        continue
      }
      if (markers.kernel && !isRoot && !requireKernel) {
        report.skipped.push({ line: block.line, reason: 'needs root and the kernel' })
        continue
      }
      if (markers.stopDaemons) await stopDaemons()
      const started = Date.now()
      const timeoutMs = (markers.timeout ?? 120) * 1000
      let result
      if (RUN_LANGS.has(block.lang)) {
        const problems = checkImports(block.code, allowed, root, definedFiles)
        if (problems.length) {
          for (const p of problems) fail(block, p)
          continue
        }
        const ext = block.lang.startsWith('t') || block.lang === 'mts' ? 'mts' : 'mjs'
        const script = join(workDir, `block-${block.line}.${ext}`)
        writeFileSync(script, block.code)
        if (ext === 'mts') typed.push(block)
        result = await runProcess(
          process.execPath,
          ['--conditions=@membrane/source', '--import', TSX, script],
          { cwd: workDir, env, timeoutMs },
        )
      } else if (SHELL_LANGS.has(block.lang)) {
        const lines = commandLines(block.code)
        const checks = lines.map((l) => checkRepositoryCommand(l, root))
        if (markers.repo) {
          const problems = checks.flat().filter(Boolean)
          for (const p of problems) fail(block, p)
          if (problems.length) continue
          result = await runShell(block, root, process.env, timeoutMs)
        } else if (lines.length > 0 && checks.every((c) => c !== undefined)) {
          const problems = checks.flat()
          for (const p of problems) fail(block, p)
          if (!problems.length) report.checked++
          continue
        } else if (checks.some((c) => c !== undefined)) {
          fail(
            block,
            'mixes repository commands (npm/npx/tools, checked) with commands to run: split the block',
          )
          continue
        } else if (markers.background) {
          // `bash -c` execs a single command: the daemon is the process that gets the signal.
          daemons.push({
            block,
            run: spawnBlock('bash', ['-e', '-c', block.code], { cwd: workDir, env }),
          })
          report.executed++
          continue
        } else {
          result = await runShell(block, workDir, env, timeoutMs)
        }
      } else {
        fail(
          block,
          `a \`${block.lang || 'plain'}\` block is not executable: mark it <!-- doctest: file NAME -->, <!-- doctest: output -->, <!-- doctest: text --> or <!-- doctest: skip (reason) -->`,
        )
        continue
      }
      report.seconds.push({ line: block.line, seconds: (Date.now() - started) / 1000 })
      const expected = markers.exit ?? 0
      const ok = !result.timedOut && result.code === expected
      const what = result.timedOut
        ? `timed out after ${timeoutMs / 1000} s`
        : `exited ${result.code}${result.signal ? ` (${result.signal})` : ''}, expected ${expected}`
      if (markers.knownFailure) {
        if (ok) {
          fail(
            block,
            `marked known-failure (${markers.knownFailure}) but passes now: remove the marker`,
          )
        } else {
          report.knownFailures.push({ line: block.line, reason: markers.knownFailure, error: what })
        }
        continue
      }
      if (!ok) fail(block, `${what}\n${tail(result.output)}`)
      else report.executed++
    }
  } finally {
    await stopDaemons()
    if (typed.length) await typecheck(workDir, typed, fail, root)
    if (keep) report.workDir = workDir
    else rmSync(workDir, { recursive: true, force: true })
  }
  return report
}

/**
 * Type-check the TypeScript blocks as a user's `tsc` would (the repository's strict settings,
 * the same node_modules): an error names the README line it is on.
 */
async function typecheck(workDir, blocks, fail, root) {
  writeFileSync(
    join(workDir, 'tsconfig.json'),
    JSON.stringify({
      extends: join(root, 'tsconfig.base.json'),
      // A README block shows an API; a name it declares for the reader but never reads is not
      // a mistake there, so the repository's unused-name checks are off for blocks.
      compilerOptions: {
        noEmit: true,
        noUnusedLocals: false,
        noUnusedParameters: false,
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: blocks.map((b) => `block-${b.line}.mts`),
    }),
  )
  const result = await runProcess(
    process.execPath,
    [TSC, '-p', 'tsconfig.json', '--pretty', 'false'],
    {
      cwd: workDir,
      env: process.env,
      timeoutMs: 300_000,
    },
  )
  if (result.code === 0) return
  const byLine = new Map(blocks.map((b) => [b.line, b]))
  let reported = false
  for (const m of result.output.matchAll(/^block-(\d+)\.mts\((\d+),(\d+)\): (error .*)$/gm)) {
    const block = byLine.get(Number(m[1]))
    if (!block) continue
    fail(block, `type error at README line ${block.line + Number(m[2])}: ${m[4]}`)
    reported = true
  }
  if (!reported) fail(blocks[0], `tsc failed: ${tail(result.output)}`)
}

function formatReport(r) {
  const parts = [
    `${r.readme}: ${r.blocks} blocks`,
    `${r.executed} executed`,
    `${r.checked} checked`,
  ]
  if (r.files) parts.push(`${r.files} files`)
  if (r.output) parts.push(`${r.output} text/output`)
  parts.push(`${r.skipped.length} skipped`)
  if (r.knownFailures.length) parts.push(`${r.knownFailures.length} known failures`)
  parts.push(`${r.failures.length} failed`)
  const lines = [parts.join(', ')]
  for (const s of r.skipped) lines.push(`  skipped ${r.readme}:${s.line}: ${s.reason}`)
  for (const k of r.knownFailures)
    lines.push(`  known failure ${r.readme}:${k.line}: ${k.reason} (${k.error})`)
  for (const f of r.failures) lines.push(`  FAILED ${f.readme}:${f.line}: ${f.error}`)
  return lines.join('\n')
}

async function main(argv) {
  if (argv.includes('--list')) {
    for (const readme of findReadmes()) process.stdout.write(`${relative(ROOT, readme)}\n`)
    return
  }
  const json = argv.includes('--json')
  const keep = argv.includes('--keep')
  const pi = argv.indexOf('--package')
  const packageDir = pi >= 0 ? argv[pi + 1] : undefined
  const targets = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--package')
  const readmes = targets.length
    ? targets.map((t) => (existsSync(t) && statSync(t).isDirectory() ? join(t, 'README.md') : t))
    : findReadmes()
  let failed = 0
  for (const readme of readmes) {
    const report = await runReadme(readme, { packageDir, keep })
    failed += report.failures.length
    process.stdout.write(`${json ? JSON.stringify(report) : formatReport(report)}\n`)
  }
  process.exitCode = failed ? 1 : 0
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main(process.argv.slice(2))
}
