/**
 * The package dependency rules of the design (docs/ARCHITECTURE.md, "Dependency direction"),
 * checked against every package's package.json and the imports of its source, tests and
 * benchmarks. Each failure names the file, the line and the rule.
 */
import { existsSync, readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import {
  type ImportRef,
  packageOf,
  scanImports,
  sourceFiles,
  type WorkspacePackage,
  workspacePackages,
} from '../lib/imports.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const packages = workspacePackages(root)
const byName = new Map(packages.map((p) => [p.name, p]))
/** The root's devDependencies (vitest, fast-check, tsx, ...): every test and bench may use them. */
const rootDevDeps = Object.keys(
  (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { devDependencies?: Deps })
    .devDependencies ?? {},
)

/**
 * The layers of the design, bottom up: a package's run-time dependencies (dependencies and
 * peerDependencies) must sit in a lower layer. The agent is the only package on top: it may
 * depend on everything, and nothing depends on it. A new package gets a layer here.
 */
const LAYER: Record<string, number> = {
  '@membrane/types': 0,
  '@membrane/bpf-loader-napi': 1,
  '@membrane/policy': 1,
  '@membrane/identity': 1,
  '@membrane/maglev': 1,
  '@membrane/bandwidth': 1,
  '@membrane/cluster': 1,
  '@membrane/datapath': 2,
  '@membrane/flows': 3,
  '@membrane/l7proxy': 3,
  '@membrane/agent': 4,
}

/** Test helpers: a devDependency only, never a run-time one (it is private and not published). */
const TEST_ONLY = new Set(['@membrane/test-utils'])

/**
 * Pure packages and their browser-safe entry points (package.json "exports" keys): what these
 * load must not reach native code or I/O, so the core embeds anywhere, a browser included.
 * I/O lives behind other subpaths (`@membrane/identity/etcd`, `@membrane/bandwidth/host`).
 */
const PURE: Record<string, string[]> = {
  '@membrane/types': ['.'],
  '@membrane/policy': ['.'],
  '@membrane/identity': ['.'],
  '@membrane/maglev': ['.'],
  '@membrane/bandwidth': ['.'],
}

/** What a pure entry may not load: the native loader and Node's process, network and file I/O. */
const IMPURE = new Set([
  '@membrane/bpf-loader-napi',
  ...[
    'child_process',
    'cluster',
    'dgram',
    'dns',
    'fs',
    'fs/promises',
    'http',
    'http2',
    'https',
    'net',
    'tls',
    'worker_threads',
  ].map((m) => `node:${m}`),
])

type Deps = Record<string, string> | undefined
const keys = (deps: Deps) => Object.keys(deps ?? {})
const runtimeDeps = (p: WorkspacePackage) => [
  ...keys(p.manifest.dependencies as Deps),
  ...keys(p.manifest.peerDependencies as Deps),
]
const allDeps = (p: WorkspacePackage) => [
  ...runtimeDeps(p),
  ...keys(p.manifest.devDependencies as Deps),
]
const siblings = (names: string[]) => names.filter((n) => byName.has(n))

/** A file's imports, read once. */
const importCache = new Map<string, ImportRef[]>()
function importsOf(file: string): ImportRef[] {
  let refs = importCache.get(file)
  if (!refs) {
    refs = scanImports(file)
    importCache.set(file, refs)
  }
  return refs
}

/** Source (shipped) files vs test and bench files: colocated `*.test.ts` count as tests. */
function filesOf(p: WorkspacePackage): { src: string[]; dev: string[] } {
  const src: string[] = []
  const dev: string[] = []
  // test-utils is test code through and through: its src/ may use what tests use.
  for (const f of sourceFiles(join(p.dir, 'src')))
    (TEST_ONLY.has(p.name) || /\.test\.[mc]?[jt]s$/.test(f) ? dev : src).push(f)
  dev.push(...sourceFiles(join(p.dir, 'test')), ...sourceFiles(join(p.dir, 'bench')))
  return { src, dev }
}

const where = (file: string, ref: ImportRef) =>
  `${relative(root, file)}:${ref.line} imports '${ref.specifier}'`

/** Node built-ins, with or without the `node:` prefix. */
const builtins = new Set(builtinModules)
const isBuiltin = (s: string) => s.startsWith('node:') || builtins.has(s.split('/')[0] ?? s)

/** The subpaths a package exports ('.', './etcd', ...). */
const exportKeys = (p: WorkspacePackage) =>
  Object.keys((p.manifest.exports ?? {}) as Record<string, unknown>)

/** A relative import resolved to a file (TypeScript's extension-less style included). */
function resolveRelative(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier)
  const candidates = [
    base,
    ...['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'].map((e) => base + e),
    base.replace(/\.js$/, '.ts'),
    join(base, 'index.ts'),
  ]
  return candidates.find((c) => existsSync(c) && !c.endsWith(sep) && /\.[mc]?[jt]s$/.test(c))
}

/** The source file an export of a package points at through the `@membrane/source` condition. */
function sourceEntry(p: WorkspacePackage, subpath: string): string {
  const target = (p.manifest.exports as Record<string, Record<string, unknown>>)[subpath]
  const file = target?.['@membrane/source']
  if (typeof file !== 'string') throw new Error(`${p.name} exports no source for '${subpath}'`)
  return join(p.dir, file)
}

describe('package boundaries', () => {
  it('every package has a layer in the design, and test-utils is private', () => {
    const missing = packages.map((p) => p.name).filter((n) => !(n in LAYER) && !TEST_ONLY.has(n))
    expect(missing, 'packages without a layer in tools/test/boundaries.test.ts').toEqual([])
    for (const name of TEST_ONLY) expect(byName.get(name)?.manifest.private, name).toBe(true)
  })

  it('run-time dependencies point down the layers; nothing depends on the agent', () => {
    const problems: string[] = []
    for (const p of packages) {
      for (const dep of siblings(allDeps(p))) {
        if (dep === '@membrane/agent') problems.push(`${p.name} depends on @membrane/agent`)
      }
      for (const dep of siblings(runtimeDeps(p))) {
        if (TEST_ONLY.has(dep))
          problems.push(`${p.name} has ${dep} as a run-time dependency (devDependencies only)`)
        else if (!TEST_ONLY.has(p.name) && (LAYER[dep] ?? 99) >= (LAYER[p.name] ?? -1))
          problems.push(
            `${p.name} (layer ${LAYER[p.name]}) depends on ${dep} (layer ${LAYER[dep]}): dependencies point down`,
          )
      }
    }
    expect(problems).toEqual([])
  })

  it('the dependency graph (dependencies, peer and dev) has no cycle', () => {
    const edges = new Map(packages.map((p) => [p.name, siblings(allDeps(p))]))
    const state = new Map<string, 'open' | 'done'>()
    const cycles: string[] = []
    const visit = (name: string, path: string[]) => {
      if (state.get(name) === 'done') return
      if (state.get(name) === 'open') {
        cycles.push([...path.slice(path.indexOf(name)), name].join(' -> '))
        return
      }
      state.set(name, 'open')
      for (const dep of edges.get(name) ?? []) visit(dep, [...path, name])
      state.set(name, 'done')
    }
    for (const p of packages) visit(p.name, [])
    expect(cycles).toEqual([])
  })

  it('a package imports only what it declares: siblings and npm packages', () => {
    const problems: string[] = []
    for (const p of packages) {
      const { src, dev } = filesOf(p)
      const runtime = new Set(runtimeDeps(p))
      const any = new Set([...allDeps(p), ...rootDevDeps])
      for (const [files, declared, field] of [
        [src, runtime, 'dependencies or peerDependencies'],
        [dev, any, 'dependencies, peerDependencies, devDependencies or the root devDependencies'],
      ] as const) {
        for (const file of files) {
          for (const ref of importsOf(file)) {
            const pkg = packageOf(ref.specifier)
            if (pkg === undefined || isBuiltin(ref.specifier) || pkg === p.name) continue
            if (!declared.has(pkg)) problems.push(`${where(file, ref)}, not in its ${field}`)
          }
        }
      }
    }
    expect(problems).toEqual([])
  })

  it("no package reaches into another's files: exported subpaths and own relative paths only", () => {
    const problems: string[] = []
    for (const p of packages) {
      const { src, dev } = filesOf(p)
      for (const file of [...src, ...dev]) {
        for (const ref of importsOf(file)) {
          if (ref.specifier.startsWith('.')) {
            const target = resolve(dirname(file), ref.specifier)
            if (!target.startsWith(p.dir + sep))
              problems.push(`${where(file, ref)}: a relative path out of ${p.rel}`)
            continue
          }
          const pkg = packageOf(ref.specifier)
          const sibling = pkg === undefined ? undefined : byName.get(pkg)
          if (!sibling || pkg === undefined) continue
          const subpath = `.${ref.specifier.slice(pkg.length)}`
          if (!exportKeys(sibling).includes(subpath))
            problems.push(
              `${where(file, ref)}: ${pkg} exports only ${exportKeys(sibling).join(', ')}`,
            )
        }
      }
    }
    expect(problems).toEqual([])
  })

  it('pure packages load no native code and no I/O from their browser-safe entries', () => {
    const problems: string[] = []
    for (const [name, subpaths] of Object.entries(PURE)) {
      const p = byName.get(name)
      if (!p) {
        problems.push(`${name} is listed as pure but is not a workspace package`)
        continue
      }
      for (const dep of siblings(runtimeDeps(p)))
        if (!(dep in PURE)) problems.push(`${name} is pure but depends on ${dep}, which is not`)
      for (const subpath of subpaths) {
        // Follow the run-time imports (type-only ones vanish) from the entry through the package.
        const seen = new Set<string>()
        const queue = [sourceEntry(p, subpath)]
        while (queue.length > 0) {
          const file = queue.pop() as string
          if (seen.has(file)) continue
          seen.add(file)
          for (const ref of importsOf(file)) {
            if (ref.typeOnly) continue
            if (ref.specifier.startsWith('.')) {
              const next = resolveRelative(file, ref.specifier)
              if (next) queue.push(next)
              continue
            }
            const pkg = packageOf(ref.specifier) ?? ref.specifier
            const bare = isBuiltin(ref.specifier)
              ? `node:${ref.specifier.replace(/^node:/, '')}`
              : pkg
            if (IMPURE.has(bare))
              problems.push(`${name}${subpath.slice(1)}: ${where(file, ref)} (native code or I/O)`)
          }
        }
        // The walk must reach every file the entry re-exports, or the check above checked nothing.
        const entry = sourceEntry(p, subpath)
        const direct = importsOf(entry).filter((r) => r.specifier.startsWith('.') && !r.typeOnly)
        for (const ref of direct)
          expect(
            seen.has(resolveRelative(entry, ref.specifier) ?? ref.specifier),
            where(entry, ref),
          ).toBe(true)
      }
    }
    expect(problems).toEqual([])
  })
})
